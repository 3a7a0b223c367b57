"""Writing a data set to disk and reading it back: files, manifest, Darwin Core CSV, decodable barcodes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from herbarium.labels.model import BoxLabel, LabelState
from herbarium.synth import DARWIN_CORE_TERMS, Manifest, ManifestError, generate_sheet, load_manifest, write_sheets
from herbarium.taxonomy import NONVEGETAL, ORGANS


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    calls: list[tuple[int, int]] = []
    manifest = write_sheets(
        tmp_path_factory.mktemp("synth"), 6, 1024, seed=40, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(i, 6) for i in range(1, 7)]
    return manifest


def _decode(path: Path) -> list[tuple[str, str]]:
    with Image.open(path) as image:
        assert image.format == "JPEG"
        return [(r.text, r.format.name) for r in zxingcpp.read_barcodes(np.asarray(image.convert("RGB")))]


def test_files_follow_the_sample_layout(written: Manifest) -> None:
    root = written.root
    assert len(written.sheets) == 6
    assert sorted(p.name for p in root.iterdir()) == [
        "images",
        "instance-masks",
        "manifest.json",
        "masks",
        "occurrence.csv",
    ]
    for record in written.sheets:
        name = record.catalog_number
        assert record.image == f"images/{name}.jpg"
        assert record.mask == f"masks/{name}.png"
        assert record.instance_masks == tuple(
            f"instance-masks/{name}_plant_{k}.png" for k in range(len(record.instance_masks))
        )
        with Image.open(root / record.image) as image:
            assert image.size == (707, 1024)
        for path in (record.mask, *record.instance_masks):
            with Image.open(root / path) as mask:
                assert (mask.format, mask.mode, mask.size) == ("PNG", "L", (707, 1024))
                assert set(np.unique(np.asarray(mask)).tolist()) == {0, 255}
    assert len(list((root / "images").iterdir())) == 6
    assert not list(root.glob(".*partial"))


def test_masks_on_disk_match_and_union(written: Manifest) -> None:
    for record in written.sheets:
        plant = np.asarray(Image.open(written.root / record.mask)) > 0
        union = np.zeros_like(plant)
        for path in record.instance_masks:
            union |= np.asarray(Image.open(written.root / path)) > 0
        assert plant.any()
        assert np.array_equal(plant, union)
        assert np.array_equal(plant, generate_sheet(record.seed, record.width, record.height).plant_mask)


@pytest.mark.parametrize("size", [1024, 512])
def test_barcode_in_saved_jpeg_decodes_to_catalog_number(tmp_path: Path, size: int) -> None:
    manifest = write_sheets(tmp_path, 8, size, seed=1000 + size)
    for record in manifest.sheets:
        assert (record.catalog_number, "Code128") in _decode(tmp_path / record.image)


def test_manifest_json_lists_everything(written: Manifest) -> None:
    data = json.loads((written.root / "manifest.json").read_text())
    assert (data["format"], data["count"], data["seed"], data["width"], data["height"]) == (
        "plantai-synth/1",
        6,
        40,
        707,
        1024,
    )
    assert data["classes"]["nonvegetal"] == list(NONVEGETAL.classes)
    assert data["classes"]["organs"] == list(ORGANS.classes)
    for i, entry in enumerate(data["sheets"]):
        assert entry["seed"] == 40 + i
        assert entry["darwin_core"]["catalogNumber"] == entry["catalogNumber"]
        assert set(entry["traits"]) == {"leaf_margin", "phenology"}
        assert {b["group"] for b in entry["boxes"]} == {"nonvegetal", "organs"}
        for box in entry["boxes"]:
            assert (box["plant"] is None) == (box["group"] == "nonvegetal")
            assert box["x"] + box["width"] <= entry["width"]
            assert box["y"] + box["height"] <= entry["height"]


def test_occurrence_csv_is_darwin_core(written: Manifest) -> None:
    with (written.root / "occurrence.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == [*DARWIN_CORE_TERMS, "associatedMedia"]
        rows = list(reader)
    assert [r["catalogNumber"] for r in rows] == [s.catalog_number for s in written.sheets]
    for row, record in zip(rows, written.sheets, strict=True):
        assert row["associatedMedia"] == record.image
        assert (written.root / row["associatedMedia"]).is_file()
        assert {k: row[k] for k in DARWIN_CORE_TERMS} == dict(record.darwin_core)


def test_load_manifest_rebuilds_specimen_labels(written: Manifest) -> None:
    loaded = load_manifest(written.root)
    assert loaded.sheets == written.sheets
    record = loaded.sheets[2]
    labels = record.specimen_labels(loaded.root)
    sheet = generate_sheet(record.seed, record.width, record.height)
    assert labels.image == record.image
    assert (labels.width, labels.height) == (sheet.width, sheet.height)
    # Boxes, masks read back from the PNGs and traits all equal the freshly generated sheet's.
    assert labels.labels == sheet.labels.labels
    assert all(isinstance(b, BoxLabel) and b.state is LabelState.VALIDATED for b in labels.boxes)
    without = record.specimen_labels(loaded.root, masks=False)
    assert not without.masks
    assert len(without.boxes) == len(labels.boxes)


def test_load_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(ManifestError, match="format"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "plantai-synth/1", "seed": 0}')
    with pytest.raises(ManifestError, match="malformed"):
        load_manifest(tmp_path)


def test_masks_are_written_like_the_real_sample_masks(written: Manifest, samples_dir: Path) -> None:
    real_masks = sorted((samples_dir / "plant-masks" / "instance-masks").glob("*_plant_*.png"))
    assert real_masks
    with Image.open(real_masks[0]) as real:
        real_format = (real.format, real.mode, np.asarray(real).dtype)
    record = written.sheets[0]
    for path in (record.mask, *record.instance_masks):
        with Image.open(written.root / path) as ours:
            assert (ours.format, ours.mode, np.asarray(ours).dtype) == real_format
