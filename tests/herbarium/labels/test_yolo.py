from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from herbarium.labels import BoxLabel, ClassificationLabel, LabelError, MaskLabel, PolygonLabel, SpecimenLabels
from herbarium.labels.yolo import as_yolo_detect, as_yolo_segment, from_yolo_detect, from_yolo_segment, mask_outlines
from herbarium.taxonomy import ORGANS, PLANT, UnknownLabelError


def rasterise(specimen: SpecimenLabels) -> np.ndarray[Any, Any]:
    """Fill the polygons as Ultralytics does (cv2.fillPoly on vertices as pixel indices)."""
    canvas = np.zeros((specimen.height, specimen.width), dtype=np.uint8)
    for polygon in specimen.polygons:
        cv2.fillPoly(canvas, [np.round(np.array(polygon.points)).astype(np.int32)], 1)
    return canvas > 0


def _plain(specimen: SpecimenLabels) -> SpecimenLabels:
    """What YOLO keeps of boxes: class (canonical), geometry; no metadata."""
    return specimen.with_labels(
        BoxLabel(label=ORGANS.resolve(b.label), x=b.x, y=b.y, width=b.width, height=b.height) for b in specimen.boxes
    )


@pytest.mark.parametrize("seed", range(5))
def test_random_boxes_round_trip(seed: int, make_specimen: Any, labels_match: Any) -> None:
    specimen = make_specimen(seed, boxes=12, masks=0, polygons=0, rotated=False, classifications=False, metadata=False)
    text = as_yolo_detect(specimen, ORGANS)
    assert len(text.splitlines()) == 12
    back = from_yolo_detect(text, specimen.width, specimen.height, ORGANS)
    labels_match(back, _plain(specimen))


def test_detect_line_format() -> None:
    specimen = SpecimenLabels(
        width=800,
        height=400,
        labels=[
            BoxLabel(label="flowers", x=300, y=175, width=200, height=50, score=0.5),
            ClassificationLabel(label="sterile", control="phenology"),
            MaskLabel(label="plant", mask=np.ones((400, 800), dtype=bool)),
        ],
    )
    assert as_yolo_detect(specimen, ORGANS) == "1 0.5 0.5 0.25 0.125\n"
    assert as_yolo_detect(specimen, ORGANS, with_scores=True) == "1 0.5 0.5 0.25 0.125 0.5\n"
    assert as_yolo_detect(SpecimenLabels(width=5, height=5), ORGANS) == ""


def test_full_precision_is_written() -> None:
    box = BoxLabel(label="leaf", x=1 / 3, y=2 / 7, width=100 / 3, height=10 / 9)
    text = as_yolo_detect(SpecimenLabels(width=997, height=1009, labels=[box]), ORGANS)
    back = from_yolo_detect(text, 997, 1009, ORGANS).boxes[0]
    assert (back.x, back.y, back.width, back.height) == pytest.approx((box.x, box.y, box.width, box.height), abs=1e-9)


def test_scores_round_trip_and_blank_lines_are_skipped() -> None:
    text = "\n0 0.5 0.5 0.2 0.2 0.25\n   \n3 0.1 0.1 0.1 0.1\n"
    specimen = from_yolo_detect(text, 100, 100, ORGANS, source="organs@1.2.0")
    assert [b.score for b in specimen.boxes] == [0.25, None]
    assert [b.label for b in specimen.boxes] == ["leaf", "seed"]
    assert specimen.boxes[0].source == "organs@1.2.0"
    assert as_yolo_detect(specimen, ORGANS, with_scores=True) == "0 0.5 0.5 0.2 0.2 0.25\n3 0.1 0.1 0.1 0.1\n"


def test_rotated_box_is_an_error() -> None:
    specimen = SpecimenLabels(
        width=10, height=10, labels=[BoxLabel(label="leaf", x=1, y=1, width=2, height=2, rotation=30)]
    )
    with pytest.raises(LabelError, match="rotation"):
        as_yolo_detect(specimen, ORGANS)


