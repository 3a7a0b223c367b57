"""Labels written by our converter survive a real Label Studio: stored, served back, read equal."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from herbarium.labels import BoxLabel, ClassificationLabel, LabelState, MaskLabel, PolygonLabel, SpecimenLabels
from herbarium.labels.labelstudio import TEXTAREA_ATTRIBUTE, as_labelstudio, from_labelstudio
from herbarium.synth import generate_sheet
from herbarium.taxonomy import NONVEGETAL, ORGANS, TRAITS

pytestmark = pytest.mark.integration


def _review_config() -> str:
    """A labelling config with every tag the converter handles, as an expert-review project uses."""
    labels = "".join(f'<Label value="{name}"/>' for name in (*NONVEGETAL.classes, *ORGANS.classes))
    phenology = "".join(f'<Choice value="{v}"/>' for v in TRAITS["phenology"].classes)
    return (
        '<View><Image name="image" value="$image"/>'
        f'<RectangleLabels name="label" toName="image">{labels}</RectangleLabels>'
        '<PolygonLabels name="outline" toName="image"><Label value="leaf"/></PolygonLabels>'
        '<BrushLabels name="mask" toName="image"><Label value="plant"/></BrushLabels>'
        '<Choices name="verdict" toName="image" perRegion="true">'
        '<Choice value="correct"/><Choice value="wrong label"/></Choices>'
        '<TextArea name="region_comment" toName="image" perRegion="true"/>'
        f'<Choices name="phenology" toName="image">{phenology}</Choices>'
        '<TextArea name="comment" toName="image"/>'
        "</View>"
    )


def _expert_specimen() -> SpecimenLabels:
    """A generated sheet's ground truth, as an expert would leave it: boxes, a polygon, a mask, verdicts."""
    sheet = generate_sheet(seed=3, width=600, height=868)
    truth = sheet.labels
    boxes = [replace(box, control="label", region_id=f"box{i}", source=None) for i, box in enumerate(truth.boxes)]
    boxes[0] = replace(boxes[0], attributes={"verdict": ("correct",)}, comment="barcode is sharp")
    plant = np.logical_or.reduce([m.mask for m in truth.masks])
    labels: list[Any] = [
        *boxes,
        PolygonLabel(label="leaf", points=((10.5, 20.25), (120, 30), (60.75, 140)), control="outline", region_id="p1"),
        MaskLabel(label="plant", mask=plant, control="mask", region_id="m1", attributes={"verdict": ("wrong label",)}),
        *[replace(c, source=None, region_id="c1") for c in truth.classifications if c.control == "phenology"],
    ]
    return SpecimenLabels(width=truth.width, height=truth.height, labels=labels, comment="checked against the sheet")


def test_annotation_round_trips_through_label_studio(ls_client: Any, labels_match: Any) -> None:
    project = ls_client.projects.create(title="converter round trip", label_config=_review_config())
    [task_id] = ls_client.projects.import_tasks(
        id=project.id, request=[{"data": {"image": "/data/local-files/?d=sheet.jpg"}}], return_task_ids=True
    ).task_ids
    specimen = _expert_specimen()
    results = as_labelstudio(specimen, default_controls={"region_comment": "region_comment"})
    created = ls_client.annotations.create(id=task_id, result=results)

    stored = ls_client.annotations.get(id=created.id).result
    back = from_labelstudio(stored, state=LabelState.VALIDATED)
    expected = specimen.with_labels(replace(label, state=LabelState.VALIDATED) for label in specimen.labels)
    # Reading keeps which TextArea held the region's comment, so writing it again needs no defaults.
    expected.labels[0] = replace(
        expected.labels[0], attributes={**expected.labels[0].attributes, TEXTAREA_ATTRIBUTE: ("region_comment",)}
    )
    labels_match(back, expected)
    assert back.comment == "checked against the sheet"
    assert sum(isinstance(label, BoxLabel) for label in back.labels) == len(specimen.boxes)
    [stored_mask] = [label for label in back.labels if isinstance(label, MaskLabel)]
    assert np.array_equal(stored_mask.mask, specimen.masks[0].mask)
    assert stored_mask.attributes["verdict"] == ("wrong label",)
    assert [c.label for c in back.labels if isinstance(c, ClassificationLabel)] == [
        c.label for c in specimen.classifications
    ]
    # And what Label Studio served is exactly what we write from it again.
    rewritten = as_labelstudio(back)
    assert len(rewritten) == len(stored)
    for ours, theirs in zip(rewritten, stored, strict=True):
        assert ours["type"] == theirs["type"]
        assert ours["from_name"] == theirs["from_name"]
        if ours["type"] == "rectanglelabels":
            for key in ("x", "y", "width", "height"):
                assert ours["value"][key] == pytest.approx(theirs["value"][key], rel=1e-12, abs=1e-12)
