"""Property tests of the Darwin Core importer (images folder + occurrence CSV, :func:`read_folder`).

Whatever the rows, each is accounted for (a specimen, an unmatched record, a duplicate, or a
"no catalogNumber" warning) with its values as written, and each image too (joined, unmatched,
unreadable, or extra); the only refusal is a SpecimenImportError when there is no catalogNumber column.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from PIL import Image

from connectors.specimens import SpecimenImport, SpecimenImportError, catalog_key, read_folder

# Header spellings -> the name a record keeps (prefixes, term URIs and any case are accepted).
CATALOG = "catalogNumber"
CATALOG_SPELLINGS = [CATALOG, "dwc:catalogNumber", " CatalogNumber ", "http://rs.tdwg.org/dwc/terms/catalogNumber"]
OTHER_COLUMNS = {
    "scientificName": "scientificName",
    "dwc:recordedBy": "recordedBy",
    "EVENTDATE": "eventDate",
    "http://rs.tdwg.org/dwc/terms/country": "country",
    "my notes": "my notes",  # not Darwin Core: kept under its own name
    "Sammler ü": "Sammler ü",
}
# Numbers that collide once case and whitespace are ignored, blanks, and arbitrary text.
CATALOG_NUMBERS = st.sampled_from(["BR0001", "br0001", " BR 0001 ", "P-12", "ÉCH-9", "straße1", "STRASSE1", "", " "])
STRAY = st.sampled_from(['"', ",", ";", "\t", "|", "\n", "\r\n", "\r", " ", '""', "'", "\u2028", "\x00"])
DELIMITERS = st.sampled_from([",", ";", "\t", "|"])
PNG = io.BytesIO()
Image.new("RGB", (8, 8), (240, 235, 220)).save(PNG, format="PNG")  # blank: no barcode, joins by file name only
# The importer writes files, opens images and decodes barcodes: a third of the profile's count (100 in CI).
IMPORTER_SETTINGS = settings(max_examples=max(40, settings().max_examples // 3))


@dataclass
class Folder:
    header: list[str]  # as spelled in the file
    names: list[str]  # what records keep
    rows: list[list[str]]  # fields as written, a few beyond the header
    delimiter: str
    images: list[str]  # file names; ".broken" ones are not pictures


def values(delimiter: str, quoted: bool) -> st.SearchStrategy[str]:
    """Any text with stray quotes, delimiters and line breaks. Unquoted, none that ends the field or the row, nor
    a quote at a field's end: one there could close a quote opening an earlier field, a quoted field as CSV has it
    (a stray quote at a field's start is kept: its line is read as written, with a warning)."""
    if quoted:
        return st.lists(st.text(max_size=3) | STRAY, max_size=4).map("".join)
    one_field = st.lists(st.text(max_size=3) | STRAY, max_size=4).map("".join).map(_without(delimiter, "\r", "\n"))
    return one_field.map(lambda v: f"{v}x" if v.endswith('"') else v)


def _without(*characters: str) -> Callable[[str], str]:
    def remove(text: str) -> str:
        for character in characters:
            text = text.replace(character, "")
        return text

    return remove


@st.composite
def folders(draw: st.DrawFn, *, quoted: bool) -> Folder:
    """A random subset of columns in any order (catalogNumber in 9 of 10), rows, and images named after rows."""
    header = draw(st.lists(st.sampled_from(sorted(OTHER_COLUMNS)), unique=True))
    header += [draw(st.sampled_from(CATALOG_SPELLINGS))] if draw(st.integers(0, 9)) else []
    header = draw(st.permutations(header))
    names = [OTHER_COLUMNS.get(spelling, CATALOG) for spelling in header]
    # One column has no delimiter to sniff: the importer reads it as comma-separated.
    delimiter = draw(DELIMITERS) if len(header) > 1 else ","
    text = values(delimiter, quoted)
    row = st.tuples(*(CATALOG_NUMBERS | text if name == CATALOG else text for name in names))
    extra = st.lists(text, max_size=1)  # a stray delimiter: one value beyond the header
    rows = draw(st.lists(st.tuples(row, extra).map(lambda r: [*r[0], *r[1]]), max_size=8))
    numbers = sorted({dict(zip(names, r, strict=False)).get(CATALOG, "").strip() for r in rows} - {""})
    stem = st.sampled_from([*numbers, "stranger", "scan 0001"]).flatmap(lambda s: st.sampled_from([s, s.lower()]))
    image = st.tuples(stem, st.sampled_from([".png", ".PNG", ".jpg", ".broken.png"])).map("".join)
    image = image.filter(lambda name: not ({"/", "\x00"} & set(name) or name.startswith(".")))  # dot files: ignored
    images = draw(st.lists(image, unique=True, max_size=5))
    return Folder(header, names, rows, delimiter, images)


def write(root: Path, folder: Folder, encoding: str, quoted: bool) -> tuple[Path, str]:
    """The occurrence CSV and the images under ``root``; returns the CSV's path and text."""
    if quoted:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=folder.delimiter).writerows([folder.header, *folder.rows])
        text = buffer.getvalue()
    else:
        text = "".join(f"{folder.delimiter.join(fields)}\n" for fields in [folder.header, *folder.rows])
    path = root / "occurrence.csv"
    try:
        path.write_bytes(text.encode(encoding))
    except UnicodeEncodeError:  # not every text has a cp1252 form
        path.write_bytes(text.encode("utf-8"))
    (root / "images").mkdir()
    for name in folder.images:
        (root / "images" / name).write_bytes(b"not a picture" if ".broken" in name else PNG.getvalue())
    return path, text


