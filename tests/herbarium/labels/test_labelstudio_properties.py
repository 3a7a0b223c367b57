"""Property tests of the Label Studio converter: valid specimens round trip; malformed results give
labels or a :class:`LabelError`, never another exception, and no region is dropped silently.

The bugs these found are regression tests in test_converter_regressions.py."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import label_studio_sdk.converter.brush  # noqa: F401  (first import touches `random`: not inside a strategy)
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from herbarium.labels import BoxLabel, ClassificationLabel, LabelError, LabelState, PolygonLabel, SpecimenLabels
from herbarium.labels.labelstudio import (
    DEFAULT_CONTROLS,
    ORIGIN_ATTRIBUTE,
    TEXTAREA_ATTRIBUTE,
    as_labelstudio,
    from_labelstudio,
)
from herbarium.taxonomy import TRAITS
from tests.herbarium.labels.label_strategies import (
    EDGE_VALUES,
    JSON_SCALARS,
    JSON_VALUES,
    KNOWN_KEYS,
    mutations,
    names_in,
    plain_specimens,
    read_or_clear_error,
    same_geometry,
    scores,
    share_of_examples,
)

REGION_TYPES = {"rectanglelabels", "polygonlabels", "brushlabels"}
KIND = {BoxLabel: "box", PolygonLabel: "polygon"}  # else a mask
ORIGINS = st.sampled_from(["manual", "prediction", "prediction-changed"])
# Any non-empty ids; often the task-level TextArea's control ("comment") or what an id-less region was
# once keyed by ("\0" + its index), bugs these found (test_converter_regressions.py), or what fresh ids look like.
IDS = (
    st.sampled_from(["comment", "\x000", "\x001", "\x002"])
    | st.sampled_from(["region0", "region1", "notes", "Zq9Xw8Vu7t", "é ☃"])
    | st.text(min_size=1, max_size=4)
)
CHOICE_CONTROLS = st.sampled_from(["verdict", "quality", "comment", "notes 2", "é"])
# Specimens with every Label Studio field are slow to draw: 200 round trips in CI, 150 mixes with garbage,
# 100 with masks (small images; the SDK's RLE is bit by bit) or mutated. Pure garbage: the profile's 300.
ROUND_TRIP_SETTINGS = share_of_examples(2 / 3)
MIXED_SETTINGS = share_of_examples(1 / 2)
MASK_SETTINGS = share_of_examples(1 / 3)


@st.composite
def labelstudio_specimens(
    draw: st.DrawFn, *, masks: bool = False, mixed_choices: bool = False
) -> tuple[SpecimenLabels, str | None, LabelState]:
    """A specimen with everything Label Studio keeps: ids, controls, per-region choices and comments,
    origins, task-level Choices (several choices per control) in any order; one source and state.
    The choices of one control share a score and an origin, as one Choices result does, unless
    ``mixed_choices`` (then some differ: such a specimen cannot be written)."""
    base = draw(plain_specimens(max_side=16 if masks else 5000, rotated=True, masks=masks))
    source, state = draw(st.none() | st.sampled_from(["organs@1.2.0", "expert:7"])), draw(st.sampled_from(LabelState))
    controls = draw(st.lists(st.sampled_from(sorted(TRAITS)), unique=True))
    ids = iter(draw(st.lists(IDS, unique=True, min_size=len(base) + len(controls), max_size=len(base) + len(controls))))
    areas: list[list[Any]] = []
    for label in base.labels:
        comment = draw(st.none() | st.text(max_size=8))
        attributes = draw(st.dictionaries(CHOICE_CONTROLS, st.lists(st.text(max_size=4), max_size=2).map(tuple)))
        if (origin := draw(st.none() | ORIGINS)) is not None:
            attributes[ORIGIN_ATTRIBUTE] = (origin,)
        if comment is not None and draw(st.booleans()):
            attributes[TEXTAREA_ATTRIBUTE] = ("region_comment",)
        region_id = next(ids) if draw(st.booleans()) else None
        control = draw(st.none() | st.sampled_from(["organs", "plant_mask", "outline"]))
        areas.append([replace(label, region_id=region_id, control=control, comment=comment, attributes=attributes)])
    for control in controls:
        score, origin, region_id = draw(scores()), draw(st.none() | ORIGINS), next(ids) if draw(st.booleans()) else None
        area = []
        for name in draw(st.lists(names_in(TRAITS[control]), min_size=1, max_size=3)):
            if mixed_choices:
                score, origin = draw(st.just(score) | scores()), draw(st.just(origin) | st.none() | ORIGINS)
            attributes = {} if origin is None else {ORIGIN_ATTRIBUTE: (origin,)}
            area.append(
                ClassificationLabel(
                    label=name, score=score, control=control, region_id=region_id, attributes=attributes
                )
            )
        areas.append(area)
    labels = [replace(label, source=source, state=state) for area in draw(st.permutations(areas)) for label in area]
    return replace(base, labels=labels, comment=draw(st.none() | st.text(max_size=8))), source, state


def assert_same_labels(back: SpecimenLabels, specimen: SpecimenLabels) -> None:
    """Same size, comment and labels in order: geometry within float rounding, all else exactly; a label
    with no id or control gets a fresh id and its kind's default control, a region comment its TextArea's."""
    assert (back.width, back.height, back.comment) == (specimen.width, specimen.height, specimen.comment)
    assert len(back.labels) == len(specimen.labels)
    given_ids = {label.region_id for label in specimen.labels}
    for got, want in zip(back.labels, specimen.labels, strict=True):
        assert same_geometry(got, want), (got, want)
        assert (got.label, got.score, got.comment) == (want.label, want.score, want.comment)
        assert (got.source, got.state) == (want.source, want.state)
        assert got.control == (want.control or DEFAULT_CONTROLS[KIND.get(type(want), "mask")])
        assert got.region_id == want.region_id if want.region_id is not None else got.region_id not in given_ids
        expected = dict(want.attributes)
        if want.comment is not None:
            expected.setdefault(TEXTAREA_ATTRIBUTE, (DEFAULT_CONTROLS["region_comment"],))
        assert got.attributes == expected


def _read(results: Any, specimen: SpecimenLabels, source: str | None, state: LabelState) -> SpecimenLabels:
    as_file = json.loads(json.dumps(results))  # what a task export holds
    return from_labelstudio(as_file, source=source, state=state, width=specimen.width, height=specimen.height)


def one_score_and_origin_per_control(specimen: SpecimenLabels) -> bool:
    """Whether the classifications of each control share a score and an origin, as one Choices result does."""
    seen: dict[str | None, tuple[float | None, tuple[str, ...] | None]] = {}
    for label in specimen.classifications:
        common = (label.score, label.attributes.get(ORIGIN_ATTRIBUTE))
        if seen.setdefault(label.control, common) != common:
            return False
    return True


@ROUND_TRIP_SETTINGS
@given(labelstudio_specimens(mixed_choices=True))
def test_specimens_round_trip_through_labelstudio_json(case: tuple[SpecimenLabels, str | None, LabelState]) -> None:
    specimen, source, state = case
    if not one_score_and_origin_per_control(specimen):
        event("refused: one control's choices differ in score or origin")
        with pytest.raises(LabelError, match=r"^(score|origin|score/origin): classifications"):
            as_labelstudio(specimen)
        return
    assert_same_labels(_read(as_labelstudio(specimen), specimen, source, state), specimen)


@MASK_SETTINGS
@given(labelstudio_specimens(masks=True))
def test_specimens_with_masks_round_trip(case: tuple[SpecimenLabels, str | None, LabelState]) -> None:
    specimen, source, state = case
    assert_same_labels(_read(as_labelstudio(specimen), specimen, source, state), specimen)


def assert_nothing_dropped(results: list[Any], back: SpecimenLabels) -> None:
    """Every region result is a region label, every task-level choice a classification, every TextArea a comment."""
    regions = [r for r in results if r["type"] in REGION_TYPES]
    ids = {r["id"] for r in regions if "id" in r}
    task_level = [r for r in results if r["type"] not in REGION_TYPES and r.get("id", None) not in ids]
    assert len(back.labels) - len(back.classifications) == len(regions)
    assert len(back.classifications) == sum(len(r["value"]["choices"]) for r in task_level if r["type"] == "choices")
    assert (back.comment is not None) == any(r["type"] == "textarea" for r in task_level)
    region_comments = [r for r in results if r["type"] == "textarea" and r.get("id", None) in ids]
    assert sum(label.comment is not None for label in back.labels) == len(region_comments)


@given(JSON_VALUES | st.lists(st.dictionaries(KNOWN_KEYS, EDGE_VALUES | JSON_SCALARS, max_size=6), max_size=4))
def test_any_json_gives_labels_or_a_label_error(document: Any) -> None:
    back = read_or_clear_error(lambda: from_labelstudio(document, width=7, height=5), (LabelError,))
    if back is None:
        return
    assert_nothing_dropped(document, back)


@MASK_SETTINGS
@given(
    labelstudio_specimens(masks=True).flatmap(
        lambda case: st.tuples(st.just(case[0]), mutations(json.loads(json.dumps(as_labelstudio(case[0])))))
    )
)
def test_mutated_results_give_every_region_or_a_label_error(case: tuple[SpecimenLabels, Any]) -> None:
    specimen, results = case
    back = read_or_clear_error(
        lambda: from_labelstudio(results, width=specimen.width, height=specimen.height), (LabelError,)
    )
    if back is None:
        return
    assert_nothing_dropped(results, back)


TASK_LEVEL_GARBAGE = st.fixed_dictionaries(
    {"type": st.sampled_from(["choices", "textarea"]), "from_name": st.text(max_size=4)},
    optional={
        "id": st.text(max_size=4) | st.sampled_from(["region0", "region1"]),
        "value": st.dictionaries(st.sampled_from(["choices", "text", "x"]), EDGE_VALUES | st.lists(st.text())),
    },
)


@MIXED_SETTINGS
@given(labelstudio_specimens(), st.lists(TASK_LEVEL_GARBAGE | JSON_VALUES, max_size=4), st.randoms())
def test_valid_regions_among_garbage_are_all_read_or_rejected(
    case: tuple[SpecimenLabels, str | None, LabelState], garbage: list[Any], random: Any
) -> None:
    valid = [r for r in json.loads(json.dumps(as_labelstudio(case[0]))) if r["type"] in REGION_TYPES]
    results = [*valid, *garbage]
    random.shuffle(results)
    back = read_or_clear_error(
        lambda: from_labelstudio(results, width=case[0].width, height=case[0].height), (LabelError,)
    )
    if back is None:
        return
    assert_nothing_dropped(results, back)
    assert {r["id"] for r in valid} <= {label.region_id for label in back.labels}
