"""Reading a weight file for its framework: what task it performs and which class names it predicts.

Frameworks are imported on first use only: ``import catalog`` stays light.
"""

from __future__ import annotations

import ast
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import InvalidWeightsError
from catalog.tasks import FRAMEWORKS
from catalog.ultralytics_offline import UltralyticsAlreadyImportedError, configure_offline_ultralytics

FRAMEWORK_BY_SUFFIX = {".pt": "ultralytics", ".onnx": "onnx", ".pth": "sam"}
FORMAT_BY_FRAMEWORK = {"ultralytics": "pt", "onnx": "onnx", "sam": "pth"}
SAM_PARTS = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
# ViT depth of each SAM image encoder size, as segment-anything builds them.
SAM_TYPES_BY_DEPTH = {12: "vit_b", 24: "vit_l", 32: "vit_h"}
# Ultralytics' segmentation head adds this many mask coefficients to each box row.
_YOLO_MASK_COEFFICIENTS = 32


@dataclass(frozen=True)
class WeightsInfo:
    framework: str
    yolo_task: str | None  # None when an ONNX file carries no Ultralytics metadata
    class_names: tuple[str, ...] | None  # None when the file does not name its classes
    class_count: int | None  # None when even the count cannot be read


def infer_framework(path: Path) -> str:
    framework = FRAMEWORK_BY_SUFFIX.get(path.suffix.lower())
    if framework is None:
        raise InvalidWeightsError(
            f"cannot tell the framework of {path.name}: name it (one of {', '.join(FRAMEWORKS)}) "
            f"or use a known suffix ({', '.join(FRAMEWORK_BY_SUFFIX)})"
        )
    return framework


def yolo_class() -> Any:
    """Ultralytics' YOLO class, configured offline first unless the caller already chose a config dir."""
    configure_offline_ultralytics()
    import ultralytics

    return ultralytics.YOLO  # type: ignore[attr-defined]


@contextlib.contextmanager
def quiet_ultralytics() -> Iterator[None]:
    """Hold Ultralytics' progress lines back: they go to stdout, where CLI users pipe ``--json``."""
    logger = logging.getLogger("ultralytics")
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def inspect_weights(path: Path, framework: str) -> WeightsInfo:
    """Load ``path`` as ``framework`` and report its task and classes; InvalidWeightsError if it does not load."""
    if framework not in FRAMEWORKS:
        raise InvalidWeightsError(f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}")
    if not path.is_file():
        raise InvalidWeightsError(f"weight file {path} does not exist")
    expected_suffix = "." + FORMAT_BY_FRAMEWORK[framework]
    if path.suffix.lower() != expected_suffix:
        raise InvalidWeightsError(f"{path.name}: {framework} weights must be a {expected_suffix} file")
    try:
        if framework == "ultralytics":
            return _inspect_ultralytics(path)
        if framework == "onnx":
            return _inspect_onnx(path)
        return _inspect_sam(path)
    except (InvalidWeightsError, UltralyticsAlreadyImportedError):  # not the file's fault
        raise
    except Exception as error:  # each framework fails in its own way on a bad file
        raise InvalidWeightsError(f"{path.name} does not load as {framework} weights: {error}") from error


def _inspect_ultralytics(path: Path) -> WeightsInfo:
    with quiet_ultralytics():
        model = yolo_class()(str(path))
    names = model.names
    class_names = tuple(str(names[i]) for i in sorted(names))
    return WeightsInfo("ultralytics", str(model.task), class_names, len(class_names))


def onnx_session(path: Path) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _inspect_onnx(path: Path) -> WeightsInfo:
    session = onnx_session(path)
    metadata = session.get_modelmeta().custom_metadata_map
    names: tuple[str, ...] | None = None
    if "names" in metadata:  # Ultralytics exports write {0: 'barcode', ...}
        parsed = ast.literal_eval(metadata["names"])
        names = tuple(str(parsed[i]) for i in sorted(parsed))
    task = metadata.get("task")
    outputs = session.get_outputs()
    if task is None:
        task = "segment" if len(outputs) == 2 else ("classify" if len(outputs[0].shape) == 2 else "detect")
    if names is None:  # a foreign export: only the class count can be checked
        return WeightsInfo("onnx", task, None, _onnx_class_count(task, outputs))
    return WeightsInfo("onnx", task, names, len(names))


def _onnx_class_count(task: str, outputs: list[Any]) -> int | None:
    channels = outputs[0].shape[1] if len(outputs[0].shape) >= 2 else None
    if not isinstance(channels, int):
        return None
    if task == "classify":
        return channels
    if task == "segment":
        return channels - 4 - _YOLO_MASK_COEFFICIENTS
    return channels - 4


def _inspect_sam(path: Path) -> WeightsInfo:
    sam_type(load_sam_state_dict(path))
    return WeightsInfo("sam", "segment", None, None)  # SAM is promptable: it has no classes of its own


def load_sam_state_dict(path: Path) -> dict[str, Any]:
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)  # tensors only: no pickled code
    if not isinstance(state, dict) or not all(any(str(k).startswith(p) for k in state) for p in SAM_PARTS):
        raise InvalidWeightsError(f"{path.name} is not a SAM state dict (needs {', '.join(SAM_PARTS)} weights)")
    return state


def sam_type(state: dict[str, Any]) -> str:
    depth = len({k.split(".")[2] for k in state if k.startswith("image_encoder.blocks.")})
    if depth not in SAM_TYPES_BY_DEPTH:
        raise InvalidWeightsError(f"SAM image encoder with {depth} blocks matches no SAM size (12, 24 or 32)")
    return SAM_TYPES_BY_DEPTH[depth]
