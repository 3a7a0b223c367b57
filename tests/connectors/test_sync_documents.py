"""The sync's fast path writes the very documents ``as_fiftyone`` builds, for every kind of label."""

from __future__ import annotations

from typing import Any

import numpy as np

from connectors.label_config import review_config
from connectors.sync.task_fields import UNKNOWN_ATTRIBUTE, label_controls, label_count, label_documents, task_fields
from herbarium.labels import BoxLabel, ClassificationLabel, LabelState, MaskLabel, PolygonLabel, SpecimenLabels
from herbarium.labels.fiftyone import as_fiftyone


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "_id"}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def _as_fiftyone_documents(labels: list[Any], width: int, height: int) -> dict[str, Any]:
    converted = as_fiftyone(SpecimenLabels(width=width, height=height, labels=labels))
    out: dict[str, Any] = {
        "detections": converted.detections,
        "polylines": converted.polylines,
        **converted.classifications,
    }
    return out


def test_documents_equal_as_fiftyone_for_boxes_polygons_classifications_and_masks() -> None:
    width, height = 200, 400
    boxes = [
        BoxLabel(
            label="barcode",
            control="nonvegetal",
            x=10,
            y=20,
            width=30,
            height=40,
            rotation=5.0,
            score=0.75,
            source="det@1",
            region_id="a",
            attributes={"verdict": ("correct",)},
            comment="fine",
        ),
        BoxLabel(label="sticker", control="nonvegetal", x=1, y=2, width=3, height=4, state=LabelState.CORRECTED),
    ]
    polygons = [
        PolygonLabel(label="plant", control="plant_outline", points=((1.0, 2.0), (50.0, 2.0), (30.0, 60.0)), score=0.5)
    ]
    classification = [ClassificationLabel(label="flowering", control="phenology", score=0.9, source="cls@2")]
    mask = np.zeros((height, width), dtype=bool)
    mask[10:30, 40:90] = True
    masks = [MaskLabel(label="plant", control="plant_mask", mask=mask, score=0.6)]

    expected = _as_fiftyone_documents(boxes, width, height)["detections"]
    expected.detections[1][UNKNOWN_ATTRIBUTE] = True  # "sticker" is not a non-vegetal class
    documents = label_documents("detections", "nonvegetal", boxes, width, height)
    assert _without_ids(documents) == _without_ids(expected.to_dict())
    assert label_count(documents) == 2

    expected = _as_fiftyone_documents(polygons, width, height)["polylines"]
    documents = label_documents("polylines", "plant_outline", polygons, width, height)
    assert _without_ids(documents) == _without_ids(expected.to_dict())

    expected = _as_fiftyone_documents(classification, width, height)["phenology"]
    documents = label_documents("classification", "phenology", classification, width, height)
    assert _without_ids(documents) == _without_ids(expected.to_dict())
    assert label_count(documents) == 1

    expected = _as_fiftyone_documents(masks, width, height)["detections"]
    documents = label_documents("detections", "plant_mask", masks, width, height)
    assert _without_ids(documents) == _without_ids(expected.to_dict())


def test_task_fields_as_documents_match_the_objects() -> None:
    result = {
        "id": "p",
        "type": "rectanglelabels",
        "from_name": "nonvegetal",
        "to_name": "image",
        "original_width": 200,
        "original_height": 400,
        "value": {"x": 10, "y": 10, "width": 20, "height": 10, "rotation": 0, "rectanglelabels": ["sticker"]},
    }
    task = {
        "id": 7,
        "updated_at": "t",
        "data": {"image": "https://example.org/a.jpg"},
        "predictions": [{"id": 1, "model_version": "det@1", "score": 0.4, "result": [result]}],
        "annotations": [{"id": 5, "completed_by": 3, "updated_at": "2026-01-01", "result": [result]}],
    }
    controls = label_controls(review_config())
    objects = task_fields(task, controls, None)
    documents = task_fields(task, controls, None, as_documents=True)
    assert objects.ai is not None
    assert documents.ai is not None
    assert objects.expert is not None
    assert documents.expert is not None
    for name, value in {**objects.ai, **objects.expert}.items():
        other = {**documents.ai, **documents.expert}[name]
        if hasattr(value, "to_dict"):
            assert _without_ids(other) == _without_ids(value.to_dict()), name
        else:
            assert other == value, name
