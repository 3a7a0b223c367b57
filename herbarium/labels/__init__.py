"""Specimen labels: one typed model (:mod:`.model`) and one converter module per format."""

from herbarium.labels.model import (
    EXPERT_STATES,
    BoxLabel,
    ClassificationLabel,
    Label,
    LabelError,
    LabelState,
    MaskLabel,
    PolygonLabel,
    SpecimenLabels,
    expert_source,
    model_source,
)

__all__ = [
    "EXPERT_STATES",
    "BoxLabel",
    "ClassificationLabel",
    "Label",
    "LabelError",
    "LabelState",
    "MaskLabel",
    "PolygonLabel",
    "SpecimenLabels",
    "expert_source",
    "model_source",
]
