"""Reading a barcode in its box: the bars of a generated sheet's Code 128, at its own resolution or enlarged."""

from __future__ import annotations

from pathlib import Path

import pytest

from herbarium.barcodes import PRINTED_FORMAT, READER, read_barcode, read_in_box, same_value
from herbarium.imaging import SpecimenImage, read_image
from herbarium.labels import BoxLabel
from herbarium.printed_text import READER as PRINTED_READER
from herbarium.synth import generate_sheet
from ml_backends.adapters import _with_barcode_values


@pytest.fixture(scope="module")
def sheet_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    sheet = generate_sheet(seed=11, width=1700, height=2400)
    path = tmp_path_factory.mktemp("barcode") / "sheet.jpg"
    sheet.image.save(path, quality=92)
    return path, sheet


def _barcode_box(sheet: object) -> tuple[float, float, float, float]:
    box = next(b for b in sheet.boxes if b.label == "barcode")  # type: ignore[attr-defined]
    return (box.x, box.y, box.x + box.width, box.y + box.height)


def test_the_box_is_read_at_full_resolution(sheet_file: tuple[Path, object]) -> None:
    path, sheet = sheet_file
    picture = read_image(path).image
    found = read_in_box(picture, _barcode_box(sheet))
    assert found is not None
    assert found.text == sheet.catalog_number
    assert found.format == "Code128"


def test_an_empty_region_reads_nothing(sheet_file: tuple[Path, object]) -> None:
    path, _ = sheet_file
    assert read_in_box(read_image(path).image, (5, 5, 60, 30)) is None


def test_a_backend_reads_a_barcode_its_reduced_picture_cannot_resolve(sheet_file: tuple[Path, object]) -> None:
    path, sheet = sheet_file
    reduced = read_image(path, max_side=512)  # bars under a pixel each: unreadable at this size
    x0, y0, x1, y1 = _barcode_box(sheet)
    assert (
        read_in_box(reduced.image, (x0 * reduced.scale, y0 * reduced.scale, x1 * reduced.scale, y1 * reduced.scale))
        is None
    )
    boxes = [
        BoxLabel(label="barcode", x=x0, y=y0, width=x1 - x0, height=y1 - y0, score=0.9, source="d@1.0.0"),
        BoxLabel(label="label", x=10, y=10, width=50, height=50, score=0.9, source="d@1.0.0"),
    ]
    read = _with_barcode_values(reduced, boxes)
    assert read[0].comment == f"barcode: {sheet.catalog_number} (Code128)"  # type: ignore[attr-defined]
    assert read[0].source == f"d@1.0.0+{READER}"
    assert read[1] == boxes[1]


def test_bars_too_fine_to_decode_are_read_from_their_printed_line(sheet_file: tuple[Path, object]) -> None:
    path, sheet = sheet_file
    # The bars are under a pixel each, the printed line still legible (about 8 px tall: OCR reads it at 800 px
    # and at 1,050, not at 900 or 1,000, where it drops or confuses a digit; the real sample barcodes are the
    # measure, bench/real_sheets.py).
    side = 800
    picture = read_image(path, max_side=side)
    box = tuple(v * picture.scale for v in _barcode_box(sheet))
    assert read_in_box(picture.image, box) is None  # type: ignore[arg-type]
    found = read_barcode(picture.image, box)  # type: ignore[arg-type]
    assert found is not None
    assert (found.text, found.format, found.reader) == (sheet.catalog_number, PRINTED_FORMAT, PRINTED_READER)  # type: ignore[attr-defined]
    assert read_barcode(picture.image, box, printed=False) is None  # type: ignore[arg-type]
    detached = SpecimenImage(picture.image, picture.original_width, picture.original_height)  # no file to decode again
    boxes = [BoxLabel(label="barcode", x=box[0] / picture.scale, y=box[1] / picture.scale,
                      width=(box[2] - box[0]) / picture.scale, height=(box[3] - box[1]) / picture.scale,
                      score=0.9, source="d@1.0.0")]  # fmt: skip
    (labelled,) = _with_barcode_values(detached, boxes)
    assert labelled.comment == f"barcode: {sheet.catalog_number} ({PRINTED_FORMAT})"  # type: ignore[attr-defined]
    assert labelled.source == f"d@1.0.0+{PRINTED_READER}"


def test_two_readings_of_one_code_agree() -> None:
    assert same_value("L 0059912", "l0059912")
    assert same_value("000521755 (BM)", "000521755BM")
    assert not same_value("00909904", "00909905")
    assert not same_value("", " ")
