"""Bugs the converters' property tests found, each kept as its smallest input: a regression test.

Each asks for a clear answer (a :class:`LabelError` naming the field) or a faithful round trip.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from herbarium.labels import BoxLabel, ClassificationLabel, LabelError, SpecimenLabels
from herbarium.labels.coco import from_coco
from herbarium.labels.labelstudio import ORIGIN_ATTRIBUTE, as_labelstudio, from_labelstudio
from herbarium.taxonomy import ORGANS

# Label Studio JSON (herbarium.labels.labelstudio)


def _box(value: dict[str, Any] | None = None, **item: Any) -> dict[str, Any]:
    geometry = {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["leaf"], **(value or {})}
    item = {"id": "r", "type": "rectanglelabels", "from_name": "organs", "value": geometry, **item}
    return {"original_width": 10, "original_height": 10, **item}


def _polygon(points: list[list[Any]]) -> dict[str, Any]:
    value = {"points": points, "closed": True, "polygonlabels": ["leaf"]}
    return {
        "id": "p",
        "type": "polygonlabels",
        "from_name": "o",
        "original_width": 10,
        "original_height": 10,
        "value": value,
    }


def test_a_region_with_the_comment_controls_id_leaves_the_specimen_comment_alone() -> None:
    # The task-level TextArea was written with id = its control name ('comment'): on reading, a region
    # whose id is 'comment' took the specimen's comment as its own. It is now written without an id.
    box = BoxLabel(label="leaf", x=1, y=1, width=2, height=2, region_id="comment")
    results = as_labelstudio(SpecimenLabels(width=10, height=10, labels=[box], comment="two sheets"))
    assert "id" not in results[-1]
    back = from_labelstudio(results)
    assert (back.comment, back.boxes[0].comment) == ("two sheets", None)
    with_its_own = SpecimenLabels(width=10, height=10, labels=[replace(box, comment="tip")], comment="x")
    back = from_labelstudio(as_labelstudio(with_its_own))
    assert (back.comment, back.boxes[0].comment) == ("x", "tip")


def test_a_task_level_textarea_with_an_id_as_label_studio_writes_it_is_still_the_comment() -> None:
    textarea = {"id": "Xk3_9aB2cd", "type": "textarea", "from_name": "notes", "value": {"text": ["two sheets"]}}
    assert from_labelstudio([_box(), textarea]).comment == "two sheets"


@pytest.mark.parametrize(
    ("second", "field"),
    [
        pytest.param({"score": 0.9}, "score", id="scores"),
        pytest.param({"score": 0.2, "attributes": {ORIGIN_ATTRIBUTE: ("manual",)}}, "origin", id="origins"),
    ],
)
def test_classifications_of_one_control_with_different_scores_or_origins_are_refused(
    second: dict[str, Any], field: str
) -> None:
    # One Choices result carries one score and one origin: the second's used to be silently replaced.
    labels: list[Any] = [
        ClassificationLabel(label="flowering", control="phenology", score=0.2),
        ClassificationLabel(label="fruiting", control="phenology", **second),
    ]
    with pytest.raises(LabelError, match=f"^{field}: classifications 'flowering' and 'fruiting'"):
        as_labelstudio(SpecimenLabels(width=10, height=10, labels=labels))


def test_classifications_of_one_control_with_one_score_share_a_choices_result() -> None:
    labels: list[Any] = [
        ClassificationLabel(label="flowering", control="phenology", score=0.4),
        ClassificationLabel(label="fruiting", control="phenology", score=0.4),
    ]
    results = as_labelstudio(SpecimenLabels(width=10, height=10, labels=labels))
    assert [(r["value"]["choices"], r["score"]) for r in results] == [(["flowering", "fruiting"], 0.4)]
    back = from_labelstudio(results, width=10, height=10).classifications
    assert [(c.label, c.control, c.score) for c in back] == [(c.label, c.control, c.score) for c in labels]


def test_an_id_less_region_never_replaces_another() -> None:
    # An id-less region was keyed '\0<index>': a region whose id was that string was replaced by it.
    results = [_box({"rectanglelabels": ["seed"]}, id="\x001"), {k: v for k, v in _box().items() if k != "id"}]
    back = from_labelstudio(results)
    assert [(box.label, box.region_id) for box in back.boxes] == [("seed", "\x001"), ("leaf", None)]


@pytest.mark.parametrize(
    ("results", "field"),
    [
        pytest.param([_box({"x": 10**400})], "results[0].value.x", id="value.x"),
        pytest.param([_box(score=10**400)], "results[0].score", id="score"),
        pytest.param([_box(original_width=10**400)], "results[0].original_width", id="original_width"),
        pytest.param([_box(image_rotation=10**400)], "results[0].image_rotation", id="image_rotation"),
        pytest.param(
            [_polygon([[0, 0], [1, 10**400], [1, 1]])],
            "results[0].value.points[1]",
            id="value.points",
        ),
    ],
)
def test_huge_integers_are_a_label_error_naming_the_field(results: list[Any], field: str) -> None:
    # A JSON integer beyond float range used to raise OverflowError.
    with pytest.raises(LabelError, match=f"^{re.escape(field)}: expected a finite number"):
        from_labelstudio(results)


# COCO (herbarium.labels.coco)


def _coco(annotation: dict[str, Any] | None = None, **image: Any) -> dict[str, Any]:
    """One 6 x 4 image (``image`` overrides its fields), category 1 = leaf, and ``annotation`` on it."""
    annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], **annotation}] if annotation else []
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 6, "height": 4, **image}],
        "categories": [{"id": 1, "name": "leaf"}],
        "annotations": annotations,
    }


def _twice(key: str, **second: Any) -> dict[str, Any]:
    coco = _coco({})
    coco[key].append({**coco[key][0], **second})
    return coco


# What each used to do, and the field the error names now.
COCO_REGRESSIONS = {
    # TypeError from the model's float()
    "list score": (_coco({"score": []}), r"annotations\[0\]\.score"),
    # float()'s bare ValueError, naming no field
    "text score": (_coco({"score": "high"}), r"annotations\[0\]\.score"),
    # OverflowError in math.isfinite
    "huge int bbox": (_coco({"bbox": [10**400, 0, 1, 1]}), r"annotations\[0\]\.bbox\[0\]"),
    "huge int polygon": (_coco({"segmentation": [[0, 0, 1, 0, 1, -(10**400)]]}), r"annotations\[0\]\.segmentation"),
    # silent drop: the second image with id 1 replaced the first
    "repeated image id": (_twice("images", file_name="b.jpg"), r"images\[1\]\.id"),
    # silent relabel: the later category with id 1 won, so the leaf annotation was read as root
    "repeated category id": (_twice("categories", name="root"), r"categories\[1\]\.id"),
    # pycocotools' ValueError('Invalid RLE mask representation')
    "bad compressed rle": (_coco({"segmentation": {"counts": "a", "size": [4, 6]}}), r"annotations\[0\]\.segmentation"),
    "bad compressed rle character": (
        _coco({"segmentation": {"counts": "9 20003", "size": [4, 6]}}),
        r"annotations\[0\]\.segmentation\.counts",
    ),
    # pycocotools returned a mask of uninitialised memory (different each run)
    "short compressed rle": (
        _coco({"segmentation": {"counts": "0", "size": [4, 6]}}),
        r"annotations\[0\]\.segmentation\.counts",
    ),
    "long compressed rle": (
        _coco({"segmentation": {"counts": "92200030", "size": [4, 6]}}),
        r"annotations\[0\]\.segmentation\.counts",
    ),
    # numpy's ValueError on reshaping
    "negative image size": (
        _coco({"segmentation": {"counts": [2], "size": [-2, -1]}}, width=-1, height=-2),
        r"images\[0\]\.width",
    ),
    "zero image height": (_coco({}, height=0), r"images\[0\]\.height"),
    # MemoryError: runs that add up to a consistent but enormous size were expanded into a mask
    "enormous rle mask": (
        _coco({"segmentation": {"counts": [2**40], "size": [2**20, 2**20]}}, width=2**20, height=2**20),
        r"annotations\[0\]\.segmentation\.size: a 1048576 x 1048576 mask is over",
    ),
    # AttributeError: 'list' has no 'get'
    "top level list": ([], "COCO file"),
}


@pytest.mark.parametrize(("coco", "field"), [pytest.param(*case, id=name) for name, case in COCO_REGRESSIONS.items()])
def test_malformed_coco_is_a_label_error_naming_the_field(coco: Any, field: str) -> None:
    with pytest.raises(LabelError, match=field):
        from_coco(coco, ORGANS)


def test_compressed_rle_is_read_exactly() -> None:
    # "9220003" is pycocotools' encoding of the runs [9, 2, 2, 2, 2, 2, 5] (each from the fourth on less
    # the one two before it), read in column-major order.
    mask = from_coco(_coco({"segmentation": {"counts": "9220003", "size": [4, 6]}}), ORGANS)[1].masks[0].mask
    expected = np.zeros((4, 6), dtype=bool)
    expected[1:3, 2:5] = True
    assert np.array_equal(mask, expected)


def test_an_enormous_brush_mask_is_refused_before_it_is_decoded() -> None:
    # 30,000 x 30,000 x 4 values fit the RLE's 32-bit length: decoding would allocate 3.6 GB.
    brush = {"format": "rle", "rle": [*(30_000 * 30_000 * 4).to_bytes(4, "big"), 0, 0], "brushlabels": ["leaf"]}
    results = [_box(brush, type="brushlabels", original_width=30_000, original_height=30_000)]
    with pytest.raises(LabelError, match=r"value\.rle: a 30000 x 30000 mask is over"):
        from_labelstudio(results)
