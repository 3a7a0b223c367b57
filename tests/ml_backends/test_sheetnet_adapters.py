"""Backend adapters over a SheetNet: boxes, the plant mask and the trait, in the original image's frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.predictors import LoadedModel
from catalog.sheetnet.runtime import SheetNetRunner
from catalog.sheetnet.spec import BOX_CLASSES, SheetNetSpec
from herbarium.imaging import SpecimenImage
from herbarium.labels import BoxLabel, ClassificationLabel, MaskLabel, PolygonLabel
from ml_backends.adapters import (
    SheetNetClassificationAdapter,
    SheetNetDetectionAdapter,
    SheetNetSegmentationAdapter,
    adapter_for,
)

SPEC = SheetNetSpec(input_side=128)
LABEL = BOX_CLASSES.index("label")


def _forward(x: np.ndarray) -> list[np.ndarray]:
    """A label 32 x 16 px at input (36, 60); the plant: the input's left half; trait: sterile."""
    h, w = x.shape[2:]
    plant = np.full((1, 1, h // 2, w // 2), -5.0, np.float32)
    plant[..., : w // 4] = 5.0
    heat = np.zeros((1, len(BOX_CLASSES), h // 8, w // 8), np.float32)
    regression = np.zeros((1, 4, h // 8, w // 8), np.float32)
    # One 8 px cell, centred at (52, 68) px, proposes edges 2 cells left and right, 1 cell up and down.
    heat[0, LABEL, 8, 6] = 0.8
    regression[0, :, 8, 6] = np.log([2.0, 1.0, 2.0, 1.0])
    return [plant, heat, regression, np.array([[0.1, 0.2, 0.7]], np.float32)]


def _model(task: str, labels: tuple[str, ...], runner: SheetNetRunner) -> LoadedModel:
    return LoadedModel(
        name="m", version="1.0.0", task=task, labels=labels, framework="onnx", sha256="0" * 64,
        path=Path("m.onnx"), model=runner, score_threshold=0.5, model_framework="sheetnet",
    )  # fmt: skip


def _image() -> SpecimenImage:
    # A 96 x 128 decoded picture of a 960 x 1280 original: every coordinate scales by 10.
    return SpecimenImage(image=Image.new("RGB", (96, 128), (240, 235, 220)), original_width=960, original_height=1280)


def test_boxes_come_back_in_the_original_frame() -> None:
    runner = SheetNetRunner(SPEC, _forward)
    adapter = adapter_for(_model("detect-nonvegetal", BOX_CLASSES[:6], runner), "detect-nonvegetal", conf=0.5)
    assert isinstance(adapter, SheetNetDetectionAdapter)
    assert adapter.decode_side(None) == 128
    (labels,) = adapter.predict([_image()])
    (box,) = labels.labels
    assert isinstance(box, BoxLabel)
    assert box.label == "label"
    assert box.source == "m@1.0.0"
    assert box.score is not None
    assert abs(box.score - 0.8) < 1e-6
    assert (box.x, box.y, box.width, box.height) == pytest.approx((360.0, 600.0, 320.0, 160.0))
    none = adapter_for(_model("detect-nonvegetal", BOX_CLASSES[:6], runner), "detect-nonvegetal", conf=0.9)
    assert none.predict([_image()])[0].labels == []


def test_the_plant_mask_is_at_the_original_size_with_its_outline() -> None:
    runner = SheetNetRunner(SPEC, _forward)
    adapter = adapter_for(_model("segment-plant", ("plant",), runner), "segment-plant", conf=0.5)
    assert isinstance(adapter, SheetNetSegmentationAdapter)
    # The network says "the left half"; the sheet shows a green plant at x 8-48, y 8-120 of the picture.
    pixels = np.full((128, 96, 3), (240, 235, 220), np.uint8)
    pixels[8:120, 8:48] = (60, 110, 40)
    image = SpecimenImage(image=Image.fromarray(pixels), original_width=960, original_height=1280)
    (labels,) = adapter.predict([image])
    masks = [label for label in labels.labels if isinstance(label, MaskLabel)]
    outlines = [label for label in labels.labels if isinstance(label, PolygonLabel)]
    assert len(masks) == 1
    assert len(outlines) == 1
    mask = masks[0].mask
    assert mask.shape == (1280, 960)
    # The plant as the paper shows it, less the label the detector is sure of (x 360-680, y 600-760).
    assert mask[90:590, 90:470].all()
    assert mask[770:1190, 90:470].all()
    assert not mask[610:750, 370:].any()
    assert not mask[:, 490:].any()
    assert not mask[:70, :].any()
    assert not mask[:, :70].any()
    xs = [x for x, _ in outlines[0].points]
    assert max(xs) < 500
    assert masks[0].score is not None
    assert masks[0].score > 0.9


def test_the_trait_is_one_choice_with_its_probability() -> None:
    runner = SheetNetRunner(SPEC, _forward)
    adapter = adapter_for(_model("phenology", ("flowering", "fruiting", "sterile"), runner), "classify-trait")
    assert isinstance(adapter, SheetNetClassificationAdapter)
    (labels,) = adapter.predict([_image()])
    (choice,) = labels.labels
    assert isinstance(choice, ClassificationLabel)
    assert (choice.label, choice.control) == ("sterile", "phenology")
    assert abs((choice.score or 0) - 0.7) < 1e-6


def test_three_heads_on_one_sheet_cost_one_forward_pass() -> None:
    calls: list[int] = []

    def counted(x: np.ndarray) -> list[np.ndarray]:
        calls.append(1)
        return _forward(x)

    runner = SheetNetRunner(SPEC, counted)
    image = _image()
    for task, kind, labels in (
        ("detect-nonvegetal", "detect-nonvegetal", BOX_CLASSES[:6]),
        ("segment-plant", "segment-plant", ("plant",)),
        ("phenology", "classify-trait", ("flowering", "fruiting", "sterile")),
    ):
        adapter_for(_model(task, labels, runner), kind).predict([image])
    assert len(calls) == 1
