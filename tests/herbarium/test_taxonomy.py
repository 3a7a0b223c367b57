from __future__ import annotations

import pytest

from herbarium.taxonomy import (
    NONVEGETAL,
    ORGANS,
    TRAITS,
    UnknownLabelError,
    all_label_sets,
    label_set,
    normalise_label_name,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("colorcard", "colour_chart"),  # LeafMachine2
        ("Color Card", "colour_chart"),
        ("swatch", "colour_chart"),  # Hespi
        ("institutional label", "label"),  # Hespi
        ("note", "label"),  # herbarium-segmentation panoptic set
        ("scale", "ruler"),
        ("barcode", "barcode"),
    ],
)
def test_nonvegetal_aliases_resolve(name: str, expected: str) -> None:
    assert NONVEGETAL.resolve(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("leaf_whole", "leaf"), ("leaf_partial", "leaf"), ("seed_fruit_one", "fruit"), ("roots", "root")],
)
def test_organ_aliases_resolve(name: str, expected: str) -> None:
    assert ORGANS.resolve(name) == expected


def test_unknown_label_names_the_label_and_the_set() -> None:
    with pytest.raises(UnknownLabelError, match=r"'petiole'.*'organs'.*leaf, flower"):
        ORGANS.resolve("petiole")


def test_class_index_follows_declared_order() -> None:
    assert [ORGANS.index(c) for c in ORGANS.classes] == list(range(len(ORGANS.classes)))
    assert ORGANS.index("leaf_whole") == ORGANS.index("leaf")


def test_label_sets_by_task_set_name_or_trait() -> None:
    assert label_set("detect-organs") is ORGANS
    assert label_set("nonvegetal") is NONVEGETAL
    assert label_set("phenology") is TRAITS["phenology"]
    with pytest.raises(UnknownLabelError, match="unknown label set 'stamps'"):
        label_set("stamps")


def test_aliases_never_shadow_another_class() -> None:
    for labels in all_label_sets():
        for alias in labels.aliases:
            assert normalise_label_name(alias) not in labels.classes or labels.resolve(alias) == normalise_label_name(
                alias
            ), f"{labels.name}: alias {alias} hides a class"
