"""The Label Studio control tags PlantAI knows: one table that every package derives its own view from.

The converter (:mod:`herbarium.labels.labelstudio`), the sync (``connectors.sync``) and the ML
backends (``ml_backends.controls``) each need a slice of it; keeping it here, in the package
they all stand on, means a new tag is added once.
"""

from __future__ import annotations

from dataclasses import dataclass

from herbarium.labels.model import BoxLabel, ClassificationLabel, Label, MaskLabel, PolygonLabel


@dataclass(frozen=True)
class LabelTag:
    """A control tag whose results are labels."""

    name: str  # as a labelling config spells the tag: "RectangleLabels"
    result_type: str  # a result's ``type``: the name lower-cased
    region: bool  # its results are regions (carry geometry) rather than task-level values
    label_class: type[Label]  # what its labels become (a region's, or a task-level choice's)
    field_kind: str  # the FiftyOne field kind of its labels: detections, polylines, classification


RECTANGLE_LABELS = LabelTag("RectangleLabels", "rectanglelabels", True, BoxLabel, "detections")
POLYGON_LABELS = LabelTag("PolygonLabels", "polygonlabels", True, PolygonLabel, "polylines")
# A mask is stored as a FiftyOne Detection with a mask, hence "detections".
BRUSH_LABELS = LabelTag("BrushLabels", "brushlabels", True, MaskLabel, "detections")
CHOICES = LabelTag("Choices", "choices", False, ClassificationLabel, "classification")

# In this order: the converter's error messages list the known types in it.
LABEL_TAGS: tuple[LabelTag, ...] = (RECTANGLE_LABELS, POLYGON_LABELS, BRUSH_LABELS, CHOICES)
REGION_TAGS: tuple[LabelTag, ...] = tuple(tag for tag in LABEL_TAGS if tag.region)

# TextArea results are known but are no labels: they become comments (a region's or the sheet's).
TEXTAREA_TYPE = "textarea"

KNOWN_TYPES: tuple[str, ...] = (*(tag.result_type for tag in LABEL_TAGS), TEXTAREA_TYPE)

__all__ = [
    "BRUSH_LABELS",
    "CHOICES",
    "KNOWN_TYPES",
    "LABEL_TAGS",
    "POLYGON_LABELS",
    "RECTANGLE_LABELS",
    "REGION_TAGS",
    "TEXTAREA_TYPE",
    "LabelTag",
]
