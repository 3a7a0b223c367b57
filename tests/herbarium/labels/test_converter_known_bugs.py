"""Bugs the converters' property tests found or steer clear of: each the smallest input, a strict xfail.

When a fix lands, its example passes, the strict xfail fails, and the mark (and the matching exclusion in
the property test's strategy or ``known_bug``) comes off.
"""

from __future__ import annotations

from typing import Any

import pytest

from herbarium.labels import BoxLabel, ClassificationLabel, LabelError, SpecimenLabels
from herbarium.labels.coco import from_coco
from herbarium.labels.labelstudio import as_labelstudio, from_labelstudio
from herbarium.taxonomy import ORGANS, UnknownLabelError

# Label Studio JSON (herbarium.labels.labelstudio)


def _box(value: dict[str, Any] | None = None, **item: Any) -> dict[str, Any]:
    geometry = {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["leaf"], **(value or {})}
    item = {"id": "r", "type": "rectanglelabels", "from_name": "organs", "value": geometry, **item}
    return {"original_width": 10, "original_height": 10, **item}


@pytest.mark.xfail(
    strict=True,
    reason="the task-level TextArea is written with id = its control name ('comment'), so on reading a region "
    "whose id is 'comment' takes the specimen's comment as its own",
)
def test_a_region_with_the_comment_controls_id_leaves_the_specimen_comment_alone() -> None:
    box = BoxLabel(label="leaf", x=1, y=1, width=2, height=2, region_id="comment")
    back = from_labelstudio(as_labelstudio(SpecimenLabels(width=10, height=10, labels=[box], comment="two sheets")))
    assert (back.comment, back.boxes[0].comment) == ("two sheets", None)


@pytest.mark.xfail(
    strict=True,
    reason="classifications sharing a control (and region id) are written as one Choices result that carries "
    "the first one's score (and origin): the others' scores are silently replaced",
)
def test_classifications_of_one_control_keep_their_own_scores() -> None:
    labels: list[Any] = [
        ClassificationLabel(label="flowering", control="phenology", score=0.2),
        ClassificationLabel(label="fruiting", control="phenology", score=0.9),
    ]
    try:
        results = as_labelstudio(SpecimenLabels(width=10, height=10, labels=labels))
    except LabelError:
        return  # refusing is a clear answer too
    assert [c.score for c in from_labelstudio(results, width=10, height=10).classifications] == [0.2, 0.9]


@pytest.mark.xfail(
    strict=True,
    reason="a region result without an id is keyed '\\0<index>'; a region whose id is that same string is "
    "silently replaced by it (its label dropped, the other read twice)",
)
def test_an_id_less_region_never_replaces_another() -> None:
    results = [_box({"rectanglelabels": ["seed"]}, id="\x001"), {k: v for k, v in _box().items() if k != "id"}]
    try:
        back = from_labelstudio(results)
    except LabelError:
        return  # refusing is a clear answer too
    assert [box.label for box in back.boxes] == ["seed", "leaf"]


@pytest.mark.xfail(strict=True, reason="a JSON integer beyond float range raises OverflowError, not LabelError")
@pytest.mark.parametrize(
    "results",
    [
        pytest.param([_box({"x": 10**400})], id="value.x"),
        pytest.param([_box(score=10**400)], id="score"),
        pytest.param([_box(original_width=10**400)], id="original_width"),
    ],
)
def test_huge_integers_are_a_label_error(results: list[Any]) -> None:
    with pytest.raises(LabelError):
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


KNOWN_BUGS = {
    "list score": (
        _coco({"score": []}),
        "from_coco passes annotation['score'] unchecked to the model, whose float() raises TypeError",
    ),
    "text score": (
        _coco({"score": "high"}),
        "a non-numeric text score raises float()'s bare ValueError, which names no field, not LabelError",
    ),
    "huge int bbox": (
        _coco({"bbox": [10**400, 0, 1, 1]}),
        "a JSON integer beyond float range raises OverflowError in math.isfinite, not LabelError",
    ),
    "repeated image id": (
        _twice("images", file_name="b.jpg"),
        "silent drop: the second image with id 1 replaces the first (as_coco calls a repeated id an error)",
    ),
    "repeated category id": (
        _twice("categories", name="root"),
        "silent relabel: the later category with id 1 wins, so the leaf annotation is read as root",
    ),
    "bad compressed rle": (
        _coco({"segmentation": {"counts": "a", "size": [4, 6]}}),
        "pycocotools' ValueError('Invalid RLE mask representation') escapes unwrapped, naming no field",
    ),
    "short compressed rle": (
        _coco({"segmentation": {"counts": "0", "size": [4, 6]}}),
        "compressed runs that do not cover height x width are not checked: pycocotools returns a mask of "
        "uninitialised memory (different each run), read without error",
    ),
    "negative image size": (
        _coco({"segmentation": {"counts": [2], "size": [-2, -1]}}, width=-1, height=-2),
        "negative width/height are not checked before the RLE is reshaped: numpy's ValueError, not LabelError",
    ),
    "top level list": ([], "a COCO file holding a JSON list raises AttributeError ('list' has no 'get')"),
}


@pytest.mark.parametrize(
    "coco",
    [
        pytest.param(coco, id=name, marks=pytest.mark.xfail(strict=True, reason=reason))
        for name, (coco, reason) in KNOWN_BUGS.items()
    ],
)
def test_known_bugs_in_reading_coco(coco: Any) -> None:
    with pytest.raises((LabelError, UnknownLabelError)):
        from_coco(coco, ORGANS)
