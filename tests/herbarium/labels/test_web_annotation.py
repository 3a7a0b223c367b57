"""Web Annotations (IIIF AnnotationPage, DiSSCo openDS): what they say, checked by schema, and read back."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import numpy as np
import pytest

from herbarium.labels import BoxLabel, ClassificationLabel, LabelError, LabelState, MaskLabel, SpecimenLabels
from herbarium.labels.web_annotation import (
    IIIF_CONTEXT,
    as_annotation_page,
    as_opends,
    boxes_from_annotation_page,
    boxes_from_opends,
)

CANVAS = "https://iiif.example.org/iiif/E00001234/canvas/1"
URI = {"type": "string", "pattern": r"^[a-z][a-z0-9+.-]*:"}
# What IIIF Presentation 3 asks of an AnnotationPage of Web Annotations (spec sections 5.8 and 5.9, and
# the Web Annotation model's FragmentSelector): URIs for ids and sources, the type names, a motivation.
ANNOTATION_PAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["@context", "id", "type", "items"],
    "properties": {
        "@context": {"const": IIIF_CONTEXT},
        "id": URI,
        "type": {"const": "AnnotationPage"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "type", "motivation", "body", "target"],
                "properties": {
                    "id": URI,
                    "type": {"const": "Annotation"},
                    "motivation": {"enum": ["tagging", "classifying", "commenting", "painting", "supplementing"]},
                    "body": {
                        "type": "object",
                        "required": ["type", "value"],
                        "properties": {"type": {"const": "TextualBody"}, "value": {"type": "string", "minLength": 1}},
                    },
                    "target": {
                        "oneOf": [
                            URI,
                            {
                                "type": "object",
                                "required": ["type", "source", "selector"],
                                "properties": {
                                    "type": {"const": "SpecificResource"},
                                    "source": URI,
                                    "selector": {
                                        "type": "object",
                                        "required": ["type", "value"],
                                        "properties": {
                                            "type": {"const": "FragmentSelector"},
                                            "conformsTo": {"const": "http://www.w3.org/TR/media-frags/"},
                                            "value": {"type": "string", "pattern": r"^xywh=\d+,\d+,\d+,\d+$"},
                                        },
                                    },
                                },
                            },
                        ]
                    },
                    "creator": {
                        "type": "object",
                        "required": ["type", "name"],
                        "properties": {"type": {"enum": ["Person", "Software"]}},
                    },
                },
            },
        },
    },
}
FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
OPENDS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["@type", "oa:motivation", "oa:hasTarget", "oa:hasBody", "dcterms:creator"],
        "properties": {
            "@type": {"const": "ods:Annotation"},
            "oa:hasTarget": {
                "type": "object",
                "required": ["@id", "@type", "oa:hasSelector"],
                "properties": {
                    "oa:hasSelector": {
                        "oneOf": [
                            {
                                "type": "object",
                                "required": ["@type", "ac:hasROI"],
                                "properties": {
                                    "@type": {"const": "ac:RegionOfInterest"},
                                    "ac:hasROI": {
                                        "type": "object",
                                        "required": ["ac:xFrac", "ac:yFrac", "ac:widthFrac", "ac:heightFrac"],
                                        "additionalProperties": FRACTION,
                                    },
                                },
                            },
                            {"type": "object", "properties": {"@type": {"const": "ods:ClassSelector"}}},
                        ]
                    }
                },
            },
        },
    },
}


def _sheet() -> SpecimenLabels:
    mask = np.zeros((90, 60), dtype=bool)
    mask[10:20, 10:20] = True
    return SpecimenLabels(
        width=60,
        height=90,
        labels=[
            BoxLabel(label="barcode", x=5, y=70, width=20, height=8, source="nonvegetal-detector@1.2.0", score=0.9),
            BoxLabel(
                label="leaf", x=10.4, y=12.6, width=30, height=40.2, source="expert:7", state=LabelState.CORRECTED
            ),
            ClassificationLabel(label="flowering", control="phenology", source="phenology-classifier@1.0.0"),
            MaskLabel(label="plant", mask=mask, source="plant-segmenter@1.0.0"),
        ],
    )


def test_a_iiif_annotation_page_passes_the_schema_and_gives_its_boxes_back() -> None:
    page, left_out = as_annotation_page(_sheet(), CANVAS, "urn:plantai:E00001234")
    jsonschema.validate(json.loads(json.dumps(page)), ANNOTATION_PAGE_SCHEMA)
    assert left_out == 1  # the mask: no place for its pixels
    box, leaf, phenology = page["items"]
    assert box["target"]["selector"]["value"] == "xywh=5,70,20,8"  # the image's own pixels
    assert box["creator"] == {"type": "Software", "name": "nonvegetal-detector@1.2.0"}
    assert leaf["creator"] == {"type": "Person", "name": "expert:7"}
    assert (phenology["target"], phenology["body"]["value"]) == (CANVAS, "flowering")
    back = boxes_from_annotation_page(page)
    assert [(b.label, b.x, b.y, b.width, b.height, b.source) for b in back] == [
        ("barcode", 5, 70, 20, 8, "nonvegetal-detector@1.2.0"),
        ("leaf", 10, 13, 30, 40, "expert:7"),  # whole pixels, as xywh says them
    ]


def test_opends_annotations_pass_the_schema_with_fractions_in_0_1_and_give_their_boxes_back() -> None:
    annotations, left_out = as_opends(_sheet(), "https://images.example.org/E00001234.jpg")
    jsonschema.validate(json.loads(json.dumps(annotations)), OPENDS_SCHEMA)
    assert left_out == 1
    roi = annotations[0]["oa:hasTarget"]["oa:hasSelector"]["ac:hasROI"]
    expected = {"ac:xFrac": 5 / 60, "ac:yFrac": 70 / 90, "ac:widthFrac": 20 / 60, "ac:heightFrac": 8 / 90}
    assert roi == pytest.approx(expected)
    back = boxes_from_opends(annotations, 60, 90)
    assert [(b.label, b.source) for b in back] == [("barcode", "nonvegetal-detector@1.2.0"), ("leaf", "expert:7")]
    assert back[1].x == pytest.approx(10.4)
    assert back[1].height == pytest.approx(40.2)


def test_a_box_past_the_image_edge_is_cropped_to_it_in_both_forms() -> None:
    labels = SpecimenLabels(width=10, height=10, labels=[BoxLabel(label="ruler", x=8, y=-1, width=5, height=3)])
    roi = as_opends(labels, "urn:x")[0][0]["oa:hasTarget"]["oa:hasSelector"]["ac:hasROI"]
    assert roi == pytest.approx({"ac:xFrac": 0.8, "ac:yFrac": 0.0, "ac:widthFrac": 0.2, "ac:heightFrac": 0.2})
    page, _ = as_annotation_page(labels, CANVAS, "urn:plantai:x")
    assert page["items"][0]["target"]["selector"]["value"] == "xywh=8,0,2,2"  # x 8..10, y 0..2


def test_opends_read_from_outside_json_of_the_wrong_shape_skips_or_refuses_it_clearly() -> None:
    assert boxes_from_opends([{"oa:hasTarget": "a string"}, {"oa:hasTarget": {"oa:hasSelector": []}}], 10, 10) == []
    roi = {"ac:xFrac": 0.1, "ac:yFrac": 0.1, "ac:widthFrac": 0.1, "ac:heightFrac": 0.1}
    annotation = {"oa:hasTarget": {"oa:hasSelector": {"@type": "ac:RegionOfInterest", "ac:hasROI": roi}},
                  "oa:hasBody": "leaf"}  # fmt: skip
    with pytest.raises(LabelError, match="oa:value"):
        boxes_from_opends([annotation], 10, 10)


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ({"items": [{"target": {"selector": {"value": "xywh=percent:1,2,3,4"}}, "body": {"value": "leaf"}}]}, "xywh"),
        ({"items": [{"target": {"selector": {"value": "xywh=1,2,3,4"}}, "body": {}}]}, "body.value"),
    ],
)
def test_an_annotation_page_it_cannot_read_is_a_label_error(page: dict[str, Any], message: str) -> None:
    with pytest.raises(LabelError, match=message):
        boxes_from_annotation_page(page)


def test_opends_fractions_outside_0_1_are_a_label_error() -> None:
    roi = {"ac:xFrac": 0.5, "ac:yFrac": 0.5, "ac:widthFrac": 1.5, "ac:heightFrac": 0.1}
    annotation = {"oa:hasTarget": {"oa:hasSelector": {"@type": "ac:RegionOfInterest", "ac:hasROI": roi}}}
    with pytest.raises(LabelError, match=r"\[0, 1\]"):
        boxes_from_opends([annotation], 10, 10)
