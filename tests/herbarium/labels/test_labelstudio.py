from __future__ import annotations

import copy
import math
import random
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import pytest
from label_studio_sdk.converter.brush import encode_rle

from herbarium.labels import (
    BoxLabel,
    ClassificationLabel,
    LabelError,
    LabelState,
    MaskLabel,
    PolygonLabel,
    SpecimenLabels,
)
from herbarium.labels.labelstudio import (
    ORIGIN_ATTRIBUTE,
    TEXTAREA_ATTRIBUTE,
    as_labelstudio,
    from_labelstudio,
    task_image_size,
)

W, H = 698, 1024


def assert_json_equal(actual: Any, expected: Any, path: str = "") -> None:
    """Equal JSON, except that floats may differ in the last bits (percent -> pixels -> percent)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert sorted(actual) == sorted(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            assert_json_equal(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), path
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_json_equal(a, e, f"{path}[{i}]")
    elif isinstance(expected, float) or isinstance(actual, float):
        assert isinstance(actual, (int, float)), path
        assert not isinstance(actual, bool), path
        assert math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-12), f"{path}: {actual!r} != {expected!r}"
    else:
        assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def brush_rle(mask: np.ndarray[Any, Any]) -> list[int]:
    """RLE as our backend writes it (through the converter, the one place that encodes it)."""
    specimen = SpecimenLabels(width=mask.shape[1], height=mask.shape[0], labels=[MaskLabel(label="plant", mask=mask)])
    rle: list[int] = as_labelstudio(specimen)[0]["value"]["rle"]
    return rle


def ellipse_mask() -> np.ndarray[Any, Any]:
    canvas = np.zeros((H, W), dtype=np.uint8)
    cv2.ellipse(canvas, (350, 600), (200, 300), 15, 0, 360, 255, -1)
    cv2.circle(canvas, (350, 600), 60, 0, -1)
    return canvas > 0


def region(id_: str, kind: str, from_name: str, value: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "type": kind,
        "from_name": from_name,
        "to_name": "image",
        "original_width": W,
        "original_height": H,
        "image_rotation": 0,
        "value": value,
        **extra,
    }


def realistic_results() -> list[dict[str, Any]]:
    """An expert's annotation as Label Studio 1.23 serialises it (areas in creation order)."""
    r1 = {"x": 84 / W * 100, "y": 310 / H * 100, "width": 140 / W * 100, "height": 100 / H * 100, "rotation": 0}
    r2 = {
        "x": 55.87392550143267,
        "y": 12.5,
        "width": 8.166189111747851,
        "height": 4.6875,
        "rotation": 33.69006752597977,
    }
    p1 = {
        "points": [
            [40.11461318051576, 60.05859375],
            [45.5, 61.1328125],
            [43.26647564469914, 66.69921875],
            [38.968481375358166, 64.35546875],
        ],
        "closed": True,
    }
    b1 = {"format": "rle", "rle": brush_rle(ellipse_mask())}
    return [
        {
            "id": "Ph3n0l0gy1",
            "type": "choices",
            "from_name": "phenology",
            "to_name": "image",
            "value": {"choices": ["flowering", "fruiting"]},
            "origin": "manual",
        },
        region("aB3dE5fG7h", "rectanglelabels", "organs", {**r1, "rectanglelabels": ["leaf"]}, origin="manual"),
        region("aB3dE5fG7h", "choices", "verdict", {**r1, "choices": ["correct"]}, origin="manual"),
        region("aB3dE5fG7h", "textarea", "region_comment", {**r1, "text": ["tip damaged"]}, origin="manual"),
        region(
            "Zq9Xw8Vu7t",
            "rectanglelabels",
            "organs",
            {**r2, "rectanglelabels": ["flower"]},
            origin="prediction",
            score=0.87,
        ),
        region(
            "Pp1Oo2Ii3U",
            "polygonlabels",
            "organ_outline",
            {**p1, "polygonlabels": ["fruit"]},
            origin="prediction-changed",
        ),
        region("Pp1Oo2Ii3U", "choices", "verdict", {**p1, "choices": ["wrong"]}, origin="prediction-changed"),
        region(
            "Bb1Rr2Uu3S", "brushlabels", "plant_mask", {**b1, "brushlabels": ["plant"]}, origin="prediction", score=0.93
        ),
        region("Bb1Rr2Uu3S", "choices", "verdict", {**b1, "choices": ["correct"]}, origin="prediction"),
        {
            "id": "Lm4rg1n000",
            "type": "choices",
            "from_name": "leaf_margin",
            "to_name": "image",
            "value": {"choices": ["toothed"]},
            "origin": "manual",
        },
        {
            "id": "Xk3_9aB2cd",
            "type": "textarea",
            "from_name": "notes",
            "to_name": "image",
            "value": {"text": ["Two specimens on one sheet."]},
            "origin": "manual",
        },
    ]


