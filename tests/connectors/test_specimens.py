"""Specimens in: images joined to Darwin Core records from a folder + CSV or a Darwin Core Archive."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import connectors.specimens as specimens_module
from connectors.dwca_reader import read_dwca
from connectors.dwca_writer import write_dwca
from connectors.projects import SpecimenTask
from connectors.specimens import (
    BarcodeMatch,
    SpecimenImportError,
    read_folder,
)
from herbarium.synth import Manifest, write_sheets
from plantai.cli import cli

SIZE = 800  # small sheets: the barcode still reads, a sheet draws in well under a second


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return write_sheets(tmp_path_factory.mktemp("synth") / "sheets", n=3, size=SIZE, seed=11)


@pytest.fixture
def sheets(synth_set: Manifest, tmp_path: Path) -> Manifest:
    """A private copy of the synthetic set, free to rename and break."""
    root = tmp_path / "sheets"
    shutil.copytree(synth_set.root, root)
    return Manifest(root, synth_set.seed, synth_set.width, synth_set.height, synth_set.sheets)


def _rows(manifest: Manifest) -> list[dict[str, str]]:
    with manifest.occurrence_path.open(encoding="utf-8", newline="") as table:
        return list(csv.DictReader(table))


def _write_csv(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as table:
        writer = csv.DictWriter(table, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_folder_and_csv_join_every_image_to_its_record(sheets: Manifest) -> None:
    found = read_folder(sheets.root / "images", sheets.occurrence_path)

    assert [s.catalog_number for s in found.specimens] == [s.catalog_number for s in sheets.sheets]
    for specimen, sheet in zip(found.specimens, sheets.sheets, strict=True):
        assert specimen.image == sheets.root / sheet.image
        assert {k: specimen.record[k] for k in sheet.darwin_core} == dict(sheet.darwin_core)
        assert all(isinstance(v, str) for v in specimen.record.values())
    assert not found.has_problems, found.to_json()
    assert found.encoding == "utf-8"


def test_a_renamed_image_is_joined_through_its_barcode(sheets: Manifest) -> None:
    sheet = sheets.sheets[1]
    renamed = sheets.root / "images" / "scan 0001.jpg"
    (sheets.root / sheet.image).rename(renamed)

    found = read_folder(sheets.root / "images", sheets.occurrence_path)

    assert found.read_from_barcode == [BarcodeMatch(renamed, sheet.catalog_number)]
    assert {s.catalog_number: s.image for s in found.specimens}[sheet.catalog_number] == renamed
    assert found.unmatched_images == []
    assert found.unmatched_records == []


def test_the_barcode_is_read_at_full_resolution_when_the_reduced_decode_misses_it(
    sheets: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(specimens_module, "BARCODE_MAX_SIDE", 48)  # far too small for any barcode to read
    sheet = sheets.sheets[0]
    renamed = sheets.root / "images" / "IMG_7.jpg"
    (sheets.root / sheet.image).rename(renamed)

    found = read_folder(sheets.root / "images", sheets.occurrence_path)

    assert found.read_from_barcode == [BarcodeMatch(renamed, sheet.catalog_number)]


def test_unmatched_images_and_records_are_reported(sheets: Manifest) -> None:
    images = sheets.root / "images"
    missing = sheets.sheets[2]
    (sheets.root / missing.image).unlink()
    blank = images / "blank-sheet.jpg"
    Image.new("RGB", (300, 420), (240, 235, 220)).save(blank)  # no barcode, name matches nothing
    (images / "notes.txt").write_text("not an image")

    found = read_folder(images, sheets.occurrence_path)

    assert found.unmatched_images == [blank]
    assert found.unmatched_records == [missing.catalog_number]
    assert found.other_files == [images / "notes.txt"]
    assert len(found.specimens) == 2
    assert found.has_problems


def test_file_names_match_catalog_numbers_whatever_their_case(sheets: Manifest) -> None:
    sheet = sheets.sheets[0]
    lower = sheets.root / "images" / f"{sheet.catalog_number.lower()}.JPG"
    (sheets.root / sheet.image).rename(lower)

    found = read_folder(sheets.root / "images", sheets.occurrence_path)

    assert found.specimens[0].image == lower
    assert found.specimens[0].catalog_number == sheet.catalog_number  # the record's spelling
    assert found.read_from_barcode == []


def test_duplicate_catalog_numbers_are_reported_and_the_first_record_kept(sheets: Manifest) -> None:
    rows = _rows(sheets)
    first = rows[0]
    rows.append({**first, "catalogNumber": f" {first['catalogNumber'].lower()} ", "scientificName": "Other name"})
    table = _write_csv(sheets.root / "dup.csv", rows)

    found = read_folder(sheets.root / "images", table)

    assert found.duplicate_catalog_numbers == [f"{first['catalogNumber'].lower()}"]
    kept = {s.catalog_number: s for s in found.specimens}[first["catalogNumber"]]
    assert kept.record["scientificName"] == first["scientificName"]
    assert len(found.specimens) == 3


def test_unknown_columns_are_reported_and_kept(sheets: Manifest) -> None:
    rows = [
        {("dwc:country" if k == "country" else k): v for k, v in row.items()} | {"shelfMark": f"B-{i}"}
        for i, row in enumerate(_rows(sheets))
    ]
    table = _write_csv(sheets.root / "extra.csv", rows)

    found = read_folder(sheets.root / "images", table)

    assert found.unknown_columns == ["shelfMark"]
    assert found.specimens[0].record["shelfMark"] == "B-0"
    assert found.specimens[0].record["country"] == rows[0]["dwc:country"]  # a prefixed term is a known term


def test_a_cp1252_csv_is_read_with_its_accents_and_its_encoding_reported(sheets: Manifest) -> None:
    rows = _rows(sheets)
    rows[0]["locality"] = "Vallée du Rhône, Valais"
    table = _write_csv(sheets.root / "windows.csv", rows, encoding="cp1252")
    with pytest.raises(UnicodeDecodeError):
        table.read_text(encoding="utf-8")  # the test input really is not UTF-8

    found = read_folder(sheets.root / "images", table)

    assert found.encoding == "cp1252"
    assert found.specimens[0].record["locality"] == "Vallée du Rhône, Valais"
    assert any("cp1252" in w for w in found.warnings)


def test_an_image_that_does_not_open_is_reported_as_unreadable(sheets: Manifest) -> None:
    broken = sheets.root / sheets.sheets[0].image
    broken.write_bytes(b"\xff\xd8 this is not a JPEG")
    stray = sheets.root / "images" / "stray.png"
    stray.write_bytes(b"")

    found = read_folder(sheets.root / "images", sheets.occurrence_path)

    unreadable = {u.path: u.reason for u in found.unreadable_images}
    assert set(unreadable) == {broken, stray}
    assert all(unreadable.values())
    assert found.unmatched_records == [sheets.sheets[0].catalog_number]
    assert len(found.specimens) == 2


def test_a_csv_without_catalog_numbers_is_refused_by_name(sheets: Manifest) -> None:
    table = _write_csv(sheets.root / "nocat.csv", [{"scientificName": "Urtica dioica L."}])
    with pytest.raises(SpecimenImportError, match=r"nocat\.csv: no catalogNumber column"):
        read_folder(sheets.root / "images", table)


def test_a_stray_quote_costs_one_warned_line_and_a_quoted_line_break_is_kept(tmp_path: Path) -> None:
    table = tmp_path / "occurrence.csv"
    table.write_text('catalogNumber,notes\nB1,"Leg. Smith\nflowers white"\nB2,"type" sheet\nB3,"oops\nB4,ok\n')

    records = specimens_module.read_records_csv(table)

    notes = {record["catalogNumber"]: record["notes"] for record in records.by_key.values()}
    assert notes == {"B1": "Leg. Smith\nflowers white", "B2": '"type" sheet', "B3": '"oops', "B4": "ok"}
    assert [w.split(":")[0] for w in records.warnings] == ["occurrence.csv, line 4", "occurrence.csv, line 5"]


def test_a_stray_quote_closed_rows_later_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    table = tmp_path / "occurrence.csv"
    table.write_text('catalogNumber,notes\nB1,"oops\nB2,5 inch"\nB3,ok\n')

    found = read_folder(tmp_path / "images", table)

    assert found.unmatched_records == ["B1", "B3"]  # read as CSV has it: B2 is inside B1's notes
    assert found.warnings == [
        "occurrence.csv, line 2: a quoted value holds lines that read as rows of their own; check it for a stray quote"
    ]


def test_darwin_core_archive_round_trip(sheets: Manifest, tmp_path: Path) -> None:
    archive = write_dwca(sheets.root, tmp_path / "herbarium.zip")
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
    assert {"meta.xml", "occurrence.txt", "multimedia.txt"} <= names
    assert {s.image for s in sheets.sheets} <= names

    found = read_dwca(archive, tmp_path / "extracted")

    assert not found.has_problems, found.to_json()
    assert [s.catalog_number for s in found.specimens] == [s.catalog_number for s in sheets.sheets]
    for specimen, sheet in zip(found.specimens, sheets.sheets, strict=True):
        assert dict(specimen.record) == dict(sheet.darwin_core)
        assert specimen.image.is_relative_to(tmp_path / "extracted")
        assert specimen.image.read_bytes() == (sheets.root / sheet.image).read_bytes()


def test_archive_multimedia_links_images_whatever_their_names(sheets: Manifest, tmp_path: Path) -> None:
    tasks = []
    for i, sheet in enumerate(sheets.sheets):
        image = sheets.root / "images" / f"photo-{i}.jpg"
        (sheets.root / sheet.image).rename(image)
        tasks.append(SpecimenTask(sheet.catalog_number, image, dict(sheet.darwin_core)))
    archive = write_dwca(tasks, tmp_path / "renamed.zip")

    found = read_dwca(archive, tmp_path / "x")

    assert [s.image.name for s in found.specimens] == ["photo-0.jpg", "photo-1.jpg", "photo-2.jpg"]
    assert found.read_from_barcode == []  # the multimedia extension named them


def test_archive_duplicates_and_unknown_columns_are_reported(sheets: Manifest, tmp_path: Path) -> None:
    first, second = sheets.sheets[0], sheets.sheets[1]
    tasks = [
        SpecimenTask(first.catalog_number, sheets.root / first.image, {**first.darwin_core, "drawer": "12"}),
        SpecimenTask(first.catalog_number, sheets.root / second.image, dict(second.darwin_core)),
    ]
    archive = write_dwca(tasks, tmp_path / "dup.zip")

    found = read_dwca(archive, tmp_path / "x")

    assert found.duplicate_catalog_numbers == [first.catalog_number]
    assert found.unknown_columns == ["drawer"]
    assert len(found.specimens) == 1
    assert found.specimens[0].record["scientificName"] == first.darwin_core["scientificName"]
    assert [e.image.name for e in found.extra_images] == [Path(second.image).name]  # the duplicate's image


def _rewrite(archive: Path, out: Path, drop: str = "", recode: str = "") -> Path:
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if name == drop:
                continue
            data = src.read(name)
            if name == recode:
                data = data.decode("utf-8").encode("cp1252")
            dst.writestr(name, data)
    return out


def test_an_archive_without_its_core_file_is_refused_naming_it(sheets: Manifest, tmp_path: Path) -> None:
    archive = _rewrite(write_dwca(sheets.root, tmp_path / "a.zip"), tmp_path / "broken.zip", drop="occurrence.txt")
    with pytest.raises(SpecimenImportError, match=r"broken\.zip: core data file 'occurrence\.txt' .* missing"):
        read_dwca(archive, tmp_path / "x")


def test_a_file_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.zip"
    bogus.write_text("hello")
    with pytest.raises(SpecimenImportError, match=r"bogus\.zip: not a readable zip"):
        read_dwca(bogus, tmp_path / "x")


def test_a_non_utf8_archive_core_is_read_and_reported(sheets: Manifest, tmp_path: Path) -> None:
    sheet = sheets.sheets[0]
    task = SpecimenTask(sheet.catalog_number, sheets.root / sheet.image, {**sheet.darwin_core, "locality": "Rhône"})
    archive = _rewrite(write_dwca([task], tmp_path / "a.zip"), tmp_path / "cp.zip", recode="occurrence.txt")

    found = read_dwca(archive, tmp_path / "x")

    assert found.specimens[0].record["locality"] == "Rhône"
    assert found.encoding == "cp1252"
    assert any("occurrence.txt" in w and "cp1252" in w for w in found.warnings)


def test_cli_dry_run_reports_without_label_studio(sheets: Manifest) -> None:
    args = ["specimens", "import", str(sheets.root / "images"), "--records", str(sheets.occurrence_path)]
    result = CliRunner().invoke(cli, [*args, "--project", "1", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["matched"] == 3
    assert report["would_import"] == 3
    assert report["imported"] == 0
    assert report["project_checked"] is False


def test_cli_fails_only_when_nothing_can_be_imported_and_something_is_wrong(sheets: Manifest) -> None:
    for sheet in sheets.sheets:
        (sheets.root / sheet.image).unlink()
    args = ["specimens", "import", str(sheets.root / "images"), "--records", str(sheets.occurrence_path)]
    result = CliRunner().invoke(cli, [*args, "--project", "1", "--dry-run"])
    assert result.exit_code == 1, result.output
    assert "unmatched records" in result.output

    missing_records = CliRunner().invoke(cli, ["specimens", "import", str(sheets.root), "--project", "1", "--dry-run"])
    assert missing_records.exit_code == 2
    assert "--records is required" in missing_records.output
