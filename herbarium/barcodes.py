"""Reading barcodes where a detector says they are: crops at the best resolution at hand, zxing-cpp on each.

zxing-cpp on a whole downscaled sheet finds nothing: a barcode's bars need about two pixels each
(VARP, Powell & Shaw 2021, decodes 96.5% of 1,000 sheets by cropping candidates first). So each
candidate box is cut out with a margin, enlarged when its bars are thin, contrast-stretched, and
read; the first symbol found inside the crop is the box's value.

When the bars are too fine for any decoder (a web-sized scan), a person still reads the value from
the human-readable line printed with the barcode: :func:`read_printed_value` does the same with
PP-OCRv4 (:mod:`herbarium.printed_text`). Every read says which reader made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

from PIL import Image, ImageOps

READER = f"zxing-cpp@{metadata.version('zxing-cpp')}"
MARGIN = 0.25  # of the box's height (and a tenth of its width) added around it: quiet zones matter
MIN_CROP_SHORT_SIDE = 96  # crops are enlarged until their short side has this many pixels
ENLARGEMENTS = (1, 2, 3)
DECODE_SIDE = 4096  # the largest decode of a sheet barcodes are read in (a 68-Mpx scan's is ~70 MB of pixels)
PRINTED_FORMAT = "printed line"  # the format of a value read from the human-readable line, not the bars
PRINTED_BOX_WIDTH = 240  # crops for the printed line are enlarged until the box is this wide (at most 4x)
MIN_PRINTED_DIGITS = 4  # a printed line with fewer digits is a heading ("NEW YORK BOTANICAL GARDEN"), not the value
MIN_PRINTED_SCORE = 0.9  # OCR lines below this confidence are left unread: a wrong catalogue number misleads
Box = tuple[float, float, float, float]  # x0 y0 x1 y1


@dataclass(frozen=True)
class BarcodeRead:
    """A decoded symbol: its text and format, and the box it was read in (the caller's frame)."""

    text: str
    format: str
    box: Box
    reader: str = READER


def read_in_box(picture: Image.Image, box: Box) -> BarcodeRead | None:
    """The first symbol zxing-cpp decodes in ``box`` of ``picture`` (with a margin), else None."""
    import zxingcpp

    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    if width <= 1 or height <= 1:
        return None
    pad_x, pad_y = 0.1 * width + MARGIN * height, MARGIN * max(height, width / 4)
    region = (
        max(0, int(x0 - pad_x)),
        max(0, int(y0 - pad_y)),
        min(picture.width, int(x1 + pad_x) + 1),
        min(picture.height, int(y1 + pad_y) + 1),
    )
    crop = picture.crop(region).convert("L")
    base = max(1.0, MIN_CROP_SHORT_SIDE / max(1, min(crop.size)))
    for enlargement in ENLARGEMENTS:
        factor = base * enlargement
        sized = crop if factor == 1 else crop.resize(
            (round(crop.width * factor), round(crop.height * factor)), Image.Resampling.LANCZOS
        )  # fmt: skip
        for candidate in (sized, ImageOps.autocontrast(sized, cutoff=1)):
            found = zxingcpp.read_barcodes(candidate, try_rotate=True, try_downscale=True)
            for symbol in found:
                if symbol.text:
                    return BarcodeRead(str(symbol.text), symbol.format.name, box)
    return None


def read_in_boxes(picture: Image.Image, boxes: Sequence[Box]) -> list[BarcodeRead | None]:
    """:func:`read_in_box` for each box."""
    return [read_in_box(picture, box) for box in boxes]


def read_printed_value(picture: Image.Image, box: Box) -> BarcodeRead | None:
    """The human-readable line printed with the barcode in ``box`` (just below or above it), read by OCR.

    Confident text lines (MIN_PRINTED_SCORE) on one row are joined left to right; the row with the most
    digits (at least MIN_PRINTED_DIGITS) is the value.
    """
    from herbarium.printed_text import READER as OCR_READER
    from herbarium.printed_text import read_lines

    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    if width <= 1 or height <= 1:
        return None
    region = (
        max(0, int(x0 - 0.15 * width)),
        max(0, int(y0 - 0.6 * height)),
        min(picture.width, int(x1 + 0.15 * width) + 1),
        min(picture.height, int(y1 + 1.0 * height) + 1),
    )
    crop = picture.crop(region)
    factor = min(4.0, max(1.0, PRINTED_BOX_WIDTH / width))
    if factor > 1:
        crop = crop.resize((round(crop.width * factor), round(crop.height * factor)), Image.Resampling.BICUBIC)
    rows: list[list[tuple[float, str]]] = []
    row_spans: list[tuple[float, float]] = []
    for line in read_lines(crop):
        if line.score < MIN_PRINTED_SCORE:
            continue
        top, bottom = line.box[1], line.box[3]
        for i, (row_top, row_bottom) in enumerate(row_spans):
            if min(bottom, row_bottom) - max(top, row_top) > 0.5 * min(bottom - top, row_bottom - row_top):
                rows[i].append((line.box[0], line.text))
                break
        else:
            rows.append([(line.box[0], line.text)])
            row_spans.append((top, bottom))
    texts = [" ".join(text for _x, text in sorted(row)) for row in rows]
    best = max(texts, key=lambda text: sum(c.isdigit() for c in text), default="")
    if sum(c.isdigit() for c in best) < MIN_PRINTED_DIGITS:
        return None
    return BarcodeRead(best, PRINTED_FORMAT, box, OCR_READER)


def read_barcode(picture: Image.Image, box: Box, printed: bool = True) -> BarcodeRead | None:
    """The bars decoded (zxing-cpp), else, with ``printed``, the printed line read (OCR)."""
    return read_in_box(picture, box) or (read_printed_value(picture, box) if printed else None)


def same_value(a: str, b: str) -> bool:
    """Two readings of one code: equal letters and digits, case, spaces and punctuation aside."""
    return _letters_and_digits(a) == _letters_and_digits(b) != ""


def _letters_and_digits(text: str) -> str:
    return "".join(c for c in text.upper() if c.isalnum())
