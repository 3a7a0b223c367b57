from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from herbarium.labels import (
    BoxLabel,
    ClassificationLabel,
    LabelError,
    LabelState,
    MaskLabel,
    PolygonLabel,
    SpecimenLabels,
)
from herbarium.taxonomy import ORGANS, PLANT, UnknownLabelError

fo = pytest.importorskip("fiftyone")

from herbarium.labels.fiftyone import (  # noqa: E402
    as_fiftyone,
    as_fiftyone_segmentation,
    from_fiftyone,
    from_fiftyone_segmentation,
)


def _back(specimen: SpecimenLabels, *, serialise: bool = False) -> SpecimenLabels:
    labels = as_fiftyone(specimen)
    detections, polylines = labels.detections, labels.polylines
    classifications = labels.classifications
    if serialise:
        # What a dataset stores and loads: the labels as plain dicts.
        detections = fo.Detections.from_dict(detections.to_dict())
        polylines = fo.Polylines.from_dict(polylines.to_dict())
        classifications = {k: fo.Classification.from_dict(v.to_dict()) for k, v in classifications.items()}
    return from_fiftyone(
        specimen.width, specimen.height, detections, polylines, classifications, comment=labels.comment
    )


@pytest.mark.parametrize("serialise", [False, True], ids=["objects", "dicts"])
@pytest.mark.parametrize("seed", range(5))
def test_random_specimens_round_trip_losslessly(
    seed: int, serialise: bool, make_specimen: Any, labels_match: Any
) -> None:
    specimen = make_specimen(seed)
    labels_match(_back(specimen, serialise=serialise), specimen)


def test_importing_the_converters_does_not_load_fiftyone() -> None:
    code = (
        "import sys\n"
        "import herbarium.labels.coco, herbarium.labels.fiftyone, herbarium.labels.labelstudio, herbarium.labels.yolo\n"
        "print(sorted(m for m in sys.modules if m == 'fiftyone' or m.startswith('fiftyone.')))\n"
    )
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


def test_boxes_are_relative_and_carry_the_model_fields() -> None:
    box = BoxLabel(
        label="leaf",
        x=70,
        y=20,
        width=140,
        height=50,
        rotation=12.5,
        score=0.75,
        source="organs@1.2.0",
        state=LabelState.CORRECTED,
        comment="tip",
        region_id="r1",
        control="organs",
        attributes={"verdict": ("wrong",)},
    )
    detection = as_fiftyone(SpecimenLabels(width=700, height=200, labels=[box])).detections.detections[0]
    assert detection.bounding_box == pytest.approx([0.1, 0.1, 0.2, 0.25])
    assert detection.label == "leaf"
    assert detection.confidence == 0.75
    assert detection.mask is None
    assert detection["rotation"] == 12.5
    assert detection["state"] == "corrected"
    assert detection["region_choices"] == {"verdict": ["wrong"]}
    assert (detection["source"], detection["comment"], detection["region_id"], detection["control"]) == (
        "organs@1.2.0",
        "tip",
        "r1",
        "organs",
    )


def test_mask_becomes_a_cropped_detection_mask() -> None:
    mask = np.zeros((40, 50), dtype=bool)
    mask[10:20, 5:30] = True
    mask[12, 40] = True
    specimen = SpecimenLabels(width=50, height=40, labels=[MaskLabel(label="plant", mask=mask)])
    detection = as_fiftyone(specimen).detections.detections[0]
    assert detection.bounding_box == pytest.approx([5 / 50, 10 / 40, 36 / 50, 10 / 40])
    assert detection.mask.shape == (10, 36)
    assert detection.mask.dtype == bool
    assert np.array_equal(detection.mask, mask[10:20, 5:41])


def test_polygons_are_closed_filled_polylines() -> None:
    polygon = PolygonLabel(label="fruit", points=((10, 10), (30, 10), (20, 40)))
    polyline = as_fiftyone(SpecimenLabels(width=100, height=50, labels=[polygon])).polylines.polylines[0]
    assert polyline.closed
    assert polyline.filled
    assert np.allclose(polyline.points, [[(0.1, 0.2), (0.3, 0.2), (0.2, 0.8)]])


def test_empty_mask_round_trips() -> None:
    specimen = SpecimenLabels(width=8, height=6, labels=[MaskLabel(label="plant", mask=np.zeros((6, 8), dtype=bool))])
    assert _back(specimen) == specimen


def test_real_masks_round_trip_exactly(real_mask: np.ndarray[Any, Any]) -> None:
    height, width = real_mask.shape
    specimen = SpecimenLabels(width=width, height=height, labels=[MaskLabel(label="plant", mask=real_mask, score=0.9)])
    assert _back(specimen, serialise=True) == specimen


