"""Property tests of the COCO converter: valid images round trip exactly through a COCO file; malformed
COCO gives labels or a clear error (:class:`LabelError`, :class:`UnknownLabelError`), and no image or
annotation is dropped silently. The bugs these found are regression tests in test_converter_regressions.py."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from herbarium.labels import ClassificationLabel, SpecimenLabels
from herbarium.labels.coco import as_coco, from_coco
from herbarium.taxonomy import ORGANS, LabelSet
from tests.herbarium.labels.label_strategies import (
    JSON_VALUES,
    LABEL_SETS,
    mutations,
    plain_specimens,
    read_or_clear_error,
    share_of_examples,
    what_coco_keeps,
)

# Mutations of documents with masks: half the profile's count (150 in CI); the rest run it all (300).
MUTATION_SETTINGS = share_of_examples(1 / 2)


@st.composite
def coco_images(draw: st.DrawFn) -> tuple[LabelSet, list[tuple[int, str, SpecimenLabels]]]:
    """A label set and up to 3 images (unique ids, any file name) of boxes, polygons and masks named
    from it or its aliases, plus a specimen-level classification COCO has no form for."""
    label_set = draw(st.sampled_from(LABEL_SETS))
    ids = draw(st.lists(st.integers(-(2**31), 2**31), unique=True, max_size=3))
    images = []
    for image_id in ids:
        specimen = draw(plain_specimens(label_set=label_set, max_side=24, masks=True, max_labels=4))
        if draw(st.booleans()):
            specimen.labels.append(ClassificationLabel(label="sterile", control="phenology"))
        images.append((image_id, draw(st.text(max_size=8)), specimen))
    return label_set, images


@given(coco_images())
def test_images_round_trip_exactly_through_a_coco_file(case: tuple[LabelSet, Any]) -> None:
    label_set, images = case
    back = from_coco(json.loads(json.dumps(as_coco(images, label_set))), label_set)
    assert list(back) == [image_id for image_id, _, _ in images]
    for image_id, file_name, specimen in images:
        assert back[image_id] == what_coco_keeps(specimen, label_set, file_name)  # floats, masks: exactly


def assert_nothing_dropped(coco: dict[str, Any], back: dict[int, SpecimenLabels]) -> None:
    """One entry per image; one label per annotation, or per part of a multi-part polygon."""
    assert len(back) == len(coco["images"])
    parts = [a.get("segmentation") for a in coco.get("annotations", [])]
    expected = sum(len(p) if isinstance(p, list) and p else 1 for p in parts)
    assert sum(len(specimen) for specimen in back.values()) == expected


@given(JSON_VALUES | st.dictionaries(st.sampled_from(["images", "annotations", "categories"]), JSON_VALUES))
def test_any_json_gives_labels_or_a_clear_error(coco: Any) -> None:
    back = read_or_clear_error(lambda: from_coco(coco, ORGANS))
    if back is None:
        return
    assert_nothing_dropped(coco, back)


@MUTATION_SETTINGS
@given(coco_images().flatmap(lambda case: st.tuples(st.just(case[0]), mutations(as_coco(case[1], case[0])))))
def test_mutated_coco_gives_every_annotation_or_a_clear_error(case: tuple[LabelSet, Any]) -> None:
    label_set, coco = case
    back = read_or_clear_error(lambda: from_coco(coco, label_set))
    if back is None:
        return
    assert_nothing_dropped(coco, back)
