"""W3C Web Annotations of a sheet's labels, in the two forms herbarium systems read.

* IIIF (Presentation 3): an ``AnnotationPage`` per canvas; each box targets the canvas through a
  ``FragmentSelector`` ``xywh=x,y,w,h`` in the image's own pixels (integers), each classification
  the whole canvas; the body is a ``TextualBody`` naming the class; ``creator`` is the model
  (``name@version``, a ``Software``) or the expert (a ``Person``).
* openDS (DiSSCo): ``ods:Annotation`` objects whose target's selector is an ``ac:RegionOfInterest``
  with ``ac:hasROI`` fractions of the image's width and height, in [0, 1].

Boxes and classifications are written; outlines and masks are not (their pixels have no place in
either form): :func:`as_annotation_page` and :func:`as_opends` say how many were left out. The
readers give the boxes back, for round trips and for systems that send annotations in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from herbarium.labels.model import (
    BoxLabel,
    ClassificationLabel,
    LabelError,
    SpecimenLabels,
    finite_number,
)

IIIF_CONTEXT = "http://iiif.io/api/presentation/3/context.json"
MEDIA_FRAGMENTS = "http://www.w3.org/TR/media-frags/"
_XYWH = re.compile(r"xywh=(?:pixel:)?(\d+),(\d+),(\d+),(\d+)")


def _creator(label: BoxLabel | ClassificationLabel) -> dict[str, str]:
    return {"type": "Person" if label.is_expert else "Software", "name": label.source or "unknown"}


def _clipped(box: BoxLabel, width: int, height: int) -> tuple[float, float, float, float]:
    """(x, y, w, h) of the part of ``box`` inside the image: a box past an edge is cropped, never moved."""
    x0, y0 = min(max(box.x, 0.0), width), min(max(box.y, 0.0), height)
    x1, y1 = min(max(box.x + box.width, 0.0), width), min(max(box.y + box.height, 0.0), height)
    return x0, y0, x1 - x0, y1 - y0


def _written(labels: SpecimenLabels) -> tuple[list[BoxLabel | ClassificationLabel], int]:
    kept = [label for label in labels.labels if isinstance(label, (BoxLabel, ClassificationLabel))]
    return kept, len(labels.labels) - len(kept)


def as_annotation_page(labels: SpecimenLabels, canvas: str, page: str) -> tuple[dict[str, Any], int]:
    """A IIIF AnnotationPage ``page`` of ``labels`` on ``canvas``; and how many labels had no place in it."""
    kept, left_out = _written(labels)
    items = []
    for number, label in enumerate(kept, start=1):
        target: str | dict[str, Any] = canvas
        if isinstance(label, BoxLabel):
            cx, cy, cw, ch = _clipped(label, labels.width, labels.height)
            x, y = round(cx), round(cy)
            w, h = max(1, round(cx + cw) - x), max(1, round(cy + ch) - y)
            selector = {"type": "FragmentSelector", "conformsTo": MEDIA_FRAGMENTS, "value": f"xywh={x},{y},{w},{h}"}
            target = {"type": "SpecificResource", "source": canvas, "selector": selector}
        body: dict[str, Any] = {"type": "TextualBody", "value": label.label, "purpose": "tagging"}
        if isinstance(label, ClassificationLabel) and label.control:
            body["purpose"] = "classifying"
        annotation: dict[str, Any] = {
            "id": f"{page}/{number}",
            "type": "Annotation",
            "motivation": "tagging" if isinstance(label, BoxLabel) else "classifying",
            "body": body,
            "target": target,
            "creator": _creator(label),
        }
        items.append(annotation)
    return {"@context": IIIF_CONTEXT, "id": page, "type": "AnnotationPage", "items": items}, left_out


def boxes_from_annotation_page(page: Mapping[str, Any]) -> list[BoxLabel]:
    """The boxes of an AnnotationPage (``xywh`` fragment selectors); LabelError for one it cannot read."""
    boxes = []
    for i, annotation in enumerate(page.get("items") or []):
        target = annotation.get("target") if isinstance(annotation, dict) else None
        if not isinstance(target, dict):
            continue  # the whole canvas: a classification
        selector = target.get("selector")
        found = _XYWH.fullmatch(str(selector.get("value", ""))) if isinstance(selector, dict) else None
        if found is None:
            raise LabelError(f"items[{i}].target.selector: expected an xywh fragment, got {selector!r}")
        x, y, w, h = (int(v) for v in found.groups())
        body = annotation.get("body")
        name = body.get("value") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            raise LabelError(f"items[{i}].body.value: expected the class's name")
        creator = annotation.get("creator")
        source = creator.get("name") if isinstance(creator, dict) else None
        boxes.append(BoxLabel(label=name, x=x, y=y, width=w, height=h, source=source))
    return boxes


def as_opends(labels: SpecimenLabels, target: str) -> tuple[list[dict[str, Any]], int]:
    """openDS annotations of ``labels`` on the digital media ``target``; and how many had no place in them."""
    kept, left_out = _written(labels)
    annotations = []
    for label in kept:
        selector: dict[str, Any] = {"@type": "ods:ClassSelector", "ods:className": label.control or "classification"}
        if isinstance(label, BoxLabel):
            x, y, w, h = _clipped(label, labels.width, labels.height)
            roi = {
                "ac:xFrac": x / labels.width,
                "ac:yFrac": y / labels.height,
                "ac:widthFrac": w / labels.width,
                "ac:heightFrac": h / labels.height,
            }
            selector = {"@type": "ac:RegionOfInterest", "ac:hasROI": roi}
        creator = _creator(label)
        annotations.append(
            {
                "@type": "ods:Annotation",
                "oa:motivation": "oa:tagging" if isinstance(label, BoxLabel) else "oa:classifying",
                "oa:hasTarget": {"@id": target, "@type": "ods:DigitalMedia", "oa:hasSelector": selector},
                "oa:hasBody": {"@type": "oa:TextualBody", "oa:value": [label.label]},
                "dcterms:creator": {"@type": "prov:SoftwareAgent" if creator["type"] == "Software" else "prov:Person",
                                    "schema:name": creator["name"]},
            }
        )  # fmt: skip
    return annotations, left_out


def boxes_from_opends(annotations: Sequence[Mapping[str, Any]], width: int, height: int) -> list[BoxLabel]:
    """The boxes of openDS annotations on a ``width`` x ``height`` image; LabelError for one it cannot read."""
    boxes = []
    for i, annotation in enumerate(annotations):
        selector = _dict(_dict(_dict(annotation).get("oa:hasTarget")).get("oa:hasSelector"))
        if selector.get("@type") != "ac:RegionOfInterest":
            continue
        roi = _dict(selector.get("ac:hasROI"))
        keys = ("ac:xFrac", "ac:yFrac", "ac:widthFrac", "ac:heightFrac")
        x, y, w, h = (finite_number(roi.get(k), f"[{i}].oa:hasTarget.oa:hasSelector.ac:hasROI.{k}") for k in keys)
        if not all(0 <= v <= 1 for v in (x, y, w, h)):
            raise LabelError(f"[{i}]: ac:hasROI fractions must lie in [0, 1], got {roi}")
        values = _dict(annotation.get("oa:hasBody")).get("oa:value")
        if not isinstance(values, list) or not values or not isinstance(values[0], str):
            raise LabelError(f"[{i}].oa:hasBody.oa:value: expected the class's name")
        name = _dict(annotation.get("dcterms:creator")).get("schema:name")
        boxes.append(BoxLabel(label=values[0], x=x * width, y=y * height, width=w * width, height=h * height,
                              source=name))  # fmt: skip
    return boxes


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


__all__ = [
    "IIIF_CONTEXT",
    "as_annotation_page",
    "as_opends",
    "boxes_from_annotation_page",
    "boxes_from_opends",
]
