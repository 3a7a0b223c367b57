"""The sync's pure parts: config controls, taxonomy checks, image paths, records, which annotation wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.label_config import review_config
from connectors.sync import (
    UNKNOWN_ATTRIBUTE,
    control_label_set,
    image_path,
    in_taxonomy,
    label_controls,
    newest_annotation,
    task_fields,
    task_record,
    task_signature,
)
from herbarium.labels import BoxLabel
from herbarium.taxonomy import NONVEGETAL, PLANT, TRAITS


def test_label_fields_follow_the_config_controls_not_the_review_ones() -> None:
    assert label_controls(review_config()) == {
        "nonvegetal": "detections",
        "organs": "detections",
        "plant_mask": "detections",
        "plant_outline": "polylines",
        "leaf_margin": "classification",
        "phenology": "classification",
    }


def test_controls_map_to_their_label_sets_and_aliases_resolve() -> None:
    assert control_label_set("nonvegetal") is NONVEGETAL
    assert control_label_set("plant_outline") is PLANT
    assert control_label_set("phenology") is TRAITS["phenology"]
    assert control_label_set("mystery") is None
    box = {"x": 1, "y": 1, "width": 2, "height": 2}
    assert in_taxonomy(BoxLabel(label="color card", control="nonvegetal", **box))
    assert not in_taxonomy(BoxLabel(label="sticker", control="nonvegetal", **box))
    assert not in_taxonomy(BoxLabel(label="leaf", control="nonvegetal", **box))  # right word, wrong control
    assert not in_taxonomy(BoxLabel(label="barcode", control="mystery", **box))


def test_local_file_urls_resolve_under_the_document_root_only(tmp_path: Path) -> None:
    assert image_path("/data/local-files/?d=a/b%20c.jpg", tmp_path) == tmp_path.resolve() / "a" / "b c.jpg"
    assert image_path("http://ls:8080/data/local-files/?d=a.jpg", tmp_path) == tmp_path.resolve() / "a.jpg"
    assert image_path("/data/local-files/?d=../../etc/passwd", tmp_path) is None
    assert image_path("https://example.org/a.jpg", tmp_path) is None
    assert image_path("/data/local-files/?d=a.jpg", None) is None


def test_the_record_keeps_string_fields_but_not_the_image_or_reserved_names() -> None:
    data = {
        "image": "/data/local-files/?d=a.jpg",
        "catalogNumber": "P001",
        "scientificName": "Quercus robur",
        "id": "x",
        "ls_task_id": "y",
        "count": 3,
        "bad key": "z",
    }
    assert task_record(data) == {"catalogNumber": "P001", "scientificName": "Quercus robur"}


def test_the_newest_annotation_wins_and_skipped_ones_do_not_count() -> None:
    older = {"id": 1, "updated_at": "2026-01-01T00:00:00Z"}
    newer = {"id": 2, "updated_at": "2026-02-01T00:00:00Z"}
    skipped = {"id": 3, "updated_at": "2026-03-01T00:00:00Z", "was_cancelled": True}
    assert newest_annotation([newer, older, skipped]) is newer
    assert newest_annotation([skipped]) is None
    assert task_signature({"updated_at": "t", "total_annotations": 1, "total_predictions": 2}) == "t|1|2"


def _box_result(region: str, label: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": region,
        "type": "rectanglelabels",
        "from_name": "nonvegetal",
        "to_name": "image",
        "original_width": 200,
        "original_height": 400,
        "image_rotation": 0,
        "value": {"x": 10, "y": 10, "width": 20, "height": 10, "rotation": 0, "rectanglelabels": [label]},
        **extra,
    }


def test_ai_labels_come_from_predictions_and_expert_labels_from_the_newest_annotation() -> None:
    verdict = {**_box_result("a", "ruler"), "type": "choices", "from_name": "verdict"}
    verdict["value"] = {**verdict["value"], "choices": ["not a plant part"]}
    del verdict["value"]["rectanglelabels"]
    task = {
        "id": 7,
        "updated_at": "t",
        "data": {"image": "https://example.org/a.jpg", "catalogNumber": "P7"},
        "predictions": [{"id": 1, "model_version": "det@1", "score": 0.4, "result": [_box_result("p", "barcode")]}],
        "annotations": [
            {"id": 5, "completed_by": 3, "updated_at": "2026-01-01", "result": [_box_result("o", "stamp")]},
            {
                "id": 6,
                "completed_by": 4,
                "updated_at": "2026-02-01",
                "result": [_box_result("a", "ruler"), verdict, _box_result("u", "sticker")],
            },
        ],
    }
    fields = task_fields(task, label_controls(review_config()), None)
    assert fields.unresolved_image == "https://example.org/a.jpg"
    assert fields.image_size == (200, 400)
    assert fields.ai is not None
    assert fields.expert is not None
    [ai] = fields.ai["ai_nonvegetal"].detections
    assert (ai.label, ai.source, ai.state, ai.confidence) == ("barcode", "det@1", "predicted", 0.4)
    assert ai.bounding_box == [0.1, 0.1, 0.2, 0.1]
    expert = fields.expert["expert_nonvegetal"].detections
    assert [(d.label, d.state, d.source) for d in expert] == [
        ("ruler", "rejected", "expert:4"),
        ("sticker", "corrected", "expert:4"),
    ]
    assert expert[1][UNKNOWN_ATTRIBUTE] is True
    assert fields.expert["expert_annotation_id"] == 6
    assert fields.expert["review_state"] == "annotated"
    assert fields.ai["ai_phenology"] is None
    assert fields.expert_unknown
    assert not fields.ai_unknown
    assert [u.label for u in fields.unknown] == ["sticker"]