def test_labels_from_other_tools_get_defaults() -> None:
    detections = fo.Detections(detections=[fo.Detection(label="leaf", bounding_box=[0.5, 0.5, 0.25, 0.25])])
    specimen = from_fiftyone(200, 100, detections, classifications={"phenology": fo.Classification(label="sterile")})
    box = specimen.boxes[0]
    assert (box.x, box.y, box.width, box.height, box.rotation) == (100, 50, 50, 25, 0)
    assert box.state is LabelState.PREDICTED
    assert box.attributes == {}
    assert specimen.classifications[0].control == "phenology"


def test_segmentation_holds_class_index_plus_one(make_mask: Any) -> None:
    rng = np.random.default_rng(11)
    leaf, stem = make_mask(rng, 64, 48), make_mask(rng, 64, 48)
    masks = [MaskLabel(label="leaves", mask=leaf), MaskLabel(label="stem", mask=stem)]
    segmentation = as_fiftyone_segmentation(masks, ORGANS)
    assert segmentation.mask.dtype == np.uint8
    expected = np.zeros((48, 64), dtype=np.uint8)
    expected[leaf] = ORGANS.index("leaf") + 1
    expected[stem] = ORGANS.index("stem") + 1  # later masks win overlaps
    assert np.array_equal(segmentation.mask, expected)
    back = from_fiftyone_segmentation(segmentation, ORGANS)
    assert [m.label for m in back] == ["leaf", "stem"]
    assert np.array_equal(back[0].mask, leaf & ~stem)
    assert np.array_equal(back[1].mask, stem)


def test_real_masks_round_trip_through_segmentation(real_mask: np.ndarray[Any, Any]) -> None:
    segmentation = as_fiftyone_segmentation([MaskLabel(label="specimen", mask=real_mask)], PLANT)
    assert set(np.unique(segmentation.mask).tolist()) == {0, 1}
    (back,) = from_fiftyone_segmentation(segmentation, PLANT)
    assert back.label == "plant"
    assert np.array_equal(back.mask, real_mask)


def test_empty_segmentation_needs_a_size() -> None:
    segmentation = as_fiftyone_segmentation([], PLANT, width=5, height=3)
    assert segmentation.mask.shape == (3, 5)
    assert from_fiftyone_segmentation(segmentation, PLANT) == []
    with pytest.raises(LabelError, match="mask"):
        as_fiftyone_segmentation([], PLANT)


def test_bad_input_names_the_field() -> None:
    one = SpecimenLabels(width=10, height=10, labels=[ClassificationLabel(label="sterile")])
    with pytest.raises(LabelError, match="control"):
        as_fiftyone(one)
    two = SpecimenLabels(
        width=10,
        height=10,
        labels=[
            ClassificationLabel(label="flowering", control="phenology"),
            ClassificationLabel(label="fruiting", control="phenology"),
        ],
    )
    with pytest.raises(LabelError, match="control"):
        as_fiftyone(two)
    wrong_size = fo.Detections(
        detections=[fo.Detection(label="plant", bounding_box=[0, 0, 0.5, 0.5], mask=np.ones((3, 3), bool))]
    )
    with pytest.raises(LabelError, match=r"detections\[0\]\.mask"):
        from_fiftyone(10, 10, wrong_size)
    outside = fo.Detections(
        detections=[fo.Detection(label="plant", bounding_box=[0.8, 0, 0.5, 0.5], mask=np.ones((5, 5), bool))]
    )
    with pytest.raises(LabelError, match=r"detections\[0\]\.bounding_box"):
        from_fiftyone(10, 10, outside)
    open_line = fo.Polylines(polylines=[fo.Polyline(label="leaf", points=[[(0, 0), (1, 0), (1, 1)]], closed=False)])
    with pytest.raises(LabelError, match=r"polylines\[0\]\.closed"):
        from_fiftyone(10, 10, polylines=open_line)
    with pytest.raises(LabelError, match="mask"):
        from_fiftyone_segmentation(fo.Segmentation(mask=np.full((2, 2), 9, np.uint8)), PLANT)
    with pytest.raises(LabelError, match="mask"):
        as_fiftyone_segmentation(
            [
                MaskLabel(label="plant", mask=np.ones((2, 2), bool)),
                MaskLabel(label="plant", mask=np.ones((3, 2), bool)),
            ],
            PLANT,
        )
    with pytest.raises(UnknownLabelError):
        as_fiftyone_segmentation([MaskLabel(label="petal", mask=np.ones((2, 2), bool))], ORGANS)