def test_realistic_annotation_round_trips_to_the_same_json() -> None:
    results = realistic_results()
    specimen = from_labelstudio(copy.deepcopy(results), source="expert:7", state=LabelState.VALIDATED)
    back = as_labelstudio(specimen, default_controls={"comment": "notes"})
    expected = copy.deepcopy(results)
    # The task-level TextArea has no label to keep its id and origin on (documented): written without them.
    del expected[-1]["id"]
    del expected[-1]["origin"]
    assert_json_equal(back, expected)
    # Everything but the coordinates is exactly equal, RLE bytes included.
    assert back[7]["value"]["rle"] == results[7]["value"]["rle"]
    assert back[8]["value"]["rle"] == results[8]["value"]["rle"]


def test_realistic_annotation_reads_into_the_model() -> None:
    specimen = from_labelstudio(realistic_results(), source="expert:7", state=LabelState.VALIDATED)
    assert (specimen.width, specimen.height) == (W, H)
    assert specimen.comment == "Two specimens on one sheet."
    labels = specimen.labels
    assert [type(label).__name__ for label in labels] == [
        "ClassificationLabel",
        "ClassificationLabel",
        "BoxLabel",
        "BoxLabel",
        "PolygonLabel",
        "MaskLabel",
        "ClassificationLabel",
    ]
    phenology = labels[:2]
    leaf, flower, fruit, plant, margin = labels[2:]
    assert [c.label for c in phenology] == ["flowering", "fruiting"]
    assert all(c.control == "phenology" and c.region_id == "Ph3n0l0gy1" for c in phenology)
    assert isinstance(leaf, BoxLabel)
    # Percent of the original size -> pixels.
    assert (leaf.x, leaf.y, leaf.width, leaf.height) == pytest.approx((84, 310, 140, 100), abs=1e-9)
    assert (leaf.label, leaf.control, leaf.region_id) == ("leaf", "organs", "aB3dE5fG7h")
    assert leaf.comment == "tip damaged"
    assert leaf.attributes == {
        ORIGIN_ATTRIBUTE: ("manual",),
        "verdict": ("correct",),
        TEXTAREA_ATTRIBUTE: ("region_comment",),
    }
    assert (leaf.source, leaf.state) == ("expert:7", LabelState.VALIDATED)
    assert isinstance(flower, BoxLabel)
    assert flower.rotation == pytest.approx(33.69006752597977)
    assert flower.score == 0.87
    assert flower.x == pytest.approx(55.87392550143267 / 100 * W)
    assert isinstance(fruit, PolygonLabel)
    assert fruit.points[1] == pytest.approx((45.5 / 100 * W, 61.1328125 / 100 * H))
    assert fruit.attributes["verdict"] == ("wrong",)
    assert isinstance(plant, MaskLabel)
    assert np.array_equal(plant.mask, ellipse_mask())
    assert (margin.label, margin.control) == ("toothed", "leaf_margin")


def test_order_of_areas_is_kept() -> None:
    results = realistic_results()[:-1]  # without the task-level TextArea, the order is exact
    moved = [results[9], *results[:9]]
    back = as_labelstudio(from_labelstudio(moved))
    assert_json_equal(back, moved)


