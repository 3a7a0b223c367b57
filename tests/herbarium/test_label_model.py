from __future__ import annotations

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
    expert_source,
    model_source,
)


def test_labels_carry_provenance_and_state() -> None:
    box = BoxLabel(label="leaf", x=1, y=2, width=3, height=4, score=0.9, source=model_source("organs", "1.2.0"))
    assert box.source == "organs@1.2.0"
    assert box.state is LabelState.PREDICTED
    assert not box.is_expert
    corrected = BoxLabel(label="leaf", x=1, y=2, width=3, height=5, source=expert_source(7), state="corrected")
    assert corrected.state is LabelState.CORRECTED
    assert corrected.is_expert
    assert corrected.xyxy == (1, 2, 4, 7)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: BoxLabel(label="", x=0, y=0, width=1, height=1), "label"),
        (lambda: BoxLabel(label="leaf", x=0, y=0, width=-1, height=1), "width/height"),
        (lambda: BoxLabel(label="leaf", x=float("nan"), y=0, width=1, height=1), "x"),
        (lambda: BoxLabel(label="leaf", x=0, y=0, width=1, height=1, score=1.5), "score"),
        (lambda: BoxLabel(label="leaf", x=0, y=0, width=1, height=1, state="approved"), "state"),
        (lambda: PolygonLabel(label="leaf", points=((0, 0), (1, 1))), "points"),
        (lambda: MaskLabel(label="plant", mask=np.zeros(4, dtype=bool)), "mask"),
        (lambda: SpecimenLabels(width=0, height=10), "width"),
    ],
)
def test_bad_labels_name_the_field(build: object, field: str) -> None:
    with pytest.raises(LabelError, match=f"^{field}"):
        build()  # type: ignore[operator]


def test_mask_must_match_the_image_size() -> None:
    mask = MaskLabel(label="plant", mask=np.ones((5, 4), dtype=bool))
    with pytest.raises(LabelError, match=r"mask: shape \(5, 4\)"):
        SpecimenLabels(width=5, height=4, labels=[mask])


def test_mask_equality_compares_pixels() -> None:
    mask = np.zeros((4, 5), dtype=bool)
    mask[1:3, 2:4] = True
    a = MaskLabel(label="plant", mask=mask)
    b = MaskLabel(label="plant", mask=mask.copy())
    assert a == b
    assert a.bounding_box() == (2, 1, 2, 2)
    other = mask.copy()
    other[0, 0] = True
    assert a != MaskLabel(label="plant", mask=other)


def test_specimen_groups_labels_by_kind() -> None:
    specimen = SpecimenLabels(
        width=10,
        height=10,
        labels=[
            BoxLabel(label="barcode", x=0, y=0, width=2, height=1),
            PolygonLabel(label="leaf", points=((0, 0), (5, 0), (5, 5))),
            ClassificationLabel(label="flowering", control="phenology"),
        ],
    )
    assert [b.label for b in specimen.boxes] == ["barcode"]
    assert [p.label for p in specimen.polygons] == ["leaf"]
    assert [c.label for c in specimen.classifications] == ["flowering"]
    assert specimen.masks == []
    assert len(specimen) == 3
