"""SpecimenLabels <-> FiftyOne labels (imports ``fiftyone`` only when called).

Boxes and masks become ``fo.Detection`` (a mask is cropped to its integer bounding box, as
FiftyOne stores instance masks), polygons become closed, filled ``fo.Polyline``, and specimen-level
classifications one ``fo.Classification`` per control. ``score`` is FiftyOne's ``confidence``;
everything else the model holds travels as custom attributes on the FiftyOne label
(``source``, ``state``, ``comment``, ``region_id``, ``control``, ``region_choices`` for
``attributes`` (FiftyOne's own ``attributes`` field is taken), ``rotation`` on boxes), so
internal -> FiftyOne -> internal is lossless except for the order of labels across kinds
(``from_fiftyone`` gives boxes and masks in detection order, then polygons, then classifications).
A control with several values (multiple choice) is an error, as is a detection mask whose shape
is not its bounding box in pixels (masks are never resampled silently).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from herbarium.labels.model import (
    BoxLabel,
    ClassificationLabel,
    Label,
    LabelError,
    LabelState,
    MaskLabel,
    PolygonLabel,
    SpecimenLabels,
)
from herbarium.taxonomy import LabelSet

if TYPE_CHECKING:
    import fiftyone as fo

# Custom attributes written on every FiftyOne label; read back with these defaults when absent
# (labels made by other tools carry none of them).
_CUSTOM_FIELDS = ("source", "state", "comment", "region_id", "control", "region_choices")


@dataclass
class FiftyOneLabels:
    """The FiftyOne fields of one specimen sample."""

    detections: fo.Detections
    polylines: fo.Polylines
    classifications: dict[str, fo.Classification] = field(default_factory=dict)
    comment: str | None = None  # the specimen-level comment, for a sample field of its own


def as_fiftyone(specimen: SpecimenLabels) -> FiftyOneLabels:
    """Convert a specimen's labels to FiftyOne labels (relative coordinates)."""
    import fiftyone as fo

    width, height = specimen.width, specimen.height
    detections: list[fo.Detection] = []
    polylines: list[fo.Polyline] = []
    classifications: dict[str, fo.Classification] = {}
    for label in specimen.labels:
        custom = _custom(label)
        if isinstance(label, BoxLabel):
            box = [label.x / width, label.y / height, label.width / width, label.height / height]
            detections.append(
                fo.Detection(
                    label=label.label, bounding_box=box, confidence=label.score, rotation=label.rotation, **custom
                )
            )
        elif isinstance(label, MaskLabel):
            bbox = label.bounding_box()
            x, y, w, h = bbox if bbox is not None else (0, 0, 0, 0)
            detections.append(
                fo.Detection(
                    label=label.label,
                    bounding_box=[x / width, y / height, w / width, h / height],
                    mask=label.mask[y : y + h, x : x + w].copy(),
                    confidence=label.score,
                    **custom,
                )
            )
        elif isinstance(label, PolygonLabel):
            points = [[(px / width, py / height) for px, py in label.points]]
            polylines.append(
                fo.Polyline(
                    label=label.label, points=points, closed=True, filled=True, confidence=label.score, **custom
                )
            )
        else:
            if label.control is None:
                raise LabelError(f"control: classification {label.label!r} needs a control to name its field")
            if label.control in classifications:
                raise LabelError(f"control: {label.control!r} has several values; a FiftyOne Classification holds one")
            classifications[label.control] = fo.Classification(label=label.label, confidence=label.score, **custom)
    return FiftyOneLabels(
        detections=fo.Detections(detections=detections),
        polylines=fo.Polylines(polylines=polylines),
        classifications=classifications,
        comment=specimen.comment,
    )