def test_prediction_without_origin_round_trips_with_a_default_score() -> None:
    results = [
        {
            "id": "p0",
            "type": "rectanglelabels",
            "from_name": "organs",
            "to_name": "image",
            "original_width": W,
            "original_height": H,
            "image_rotation": 0,
            "value": {"x": 1.5, "y": 2.25, "width": 10, "height": 20, "rotation": 0, "rectanglelabels": ["seed"]},
        }
    ]
    specimen = from_labelstudio(results, source="organs@1.2.0", score=0.5)
    box = specimen.boxes[0]
    assert (box.score, box.source, box.state) == (0.5, "organs@1.2.0", LabelState.PREDICTED)
    assert box.attributes == {}
    back = as_labelstudio(specimen)
    assert "origin" not in back[0]
    expected = copy.deepcopy(results)
    expected[0]["score"] = 0.5
    assert_json_equal(back, expected)


@pytest.mark.parametrize("seed", range(5))
def test_random_specimens_round_trip(seed: int, make_specimen: Any, labels_match: Any) -> None:
    specimen = make_specimen(seed)
    results = as_labelstudio(specimen, default_controls={"comment": "notes"})
    back = from_labelstudio(results)
    # Label Studio reads source/state from the caller; the rest must come back.
    expected = specimen.with_labels(_with(label, source=None, state=LabelState.PREDICTED) for label in specimen.labels)
    for label in back.labels:
        label.attributes = {k: v for k, v in label.attributes.items() if k != TEXTAREA_ATTRIBUTE}
    labels_match(back, expected)
    assert_json_equal(as_labelstudio(back, default_controls={"comment": "notes"}), results)


def _with(label: Any, **changes: Any) -> Any:
    return replace(label, **changes)


def test_real_masks_round_trip_exactly(real_mask: np.ndarray[Any, Any]) -> None:
    height, width = real_mask.shape
    specimen = SpecimenLabels(
        width=width,
        height=height,
        labels=[MaskLabel(label="plant", mask=real_mask, region_id="m", control="plant_mask")],
    )
    results = as_labelstudio(specimen)
    assert (results[0]["original_width"], results[0]["original_height"]) == (width, height)
    back = from_labelstudio(results)
    assert np.array_equal(back.masks[0].mask, real_mask)
    assert as_labelstudio(back) == results


def test_editor_rle_is_read_from_the_alpha_channel() -> None:
    # The editor writes grey = alpha, antialiased edges included; an older one wrote label colours.
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[1:3, 1:4] = 255
    mask[0, 0] = 3  # a faint antialiased pixel still counts, as the editor shows it
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0] = np.where(mask > 0, 200, 0)  # colour, ignored...
    rgba[1, 1, :3] = 0  # ...even black where the alpha says set
    rgba[3, 4, :3] = 77  # ...or coloured where the alpha says empty
    rgba[..., 3] = mask
    item = {
        "id": "b",
        "type": "brushlabels",
        "from_name": "plant_mask",
        "to_name": "image",
        "original_width": 5,
        "original_height": 4,
        "value": {"format": "rle", "rle": encode_rle(rgba.ravel()), "brushlabels": ["plant"]},
    }
    assert np.array_equal(from_labelstudio([item]).masks[0].mask, mask > 0)


def test_labels_without_control_use_default_controls_and_get_fresh_ids() -> None:
    specimen = SpecimenLabels(
        width=100,
        height=50,
        labels=[
            BoxLabel(label="leaf", x=10, y=5, width=20, height=10, region_id="region0"),
            PolygonLabel(label="leaf", points=((0, 0), (10, 0), (10, 10)), comment="check"),
            ClassificationLabel(label="sterile"),
        ],
    )
    results = as_labelstudio(
        specimen, to_name="img", default_controls={"box": "boxes", "polygon": "outline", "classification": "phenology"}
    )
    assert [r["from_name"] for r in results] == ["boxes", "outline", "comment", "phenology"]
    assert {r["to_name"] for r in results} == {"img"}
    ids = [r["id"] for r in results]
    assert ids[0] == "region0"
    assert ids[1] == ids[2]  # the polygon's TextArea result shares its region id
    assert len({ids[0], ids[1], ids[3]}) == 3
    assert results[0]["value"] == {
        "x": 10.0,
        "y": 10.0,
        "width": 20.0,
        "height": 20.0,
        "rotation": 0.0,
        "rectanglelabels": ["leaf"],
    }


