"""The box decoder's size bias: measured on training sheets, stored in the spec, taken out when serving."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.sheetnet.runtime import SheetNetRunner
from catalog.sheetnet.spec import BOX_CLASSES, SheetNetSpec, SheetNetSpecError
from herbarium.labels import BoxLabel, SpecimenLabels
from herbarium.real_sheets import RealSheet
from training.box_calibration import MIN_MATCHES, measure_box_scales, measure_box_scales_on_training_sheets
from training.sheets import TrainingSheet

SPEC = SheetNetSpec(input_side=128)
LABEL = BOX_CLASSES.index("label")


def _forward(x: np.ndarray) -> list[np.ndarray]:
    """One label box 32 x 16 px, centred at (52, 68) px of a 96 x 128 input."""
    h, w = x.shape[2:]
    heat = np.zeros((1, len(BOX_CLASSES), h // 8, w // 8), np.float32)
    regression = np.zeros((1, 4, h // 8, w // 8), np.float32)
    heat[0, LABEL, 8, 6] = 0.8
    regression[0, :, 8, 6] = np.log([2.0, 1.0, 2.0, 1.0])
    plant = np.full((1, 1, h // 2, w // 2), -5.0, np.float32)
    return [plant, heat, regression, np.array([[0.5, 0.5]], np.float32)]


def _sheets(tmp_path: Path, count: int) -> list[RealSheet]:
    """``count`` sheets whose label is 48 x 24 px about the same centre: the decoder's boxes are 2/3 of it."""
    image = tmp_path / "sheet.png"
    Image.new("RGB", (96, 128), (240, 235, 220)).save(image)
    truth = BoxLabel(label="label", x=28.0, y=56.0, width=48.0, height=24.0)
    boxes = SpecimenLabels(width=96, height=128, labels=[truth])
    return [
        RealSheet(name=f"s{i}", collection="mock-sheets", image=image, boxes=boxes, exhaustive=frozenset({"label"}))
        for i in range(count)
    ]


def test_the_bias_is_measured_and_taken_out(tmp_path: Path) -> None:
    scales = measure_box_scales(SheetNetRunner(SPEC, _forward), _sheets(tmp_path, MIN_MATCHES))
    assert set(scales) == {"label"}
    assert scales["label"] == pytest.approx((1.5, 1.5))
    corrected = SheetNetRunner(replace(SPEC, box_scales=scales), _forward)
    xyxy, classes, _scores = corrected.run(Image.new("RGB", (96, 128))).boxes("detect-nonvegetal", 0.5)
    assert classes.tolist() == [LABEL]
    assert xyxy[0] == pytest.approx([28.0, 56.0, 76.0, 80.0])


def test_too_few_matches_leave_a_class_unscaled(tmp_path: Path) -> None:
    assert measure_box_scales(SheetNetRunner(SPEC, _forward), _sheets(tmp_path, MIN_MATCHES - 1)) == {}


def test_the_bias_is_measured_on_sheets_at_the_working_size_for_the_classes_asked() -> None:
    sheets = [
        TrainingSheet(
            name=f"s{i}",
            origin="real",
            image=np.full((128, 96, 3), 235, np.uint8),
            plant=None,
            boxes=np.array([[28.0, 56.0, 76.0, 80.0]], np.float32),
            classes=np.array([LABEL]),
            known=np.ones(len(BOX_CLASSES), bool),
        )
        for i in range(MIN_MATCHES)
    ]
    runner = SheetNetRunner(SPEC, _forward)
    assert measure_box_scales_on_training_sheets(runner, sheets, ("label", "stamp")) == {
        "label": pytest.approx((1.5, 1.5))
    }
    assert measure_box_scales_on_training_sheets(runner, sheets, ("leaf",)) == {}
    unknown = [replace(sheet, known=np.zeros(len(BOX_CLASSES), bool)) for sheet in sheets]
    assert measure_box_scales_on_training_sheets(runner, unknown, ("label",)) == {}


def test_box_scales_travel_in_the_spec() -> None:
    spec = replace(SPEC, box_scales={"label": (1.5, 1.25)})
    assert SheetNetSpec.from_json(spec.to_json()) == spec
    assert SheetNetSpec.from_json(SPEC.to_json()).box_scales == {}
    with pytest.raises(SheetNetSpecError, match="box_scales"):
        replace(SPEC, box_scales={"label": (9.0, 1.0)})
    with pytest.raises(SheetNetSpecError, match="box_scales"):
        replace(SPEC, box_scales={"tape": (1.0, 1.0)})
    with pytest.raises(SheetNetSpecError, match="box_scales"):
        SheetNetSpec.from_json(SPEC.to_json().replace('"box_scales": {}', '"box_scales": {"label": [1.0, 1.1, 1.2]}'))