def assert_every_row_and_image_accounted_for(found: SpecimenImport, folder: Folder) -> None:
    rows = [fields for fields in folder.rows if any(v.strip() for v in fields)]  # blank rows hold nothing
    records = [{k: v.strip() for k, v in zip(folder.names, fields, strict=False) if v.strip()} for fields in rows]
    kept: dict[str, dict[str, str]] = {}
    duplicates = []
    for record in records:
        if CATALOG in record and catalog_key(record[CATALOG]) in kept:
            duplicates.append(record[CATALOG])
        elif CATALOG in record:
            kept[catalog_key(record[CATALOG])] = record
    assert sum("no catalogNumber" in w for w in found.warnings) == sum(CATALOG not in r for r in records)
    assert sum("beyond the header" in w for w in found.warnings) == sum(len(f) > len(folder.names) for f in rows)
    assert Counter(found.duplicate_catalog_numbers) == Counter(duplicates)
    joined = [s.catalog_number for s in found.specimens]
    assert Counter(joined + found.unmatched_records) == Counter(r[CATALOG] for r in kept.values())
    for specimen in found.specimens:
        assert specimen.record == kept[catalog_key(specimen.catalog_number)]  # every value as written
        assert catalog_key(specimen.image.stem) == catalog_key(specimen.catalog_number)
    seen = [*(s.image for s in found.specimens), *found.unmatched_images]
    seen += [*(u.path for u in found.unreadable_images), *(e.image for e in found.extra_images)]
    assert len(seen) == len(set(seen)) == len(folder.images)
    assert len(found.unreadable_images) == sum(".broken" in name for name in folder.images)


def check_import(folder: Folder, encoding: str, quoted: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, text = write(Path(tmp), folder, encoding, quoted)
        if CATALOG not in folder.names:
            with pytest.raises(SpecimenImportError, match=r"no catalogNumber column|no header line"):
                read_folder(Path(tmp) / "images", csv_path)
            event("refused: no catalogNumber column")
            return
        found = read_folder(Path(tmp) / "images", csv_path)
        if csv_path.read_bytes().decode("utf-8-sig" if found.encoding == "utf-8" else found.encoding) != text:
            event("not checked: cp1252 bytes that are also UTF-8")
            return  # read as UTF-8 (tried first, by design)
        assert_every_row_and_image_accounted_for(found, folder)
        for outcome in ("specimens", "unmatched_records", "duplicate_catalog_numbers", "extra_images", "warnings"):
            event(f"{outcome}: {'some' if getattr(found, outcome) else 'none'}")


@IMPORTER_SETTINGS
@given(folders(quoted=True), st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
def test_every_row_and_image_is_accounted_for(folder: Folder, encoding: str) -> None:
    check_import(folder, encoding, quoted=True)


@IMPORTER_SETTINGS
@given(folders(quoted=False))
def test_unquoted_stray_quotes_and_delimiters_lose_no_row(folder: Folder) -> None:
    check_import(folder, "utf-8", quoted=False)


@pytest.mark.parametrize("rows_after", [2, 20_000], ids=["small file", "large file"])
def test_a_stray_quote_at_a_fields_start_loses_no_row_silently(tmp_path: Path, rows_after: int) -> None:
    (tmp_path / "images").mkdir()
    rows = "".join(f"A{i},note {i}\n" for i in range(rows_after))
    (tmp_path / "occurrence.csv").write_text(f'catalogNumber,notes\nB1,"oops\n{rows}')
    try:
        found = read_folder(tmp_path / "images", tmp_path / "occurrence.csv")
    except SpecimenImportError:
        return  # refusing, naming the file, is a clear answer too
    assert len(found.unmatched_records) == rows_after + 1 or found.warnings, found.to_json()