def test_empty_results_need_a_size() -> None:
    assert from_labelstudio([], width=10, height=20) == SpecimenLabels(width=10, height=20)
    with pytest.raises(LabelError, match="original_width"):
        from_labelstudio([])


def test_task_level_results_alone_take_the_size_from_keywords() -> None:
    results = [
        {"id": "c", "type": "choices", "from_name": "phenology", "to_name": "image", "value": {"choices": ["sterile"]}}
    ]
    specimen = from_labelstudio(results, width=30, height=40)
    assert specimen.classifications[0].label == "sterile"
    assert as_labelstudio(specimen) == results


def test_json_comparison_detects_a_changed_coordinate() -> None:
    results = realistic_results()
    changed = copy.deepcopy(results)
    changed[1]["value"]["x"] += 1e-6
    with pytest.raises(AssertionError):
        assert_json_equal(changed, results)


def _rect(**changes: Any) -> dict[str, Any]:
    item = region(
        "r",
        "rectanglelabels",
        "organs",
        {"x": 1, "y": 2, "width": 3, "height": 4, "rotation": 0, "rectanglelabels": ["leaf"]},
    )
    for key, value in changes.items():
        if value is _DELETE:
            del item[key]
        else:
            item[key] = value
    return item


_DELETE = object()


def _value(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    item = copy.deepcopy(item)
    for key, value in changes.items():
        if value is _DELETE:
            del item["value"][key]
        else:
            item["value"][key] = value
    return item


def _brush(width: int, height: int) -> dict[str, Any]:
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:5, 3:7] = True
    return region(
        "b", "brushlabels", "plant_mask", {"format": "rle", "rle": brush_rle(mask), "brushlabels": ["plant"]}
    ) | {
        "original_width": width,
        "original_height": height,
    }


