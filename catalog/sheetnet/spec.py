"""What a SheetNet weight file holds and which catalog task each of its heads serves; no torch needed.

SheetNet is PlantAI's pretrained-encoder sheet model: an ImageNet EfficientNet-lite0 encoder, a light
U-Net/FPN decoder and four heads read from one forward pass:

- ``plant``: plant-mask logits at half the input's resolution (``segment-plant``);
- ``boxes``: heat maps of objects' central regions, one channel per class of :data:`BOX_CLASSES`, and
  each cell's log distances to its object's four edges, at an eighth of the input's resolution
  (``detect-nonvegetal`` reads the non-vegetal channels, ``detect-organs`` the organ channels);
- ``trait``: logits of one trait of the whole sheet (``phenology``), read from :data:`TRAIT_FEATURES`.

A file names its heads' classes in its metadata, so a catalog model of any of these tasks can be
registered from it; when several catalog models share one file, backends run it once per sheet.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from herbarium.taxonomy import NONVEGETAL, ORGANS, PLANT, TRAITS

FRAMEWORK = "sheetnet"
FILE_SUFFIX = ".safetensors"
ARCHITECTURE = "sheetnet-lite0-v2"
METADATA_KEY = "plantai.sheetnet"  # the safetensors header entry, and the ONNX metadata key, holding the spec
STRIDE_BOXES = 8
STRIDE_PLANT = 2
INPUT_MULTIPLE = 32  # the encoder halves the input five times
BOX_CLASSES: tuple[str, ...] = (*NONVEGETAL.classes, *ORGANS.classes)
# Each detection task reads these heat-map channels (indexes into BOX_CLASSES).
BOX_TASK_CHANNELS: Mapping[str, tuple[int, ...]] = {
    "detect-nonvegetal": tuple(range(len(NONVEGETAL.classes))),
    "detect-organs": tuple(range(len(NONVEGETAL.classes), len(BOX_CLASSES))),
}
PLANT_TASK = "segment-plant"
DEFAULT_TRAIT = "phenology"


# What the trait head reads. "imagenet": a frozen copy of the pretrained encoder with its ImageNet head
# (1,280 pooled features); fine-tuning on boxes and masks loses what tells a flowering sheet from a sterile
# one (on 80 UNB sheets, 5-fold linear probes: 0.71-0.74 from the fine-tuned encoder, 0.79-0.81 from the
# pristine one; majority class 0.74). "sheet": the fine-tuned encoder's pooled features and the box heads'
# peaks (files written before the field existed).
TRAIT_FEATURES = ("imagenet", "sheet")

# A decoded box's width or height factor (spec.box_scales): a larger correction is a broken decoder, not a bias.
BOX_SCALE_RANGE = (0.5, 2.0)


class SheetNetSpecError(ValueError):
    """A SheetNet file whose metadata is missing or does not describe a usable model."""


@dataclass(frozen=True)
class SheetNetSpec:
    """How a SheetNet was built and trained: its heads' classes, input size and origin."""

    input_side: int = 768  # sheets are decoded so that their long side is this many pixels
    box_classes: tuple[str, ...] = BOX_CLASSES
    trait: str = DEFAULT_TRAIT
    trait_classes: tuple[str, ...] = TRAITS[DEFAULT_TRAIT].classes
    architecture: str = ARCHITECTURE
    # The pretrained weights the encoder started from (package, file, sha256): the model's origin.
    encoder_origin: Mapping[str, str] = field(default_factory=dict)
    # Per box class, factors (width, height) its decoded boxes are scaled by about their centres: the box
    # decoder's size bias, measured on the real sheets the network trained on (training/box_calibration.py).
    box_scales: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    trait_features: str = TRAIT_FEATURES[0]

    def __post_init__(self) -> None:
        if self.architecture != ARCHITECTURE:
            raise SheetNetSpecError(f"architecture {self.architecture!r} is not {ARCHITECTURE!r}")
        if not 64 <= self.input_side <= 4096 or self.input_side % INPUT_MULTIPLE:
            raise SheetNetSpecError(f"input_side: a multiple of {INPUT_MULTIPLE} in 64..4096, got {self.input_side}")
        if tuple(self.box_classes) != BOX_CLASSES:
            raise SheetNetSpecError(f"box classes {list(self.box_classes)} are not {list(BOX_CLASSES)}")
        if len(self.trait_classes) < 2 or len(set(self.trait_classes)) != len(self.trait_classes):
            raise SheetNetSpecError(f"trait classes must be two or more distinct names: {list(self.trait_classes)}")
        if self.trait_features not in TRAIT_FEATURES:
            raise SheetNetSpecError(f"trait_features: one of {', '.join(TRAIT_FEATURES)}, got {self.trait_features!r}")
        low, high = BOX_SCALE_RANGE
        for name, factors in self.box_scales.items():
            if name not in self.box_classes or len(factors) != 2 or not all(low <= f <= high for f in factors):
                raise SheetNetSpecError(
                    f"box_scales[{name!r}]: a box class and two factors in {low}..{high}, got {factors}"
                )

    def tasks(self) -> tuple[str, ...]:
        """The catalog tasks this file can serve."""
        return (PLANT_TASK, *BOX_TASK_CHANNELS, self.trait)

    def classes_for(self, task: str) -> tuple[str, ...]:
        """The class names the head serving ``task`` predicts, in the catalog's order."""
        if task == PLANT_TASK:
            return PLANT.classes
        if task in BOX_TASK_CHANNELS:
            return tuple(self.box_classes[i] for i in BOX_TASK_CHANNELS[task])
        if task == self.trait:
            return tuple(self.trait_classes)
        raise SheetNetSpecError(f"a SheetNet serves {', '.join(self.tasks())}, not {task!r}")

    def to_json(self) -> str:
        data = asdict(self)
        data["encoder_origin"] = dict(self.encoder_origin)
        data["box_scales"] = {name: list(factors) for name, factors in self.box_scales.items()}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> SheetNetSpec:
        if not text:
            raise SheetNetSpecError(f"no {METADATA_KEY} metadata: not a PlantAI SheetNet file")
        try:
            data: dict[str, Any] = json.loads(text)
            return cls(
                input_side=int(data["input_side"]),
                box_classes=tuple(str(c) for c in data["box_classes"]),
                trait=str(data["trait"]),
                trait_classes=tuple(str(c) for c in data["trait_classes"]),
                architecture=str(data["architecture"]),
                encoder_origin={str(k): str(v) for k, v in dict(data.get("encoder_origin") or {}).items()},
                box_scales={str(k): _pair(v) for k, v in dict(data.get("box_scales") or {}).items()},
                trait_features=str(data.get("trait_features", "sheet")),  # older files: the fine-tuned encoder's
            )
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, SheetNetSpecError):
                raise
            raise SheetNetSpecError(f"{METADATA_KEY} metadata is malformed: {error}") from None


def _pair(value: Any) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise SheetNetSpecError(f"box_scales: expected [width factor, height factor], got {value!r}")
    return float(value[0]), float(value[1])


def read_file_spec(path: Path) -> SheetNetSpec:
    """The spec in a SheetNet file's safetensors header; no tensor is read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            metadata: dict[str, str] = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise SheetNetSpecError(f"{path.name} is not a safetensors file: {error}") from None
    return SheetNetSpec.from_json(metadata.get(METADATA_KEY))
