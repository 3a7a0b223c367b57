"""The team's ground truth on the real sample sheets: well formed, inside each image, covering what the issue asks.

The files name images inside the samples folder; when the folder is here, every image must exist and
every box must lie inside it.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from herbarium.real_sheets import COLLECTIONS, annotation_path, load_real_sheets
from herbarium.taxonomy import NONVEGETAL, ORGANS
from tests.conftest import SAMPLES_DIR

needs_samples = pytest.mark.skipif(not SAMPLES_DIR.is_dir(), reason="real sample sheets not present")


def _tasks(collection: str) -> list[dict[str, object]]:
    tasks: list[dict[str, object]] = json.loads(annotation_path(collection).read_text(encoding="utf-8"))
    return tasks


def test_every_collection_is_annotated_in_label_studio_json_with_how_it_was_made() -> None:
    sheets = Counter({c: len(_tasks(c)) for c in COLLECTIONS})
    assert sheets["plant-masks"] + sheets["mock-sheets"] >= 16
    assert sheets["unb"] >= 30
    assert sheets["aafc"] >= 8
    readme = (annotation_path("unb").parent / "README.md").read_text(encoding="utf-8")
    assert "how" in readme.lower()
    assert "exhaustive" in readme


@needs_samples
def test_every_box_lies_inside_its_image_and_every_sheet_boxes_all_nonvegetal_classes() -> None:
    sheets = [s for s in load_real_sheets(SAMPLES_DIR) if s.has_boxes]
    assert len(sheets) >= 54
    for sheet in sheets:
        assert sheet.image.is_file()
        assert sheet.boxes is not None
        assert set(NONVEGETAL.classes) <= sheet.exhaustive, sheet.name
        from PIL import Image, ImageOps

        with Image.open(sheet.image) as image:
            width, height = ImageOps.exif_transpose(image).size
        assert (sheet.boxes.width, sheet.boxes.height) == (width, height), sheet.name
        for box in sheet.boxes.boxes:
            assert box.label in NONVEGETAL.classes + ORGANS.classes
            assert box.width > 0
            assert box.height > 0
            assert box.x >= 0
            assert box.y >= 0
            assert box.x + box.width <= width
            assert box.y + box.height <= height


@needs_samples
def test_leaves_are_boxed_completely_on_enough_sheets_to_measure() -> None:
    sheets = [s for s in load_real_sheets(SAMPLES_DIR) if s.has_boxes]
    complete = [s for s in sheets if "leaf" in s.exhaustive]
    assert len(complete) >= 30
    leaves = sum(1 for s in complete for b in s.boxes.boxes if b.label == "leaf")  # type: ignore[union-attr]
    assert leaves >= 300