def _per_region(id_: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return region(id_, kind, "verdict", {"x": 1, "y": 2, "width": 3, "height": 4, "rotation": 0, **value})


@pytest.mark.parametrize(
    ("results", "field"),
    [
        pytest.param([_rect(original_width=_DELETE)], "original_width", id="missing original_width"),
        pytest.param([_rect(original_height=_DELETE)], "original_height", id="missing original_height"),
        pytest.param([_rect(original_width=0)], "original_width", id="zero original_width"),
        pytest.param([_rect(), _rect(id="s", original_width=W + 1)], "original_width", id="two image sizes"),
        pytest.param([_rect(type="ellipselabels")], "type", id="unknown type"),
        pytest.param([_rect(type=_DELETE)], "type", id="missing type"),
        pytest.param([_rect(from_name=_DELETE)], "from_name", id="missing from_name"),
        pytest.param([_rect(value=_DELETE)], "value", id="missing value"),
        pytest.param([_value(_rect(), x=_DELETE)], "value.x", id="missing value.x"),
        pytest.param([_value(_rect(), height=_DELETE)], "value.height", id="missing value.height"),
        pytest.param([_value(_rect(), y="2")], "value.y", id="text value.y"),
        pytest.param([_value(_rect(), rectanglelabels=_DELETE)], "value.rectanglelabels", id="missing labels"),
        pytest.param([_value(_rect(), rectanglelabels=["leaf", "seed"])], "rectanglelabels", id="two labels"),
        pytest.param([_value(_rect(), rectanglelabels=[])], "rectanglelabels", id="no label"),
        pytest.param([_rect(image_rotation=90)], "image_rotation", id="rotated view"),
        pytest.param([_rect(), _rect(id="s", to_name="other")], "to_name", id="two object tags"),
        pytest.param(
            [region("p", "polygonlabels", "o", {"polygonlabels": ["leaf"]})], "value.points", id="missing value.points"
        ),
        pytest.param(
            [region("p", "polygonlabels", "o", {"points": [[1, 2], [3]], "polygonlabels": ["leaf"]})],
            "value.points",
            id="bad point",
        ),
        pytest.param(
            [
                region(
                    "p",
                    "polygonlabels",
                    "o",
                    {"points": [[1, 2], [3, 4], [5, 1]], "closed": False, "polygonlabels": ["leaf"]},
                )
            ],
            "value.closed",
            id="open polygon",
        ),
        pytest.param([_brush(10, 11)], "value.rle", id="rle longer than the image"),
        pytest.param([_value(_brush(10, 10), rle=_DELETE)], "value.rle", id="missing value.rle"),
        pytest.param([_value(_brush(10, 10), rle=[1, 2, 3])], "value.rle", id="short rle"),
        pytest.param([_value(_brush(10, 10), rle=[0, 0, 1, 144, 7])], "value.rle", id="truncated rle"),
        pytest.param([_value(_brush(10, 10), format="png")], "value.format", id="unknown brush format"),
        pytest.param([_rect(), _per_region("nowhere", "choices", {"choices": ["ok"]})], "id", id="orphan per-region"),
        pytest.param([_rect(), _per_region("r", "choices", {})], "value.choices", id="missing value.choices"),
        pytest.param([_rect(), _per_region("r", "textarea", {})], "value.text", id="missing value.text"),
        pytest.param(
            [_rect(), _per_region("r", "choices", {"choices": ["a"]}), _per_region("r", "choices", {"choices": ["b"]})],
            "from_name",
            id="two verdicts for one region",
        ),
        pytest.param(
            [
                {"id": "a", "type": "textarea", "from_name": "notes", "to_name": "image", "value": {"text": ["a"]}},
                {"id": "b", "type": "textarea", "from_name": "more", "to_name": "image", "value": {"text": ["b"]}},
                _rect(),
            ],
            "from_name",
            id="two task comments",
        ),
        pytest.param([_rect(score="high")], "score", id="text score"),
    ],
)
def test_bad_input_names_the_field(results: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(LabelError, match=field.replace(".", r"\.")):
        from_labelstudio(results)


@pytest.mark.parametrize(
    "labels",
    [
        [
            BoxLabel(label="leaf", x=0, y=0, width=1, height=1, region_id="a"),
            BoxLabel(label="leaf", x=0, y=0, width=2, height=2, region_id="a"),
        ],
        [
            BoxLabel(label="leaf", x=0, y=0, width=1, height=1, region_id="a"),
            ClassificationLabel(label="sterile", control="phenology", region_id="a"),
        ],
    ],
    ids=["two regions", "classification and region"],
)
def test_shared_region_ids_are_an_error(labels: list[Any]) -> None:
    with pytest.raises(LabelError, match="region_id"):
        as_labelstudio(SpecimenLabels(width=10, height=10, labels=labels))


def test_per_region_data_on_a_classification_is_an_error() -> None:
    label = ClassificationLabel(label="sterile", control="phenology", attributes={"verdict": ("correct",)})
    with pytest.raises(LabelError, match="attributes"):
        as_labelstudio(SpecimenLabels(width=10, height=10, labels=[label]))


def test_classification_without_control_is_an_error() -> None:
    specimen = SpecimenLabels(width=10, height=10, labels=[ClassificationLabel(label="sterile")])
    with pytest.raises(LabelError, match="control"):
        as_labelstudio(specimen)


def test_several_texts_are_joined() -> None:
    results = [_rect(), _per_region("r", "textarea", {"text": ["one", "two"]})]
    assert from_labelstudio(results).boxes[0].comment == "one\ntwo"


def test_shuffled_per_region_results_still_attach() -> None:
    results = realistic_results()[:-1]
    shuffled = results[:]
    random.Random(3).shuffle(shuffled)
    specimen = from_labelstudio(shuffled)
    assert len(specimen.boxes) == 2
    assert specimen.boxes[0].attributes["verdict"] == ("correct",)
    back = as_labelstudio(specimen)
    key = lambda r: (r["id"], r["from_name"])  # noqa: E731
    assert_json_equal(sorted(back, key=key), sorted(results, key=key))


def test_a_tasks_image_size_is_its_first_sized_regions() -> None:
    sized = {"original_width": 300, "original_height": 500}
    task = {
        "predictions": [{"result": [{"original_width": 0, "original_height": 10}]}, "not a record"],
        "annotations": [{"result": [sized, {"original_width": 1, "original_height": 1}]}],
    }
    assert task_image_size(task) == (300, 500)
    assert task_image_size({"annotations": [{"result": []}]}) is None
    assert task_image_size({}) is None
