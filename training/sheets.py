"""Sheets as SheetNet learns from them: pixels at the working size, what is known about them, nothing else.

A :class:`TrainingSheet` holds the picture, the plant mask when one is known, boxes of the classes
boxed completely (``known``: a class not boxed completely is neither positive nor negative there),
and the trait class when known. Real sheets, generated sheets and copy-paste composites all become
one of these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from catalog.sheetnet.spec import BOX_CLASSES, BOX_TASK_CHANNELS, PLANT_TASK, SheetNetSpec
from herbarium.imaging import read_image
from herbarium.labels.model import BoxLabel, SpecimenLabels
from herbarium.real_sheets import RealSheet
from herbarium.synth import SyntheticSheet
from herbarium.taxonomy import TASK_LABEL_SETS

UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
NO_TRAIT = -1
CLASS_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(BOX_CLASSES)}


@dataclass(frozen=True)
class TrainingSheet:
    """One sheet at the working size and its ground truth; unknown parts say so."""

    name: str
    origin: str  # real, synthetic or composite
    image: UInt8Array  # (H, W, 3)
    plant: UInt8Array | None  # (H, W), 1 = plant; None when unknown
    boxes: FloatArray  # (N, 4) x0 y0 x1 y1, pixels of ``image``
    classes: IntArray  # (N,) indexes into BOX_CLASSES
    known: BoolArray  # (len(BOX_CLASSES),) classes boxed completely on this sheet
    trait: int = NO_TRAIT  # index into the spec's trait classes

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]

    def with_known(self, classes: Sequence[str]) -> TrainingSheet:
        """The same sheet with only ``classes`` (of those it knows) counted as known: training a subset of heads."""
        keep = np.zeros(len(BOX_CLASSES), dtype=bool)
        for name in classes:
            keep[CLASS_INDEX[name]] = True
        return replace(self, known=self.known & keep)


def no_boxes() -> tuple[FloatArray, IntArray]:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)


def _box_arrays(boxes: Sequence[BoxLabel], scale_x: float, scale_y: float) -> tuple[FloatArray, IntArray]:
    rows = [
        (b.x * scale_x, b.y * scale_y, (b.x + b.width) * scale_x, (b.y + b.height) * scale_y)
        for b in boxes
        if b.label in CLASS_INDEX and b.width > 0 and b.height > 0
    ]
    classes = [CLASS_INDEX[b.label] for b in boxes if b.label in CLASS_INDEX and b.width > 0 and b.height > 0]
    if not rows:
        return no_boxes()
    return np.asarray(rows, np.float32), np.asarray(classes, np.int64)


def _known(classes: Sequence[str] | frozenset[str]) -> BoolArray:
    known = np.zeros(len(BOX_CLASSES), dtype=bool)
    for name in classes:
        if name in CLASS_INDEX:
            known[CLASS_INDEX[name]] = True
    return known


def _mask_at(mask: Image.Image, size: tuple[int, int]) -> UInt8Array:
    grey = mask.convert("L")
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    return (np.asarray(grey) > 127).astype(np.uint8)


def from_real(sheet: RealSheet, spec: SheetNetSpec, side: int | None = None) -> TrainingSheet:
    """A real sheet decoded as the backends decode it, its mask, boxes and trait brought to that size."""
    picture = read_image(sheet.image, max_side=side or spec.input_side)
    size = picture.image.size
    plant = None
    if sheet.plant_mask is not None:
        with Image.open(sheet.plant_mask) as mask:
            plant = _mask_at(mask, size)
    boxes, classes = no_boxes()
    known = _known(())
    if sheet.boxes is not None:
        labels = [b for b in sheet.boxes.boxes if b.label in sheet.exhaustive]
        boxes, classes = _box_arrays(labels, size[0] / sheet.boxes.width, size[1] / sheet.boxes.height)
        known = _known(sheet.exhaustive)
    trait = spec.trait_classes.index(sheet.phenology) if sheet.phenology in spec.trait_classes else NO_TRAIT
    return TrainingSheet(sheet.name, "real", np.asarray(picture.image), plant, boxes, classes, known, trait)


def from_synthetic(sheet: SyntheticSheet, spec: SheetNetSpec, name: str) -> TrainingSheet:
    """A generated sheet at the working size: every class, the mask and the traits are exact."""
    image = sheet.image.convert("RGB")
    plant = sheet.plant_mask.astype(np.uint8)
    scale = spec.input_side / max(image.size)
    if scale != 1:  # the generator draws 512 px at least
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        plant = _mask_at(Image.fromarray(plant * 255), size)
    boxes, classes = _box_arrays([box.to_label() for box in sheet.boxes], scale, scale)
    value = sheet.traits.get(spec.trait)
    trait = spec.trait_classes.index(value) if value in spec.trait_classes else NO_TRAIT
    return TrainingSheet(name, "synthetic", np.asarray(image), plant, boxes, classes, _known(BOX_CLASSES), trait)


GENERATOR_MIN_SIDE = 512


def working_size(spec: SheetNetSpec) -> tuple[int, int]:
    """A herbarium sheet's proportions (29 x 42 cm) at the working size."""
    return round(spec.input_side * 29 / 42), spec.input_side


def generated_size(spec: SheetNetSpec) -> tuple[int, int]:
    """Generated sheets are drawn at the working size (512 px at least), in a herbarium sheet's proportions."""
    side = max(GENERATOR_MIN_SIDE, spec.input_side)
    return round(side * 29 / 42), side


def from_specimen(
    path: str | Path, labels: SpecimenLabels, spec: SheetNetSpec, task: str, name: str | None = None
) -> TrainingSheet:
    """An expert-reviewed sheet for one task: its boxes of the task's classes (complete: the expert reviewed the
    whole sheet), its plant mask (masks and polygons), or its trait; everything else unknown.
    """
    from herbarium.labels.yolo_dataset import boxes_of, usable

    picture = read_image(path, max_side=spec.input_side)
    size = picture.image.size
    boxes, classes = no_boxes()
    known = _known(())
    plant = None
    trait = NO_TRAIT
    if task in BOX_TASK_CHANNELS:
        label_set = TASK_LABEL_SETS[task]
        chosen = [_relabelled(box, label_set.resolve(box.label)) for box in boxes_of(labels, label_set)]
        boxes, classes = _box_arrays(chosen, size[0] / labels.width, size[1] / labels.height)
        known = _known(label_set.classes)
    elif task == PLANT_TASK:
        plant = _plant_mask(labels, size)
    else:
        value = next((c.label for c in labels.classifications if c.control == task and usable(c)), None)
        trait = spec.trait_classes.index(value) if value in spec.trait_classes else NO_TRAIT
    stem = name or Path(path).stem
    return TrainingSheet(stem, "real", np.asarray(picture.image), plant, boxes, classes, known, trait)


def _relabelled(box: BoxLabel, label: str) -> BoxLabel:
    return replace(box, label=label)


def _plant_mask(labels: SpecimenLabels, size: tuple[int, int]) -> UInt8Array:
    """The union of the sheet's plant masks and polygons, at ``size``."""
    from PIL import ImageDraw

    from herbarium.labels.yolo_dataset import usable

    canvas = Image.new("L", (labels.width, labels.height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in labels.polygons:
        if usable(polygon):
            draw.polygon([(x, y) for x, y in polygon.points], fill=255)
    union = np.asarray(canvas) > 0
    for mask in labels.masks:
        if usable(mask):
            union = union | mask.mask
    return _mask_at(Image.fromarray(union.astype(np.uint8) * 255), size)
