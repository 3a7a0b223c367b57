"""SheetNet, PlantAI's pretrained-encoder sheet model, as a catalog framework.

:mod:`catalog.sheetnet.spec` (what a file holds, which task each head serves) and
:mod:`catalog.sheetnet.runtime` (ONNX Runtime inference and reading the heads) need no torch;
:mod:`catalog.sheetnet.network` (the torch module, pretrained weights, saving, ONNX export) is
imported only where a model is built, trained or exported.
"""

from catalog.sheetnet.spec import (
    BOX_CLASSES,
    BOX_TASK_CHANNELS,
    FILE_SUFFIX,
    FRAMEWORK,
    PLANT_TASK,
    SheetNetSpec,
    SheetNetSpecError,
)

__all__ = [
    "BOX_CLASSES",
    "BOX_TASK_CHANNELS",
    "FILE_SUFFIX",
    "FRAMEWORK",
    "PLANT_TASK",
    "SheetNetSpec",
    "SheetNetSpecError",
]