def test_unknown_class_name_is_an_error() -> None:
    specimen = SpecimenLabels(width=10, height=10, labels=[BoxLabel(label="petal", x=1, y=1, width=2, height=2)])
    with pytest.raises(UnknownLabelError, match="petal"):
        as_yolo_detect(specimen, ORGANS)
    with pytest.raises(UnknownLabelError, match="petal"):
        as_yolo_segment(specimen.with_labels([PolygonLabel(label="petal", points=((0, 0), (1, 0), (1, 1)))]), ORGANS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n", "line 2"),
        ("0 0.5 0.5 0.1 0.1 0.9 0.1\n", "line 1"),
        ("\n\nleaf 0.5 0.5 0.1 0.1\n", "line 3"),
        ("1.0 0.5 0.5 0.1 0.1\n", "line 1"),
        ("6 0.5 0.5 0.1 0.1\n", "line 1"),
        ("-1 0.5 0.5 0.1 0.1\n", "line 1"),
        ("0 0.5 0.5 0.1 0.1\n0 0.5 x 0.1 0.1\n", "line 2"),
        ("0 0.5 nan 0.1 0.1\n", "line 1"),
        ("0 0.5 0.5 -0.1 0.1\n", "line 1"),
        ("0 0.5 0.5 0.1 0.1 1.5\n", "line 1"),
    ],
)
def test_malformed_detect_lines_name_the_line(text: str, message: str) -> None:
    with pytest.raises(LabelError, match=message):
        from_yolo_detect(text, 100, 100, ORGANS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0.1 0.1 0.2 0.1\n", "line 1"),
        ("0 0.1 0.1 0.2 0.1 0.2 0.2\n1 0.1 0.1 0.2\n", "line 2"),
        ("0 0.1 0.1 0.2 0.1 0.2 inf\n", "line 1"),
        ("9 0.1 0.1 0.2 0.1 0.2 0.2\n", "line 1"),
    ],
)
def test_malformed_segment_lines_name_the_line(text: str, message: str) -> None:
    with pytest.raises(LabelError, match=message):
        from_yolo_segment(text, 100, 100, ORGANS)


@pytest.mark.parametrize("seed", range(5))
def test_random_polygons_round_trip(seed: int, make_specimen: Any, labels_match: Any) -> None:
    specimen = make_specimen(seed, boxes=3, masks=0, polygons=8, classifications=False, metadata=False)
    text = as_yolo_segment(specimen, ORGANS, with_scores=True)
    assert len(text.splitlines()) == 8  # boxes are not segments
    back = from_yolo_segment(text, specimen.width, specimen.height, ORGANS)
    expected = specimen.with_labels(
        PolygonLabel(label=ORGANS.resolve(p.label), points=p.points, score=p.score) for p in specimen.polygons
    )
    labels_match(back, expected)


def test_segment_line_format() -> None:
    polygon = PolygonLabel(label="stem", points=((0, 0), (50, 0), (50, 25)))
    text = as_yolo_segment(SpecimenLabels(width=100, height=50, labels=[polygon]), ORGANS)
    assert text == "4 0.0 0.0 0.5 0.0 0.5 0.5\n"


@pytest.mark.parametrize("seed", range(5))
def test_random_masks_come_back_as_polygons_of_high_iou(seed: int, make_mask: Any, mask_iou: Any) -> None:
    rng = np.random.default_rng(seed)
    mask = make_mask(rng, 320, 240)
    specimen = SpecimenLabels(width=320, height=240, labels=[MaskLabel(label="plant", mask=mask)])
    back = from_yolo_segment(as_yolo_segment(specimen, PLANT), 320, 240, PLANT)
    assert {p.label for p in back.polygons} == {"plant"}
    assert mask_iou(rasterise(back), mask) >= 0.95


def test_holes_stay_empty() -> None:
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:50, 10:70] = True
    mask[20:40, 20:35] = False
    mask[25:30, 50:60] = False
    outlines = mask_outlines(mask)
    assert len(outlines) == 1
    back = from_yolo_segment(
        as_yolo_segment(SpecimenLabels(width=80, height=60, labels=[MaskLabel(label="plant", mask=mask)]), PLANT),
        80,
        60,
        PLANT,
    )
    assert np.array_equal(rasterise(back), mask)


def test_each_component_is_one_polygon() -> None:
    mask = np.zeros((30, 30), dtype=bool)
    mask[2:8, 2:8] = True
    mask[15:25, 12:28] = True
    mask[28, 28] = True  # a single pixel has no polygon
    assert len(mask_outlines(mask)) == 2
    assert mask_outlines(np.zeros((5, 5), dtype=bool)) == []


def test_real_masks_come_back_with_high_iou(real_mask: np.ndarray[Any, Any], mask_iou: Any) -> None:
    height, width = real_mask.shape
    specimen = SpecimenLabels(width=width, height=height, labels=[MaskLabel(label="plant", mask=real_mask)])
    back = from_yolo_segment(as_yolo_segment(specimen, PLANT), width, height, PLANT)
    assert mask_iou(rasterise(back), real_mask) >= 0.95
