"""Printed text by PP-OCRv4 from the rapidocr wheel: pinned model files, checked before loading, read lines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from herbarium import printed_text
from herbarium.barcodes import PRINTED_FORMAT, read_printed_value
from herbarium.printed_text import PINNED_MODELS, PrintedTextError, origin, read_lines, verified_models


def test_the_wheel_holds_the_pinned_models() -> None:
    paths = verified_models()
    assert set(paths) == {"det", "rec", "cls"}
    assert {path.name for path in paths.values()} == {name for name, _sha in PINNED_MODELS.values()}
    assert origin()["package"] == printed_text.READER
    assert origin()["ch_PP-OCRv4_rec_infer.onnx"] == PINNED_MODELS["rec"][1]


def test_a_model_file_that_differs_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for path in verified_models().values():
        shutil.copy(path, tmp_path / path.name)
    with (tmp_path / PINNED_MODELS["rec"][0]).open("ab") as handle:
        handle.write(b"\0")
    monkeypatch.setattr(printed_text, "models_dir", lambda: tmp_path)
    with pytest.raises(PrintedTextError, match="refusing to load"):
        verified_models()
    (tmp_path / PINNED_MODELS["det"][0]).unlink()
    with pytest.raises(PrintedTextError, match="missing"):
        verified_models()


def test_lines_are_read_top_to_bottom() -> None:
    picture = Image.new("RGB", (480, 200), "white")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=36)
    draw.text((20, 20), "HERBARIUM 2026", fill="black", font=font)
    draw.text((20, 110), "No. 04712", fill="black", font=font)
    lines = read_lines(picture)
    assert [line.text.replace(" ", "") for line in lines] == ["HERBARIUM2026", "No.04712"]
    assert all(line.score > 0.9 for line in lines)
    assert lines[0].box[1] < 60 < lines[1].box[1]


def _printed(lines: list[tuple[int, int, str]], size: tuple[int, int] = (480, 220)) -> Image.Image:
    picture = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(picture)
    for x, y, text in lines:
        draw.text((x, y), text, fill="black", font=ImageFont.load_default(size=34))
    return picture


def test_the_printed_value_is_the_row_with_most_digits_joined_left_to_right() -> None:
    picture = _printed([(20, 10, "HERBARIUM LUGDUNUM"), (40, 120, "WAG"), (200, 120, "0059912")])
    found = read_printed_value(picture, (20.0, 60.0, 460.0, 110.0))  # the bars' box between the two rows
    assert found is not None
    assert (found.text, found.format) == ("WAG 0059912", PRINTED_FORMAT)


def test_a_heading_without_digits_is_no_value() -> None:
    picture = _printed([(20, 120, "BOTANICAL GARDEN")])
    assert read_printed_value(picture, (20.0, 60.0, 460.0, 110.0)) is None