def from_fiftyone(
    width: int,
    height: int,
    detections: fo.Detections | None = None,
    polylines: fo.Polylines | None = None,
    classifications: Mapping[str, fo.Classification] | None = None,
    *,
    comment: str | None = None,
) -> SpecimenLabels:
    """Convert FiftyOne labels of an image of ``width`` x ``height`` pixels back to the model."""
    labels: list[Label] = []
    for i, detection in enumerate(detections.detections if detections is not None else []):
        x, y, w, h = _bounding_box(detection, i)
        common = _common(detection)
        mask = detection.get_mask()  # in memory, or read from mask_path
        if mask is None:
            rotation = _get(detection, "rotation", 0.0)
            labels.append(
                BoxLabel(x=x * width, y=y * height, width=w * width, height=h * height, rotation=rotation, **common)
            )
            continue
        mask = np.asarray(mask)
        left, top = round(x * width), round(y * height)
        crop_w, crop_h = round(w * width), round(h * height)
        if mask.ndim != 2:
            raise LabelError(f"detections[{i}].mask: expected a 2-D array, got shape {mask.shape}")
        if mask.shape != (crop_h, crop_w):
            # Another tool's mask at another resolution: we do not resample silently.
            raise LabelError(
                f"detections[{i}].mask: shape {mask.shape} differs from its bounding box in pixels {(crop_h, crop_w)}"
            )
        if left < 0 or top < 0 or left + crop_w > width or top + crop_h > height:
            raise LabelError(f"detections[{i}].bounding_box: the mask lies outside the {width} x {height} image")
        full = np.zeros((height, width), dtype=bool)
        full[top : top + crop_h, left : left + crop_w] = mask > 0
        labels.append(MaskLabel(mask=full, **common))
    for i, polyline in enumerate(polylines.polylines if polylines is not None else []):
        if len(polyline.points) != 1:
            raise LabelError(
                f"polylines[{i}].points: expected one shape, got {len(polyline.points)} (split it into polygons)"
            )
        if not polyline.closed:
            raise LabelError(f"polylines[{i}].closed: an open polyline is not a polygon")
        points = tuple((px * width, py * height) for px, py in polyline.points[0])
        labels.append(PolygonLabel(points=points, **_common(polyline)))
    for control, classification in (classifications or {}).items():
        common = _common(classification)
        common["control"] = control
        labels.append(ClassificationLabel(**common))
    return SpecimenLabels(width=width, height=height, labels=labels, comment=comment)


def as_fiftyone_segmentation(
    masks: Sequence[MaskLabel], label_set: LabelSet, *, width: int | None = None, height: int | None = None
) -> fo.Segmentation:
    """One semantic mask: 0 = background, class index + 1 elsewhere (later masks win overlaps)."""
    import fiftyone as fo

    if len(label_set.classes) > 255:
        raise LabelError(f"label_set: {len(label_set.classes)} classes do not fit a uint8 mask")
    shapes = {m.mask.shape for m in masks}
    if width is not None and height is not None:
        shapes.add((height, width))
    if len(shapes) != 1:
        raise LabelError(
            f"mask: expected masks of one size (pass width= and height= when there are none), got {sorted(shapes)}"
        )
    semantic = np.zeros(shapes.pop(), dtype=np.uint8)
    for mask in masks:
        semantic[mask.mask] = label_set.index(mask.label) + 1
    return fo.Segmentation(mask=semantic)


def from_fiftyone_segmentation(segmentation: fo.Segmentation, label_set: LabelSet) -> list[MaskLabel]:
    """One MaskLabel per class present in a semantic mask, in class order."""
    semantic = segmentation.get_mask()
    if semantic is None:
        raise LabelError("mask: the segmentation has neither a mask nor a mask_path")
    semantic = np.asarray(semantic)
    if semantic.ndim != 2 or not np.issubdtype(semantic.dtype, np.integer):
        raise LabelError(f"mask: expected a 2-D integer array, got {semantic.dtype} of shape {semantic.shape}")
    present = np.unique(semantic)
    unknown = present[(present < 0) | (present > len(label_set.classes))]
    if unknown.size:
        raise LabelError(
            f"mask: values {unknown.tolist()} are not 0 or a class index + 1 of label set {label_set.name!r} "
            f"({len(label_set.classes)} classes)"
        )
    return [
        MaskLabel(label=label_set.classes[value - 1], mask=semantic == value) for value in present.tolist() if value
    ]


def _custom(label: Label) -> dict[str, Any]:
    return {
        "source": label.source,
        "state": label.state.value,
        "comment": label.comment,
        "region_id": label.region_id,
        "control": label.control,
        "region_choices": {key: list(values) for key, values in label.attributes.items()},
    }


def _common(fo_label: Any) -> dict[str, Any]:
    values = {name: _get(fo_label, name, None) for name in _CUSTOM_FIELDS}
    return {
        "label": fo_label.label,
        "score": fo_label.confidence,
        "source": values["source"],
        "state": values["state"] if values["state"] is not None else LabelState.PREDICTED,
        "comment": values["comment"],
        "region_id": values["region_id"],
        "control": values["control"],
        "attributes": values["region_choices"] or {},
    }


def _get(fo_label: Any, name: str, default: Any) -> Any:
    return fo_label.get_field(name) if fo_label.has_field(name) else default


def _bounding_box(detection: Any, i: int) -> tuple[float, float, float, float]:
    box = detection.bounding_box
    if box is None or len(box) != 4:
        raise LabelError(f"detections[{i}].bounding_box: expected [x, y, width, height], got {box!r}")
    x, y, w, h = (float(v) for v in box)
    return x, y, w, h
