"""Printed text on a sheet, read with PP-OCRv4 (rapidocr-onnxruntime): the models come inside the wheel.

The wheel ``rapidocr-onnxruntime`` (Apache-2.0) ships PP-OCRv4's text detection and recognition ONNX
models. They are pinned by sha256 and checked before the first use; a file that differs is refused
with :class:`PrintedTextError`, never loaded. One reader per process, made on first use (not at import).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import Any

from PIL import Image

PACKAGE = "rapidocr-onnxruntime"
try:
    READER = f"{PACKAGE}@{metadata.version(PACKAGE)}"
except metadata.PackageNotFoundError:  # said as PrintedTextError when text is first read
    READER = f"{PACKAGE}@missing"
# The wheel's model files (rapidocr_onnxruntime/models/) this code was checked with, by role.
PINNED_MODELS = {
    "det": ("ch_PP-OCRv4_det_infer.onnx", "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
    "rec": ("ch_PP-OCRv4_rec_infer.onnx", "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),
    "cls": ("ch_ppocr_mobile_v2.0_cls_infer.onnx", "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
}


class PrintedTextError(RuntimeError):
    """The OCR models are missing or are not the pinned files."""


@dataclass(frozen=True)
class TextLine:
    """One line of printed text: what it says, the recogniser's confidence, its box in the picture (x0 y0 x1 y1)."""

    text: str
    score: float
    box: tuple[float, float, float, float]


def models_dir() -> Path:
    found = util.find_spec("rapidocr_onnxruntime")
    if found is None or found.origin is None:
        raise PrintedTextError(f"{PACKAGE} is not installed")
    return Path(found.origin).parent / "models"


def verified_models() -> dict[str, Path]:
    """The pinned model files by role, each checked against its sha256."""
    folder = models_dir()
    paths: dict[str, Path] = {}
    for role, (name, expected) in PINNED_MODELS.items():
        path = folder / name
        if not path.is_file():
            raise PrintedTextError(f"{PACKAGE}: {name} is missing from {folder}")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise PrintedTextError(f"{PACKAGE}: {name} has sha256 {actual}, expected {expected}: refusing to load it")
        paths[role] = path
    return paths


def origin() -> dict[str, str]:
    """What a model that reads printed text records as its origin: package and model files with their sha256."""
    return {"package": READER, **{name: sha for name, sha in PINNED_MODELS.values()}}


_reader: Any = None
_reader_lock = threading.Lock()


def _ocr() -> Any:
    global _reader
    with _reader_lock:
        if _reader is None:
            from rapidocr_onnxruntime import RapidOCR

            paths = verified_models()
            _reader = RapidOCR(
                det_model_path=str(paths["det"]),
                rec_model_path=str(paths["rec"]),
                cls_model_path=str(paths["cls"]),
                use_cls=False,  # crops are upright: the angle classifier only costs time
                # Crops are small: the default enlarges their short side to 736 px for detection (8x the time
                # on the sample barcodes, for the same reads); "max" only ever shrinks large ones.
                det_limit_type="max",
                intra_op_num_threads=2,
            )
        return _reader


def read_lines(picture: Image.Image) -> list[TextLine]:
    """Every line of printed text PP-OCRv4 finds in ``picture``, top to bottom."""
    reader = _ocr()
    with _reader_lock:  # rapidocr keeps per-call state on the reader: one call at a time
        found, _elapsed = reader(picture.convert("RGB"))  # a PIL image: rapidocr turns it into BGR itself
    lines: list[TextLine] = []
    for corners, text, score in found or []:
        xs, ys = [float(p[0]) for p in corners], [float(p[1]) for p in corners]
        lines.append(TextLine(str(text), float(score), (min(xs), min(ys), max(xs), max(ys))))
    return sorted(lines, key=lambda line: (line.box[1], line.box[0]))
