"""Loading real sheets from a samples folder: masks, records, main-label boxes and the team's boxes joined by path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import herbarium.real_sheets as real_sheets
from herbarium.real_sheets import RealSheetsError, box_ground_truth, load_real_sheets
from tests.data.real_sheets.data import write_samples


def test_a_samples_folder_gives_sheets_with_what_it_knows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_samples(tmp_path / "samples")
    monkeypatch.setattr(real_sheets, "ANNOTATIONS_DIR", tmp_path / "samples" / "annotations")
    sheets = {s.name: s for s in load_real_sheets(tmp_path / "samples")}
    assert sorted(sheets) == ["m1", "u-10", "u-11", "u-12"]
    assert sheets["m1"].plant_mask is not None
    assert sheets["m1"].boxes is None
    flowering, sterile, reproductive = sheets["u-10"], sheets["u-11"], sheets["u-12"]
    assert (flowering.phenology, flowering.fertile) == ("flowering", True)
    assert (sterile.phenology, sterile.fertile) == ("sterile", False)
    assert (reproductive.phenology, reproductive.fertile) == (None, True)  # "reproductive": fertile, no class
    assert flowering.main_label == (30.0, 60.0, 70.0, 90.0)
    assert flowering.boxes is not None
    assert [b.label for b in flowering.boxes.boxes] == ["label", "leaf"]
    assert flowering.exhaustive == {"label", "barcode"}
    # Only classes boxed completely are ground truth: the leaf is not.
    assert [b.label for b in box_ground_truth(flowering, ["label", "leaf"])] == ["label"]


def test_no_folder_means_no_sheets(tmp_path: Path) -> None:
    assert load_real_sheets(tmp_path / "missing") == []


def test_an_annotation_with_an_unknown_class_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_samples(tmp_path / "samples")
    annotations = tmp_path / "samples" / "annotations"
    monkeypatch.setattr(real_sheets, "ANNOTATIONS_DIR", annotations)
    tasks = json.loads((annotations / "unb.json").read_text())
    tasks[0]["annotations"][0]["result"][0]["value"]["rectanglelabels"] = ["sticker"]
    (annotations / "unb.json").write_text(json.dumps(tasks))
    with pytest.raises(RealSheetsError, match="sticker"):
        load_real_sheets(tmp_path / "samples")
