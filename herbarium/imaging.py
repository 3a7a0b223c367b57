"""Reading specimen images: the one place that applies EXIF orientation and reduced decode.

Label coordinates everywhere in PlantAI are in the *oriented* frame (as a browser shows the
image). Big scans are decoded at reduced size when the caller only needs a smaller picture
(JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale for a fraction of the full cost).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeAlias

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A file on disk, or its bytes already in memory (a download).
ImageSource: TypeAlias = str | Path | bytes | BinaryIO

# EXIF orientations 5-8 swap width and height.
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION_TAG = 0x0112
# Pillow's own refusal threshold (twice its 89.5 Mpx warning), kept here: a 600-ppi A3 scan is about 70 Mpx.
MAX_PIXELS = 2 * 89_478_485


class ImageReadError(ValueError):
    """An image that cannot be read; the message names the file and why."""


@dataclass(frozen=True)
class SpecimenImage:
    """An RGB picture of a specimen and the oriented size of the full-resolution original."""

    image: Image.Image
    original_width: int
    original_height: int
    # What it was decoded from (a path or the file's bytes), so a reader that needs more pixels than the
    # reduced picture holds (a barcode's bars) can decode a larger one.
    source: str | Path | bytes | None = field(default=None, repr=False, compare=False)

    @property
    def scale(self) -> float:
        """Pixels of ``image`` per pixel of the original (1.0 when decoded in full)."""
        return self.image.width / self.original_width


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not hide the pixels
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _describe(source: ImageSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    return "<image bytes>"


def _open(source: ImageSource, name: str | None = None) -> Image.Image:
    where = _describe(source, name)
    if isinstance(source, bytes):
        if not source:
            raise ImageReadError(f"{where}: empty file, not an image")
        source = io.BytesIO(source)
    elif isinstance(source, str):
        source = Path(source)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 89.5 and 179 Mpx; big herbarium scans (about 68 Mpx) stay below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except FileNotFoundError:
        raise ImageReadError(f"{where}: no such file") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{where}: not an image Pillow can read (corrupt or unsupported format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{where}: image too large to decode safely ({exc})") from None
    except OSError as exc:
        raise ImageReadError(f"{where}: truncated or corrupt image ({exc})") from None
    # Pillow's own check reads a global that libraries may switch off (Ultralytics sets it to None).
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise ImageReadError(
            f"{where}: image too large to decode safely ({image.width} x {image.height} pixels, "
            f"over the {MAX_PIXELS} a scan may have)"
        )
    return image


def _as_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from whatever the scanner wrote: 16-bit grey, CMYK, alpha over white paper."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = pixels.max() or 1.0
        scaled = (pixels * (255.0 / (65535.0 if top > 255 else 255.0))).clip(0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("RGB")
    return image.convert("RGB")  # a copy even when already RGB: the source is closed after


def oriented_size(path: ImageSource, name: str | None = None) -> tuple[int, int]:
    """(width, height) as displayed, read from the header only."""
    with _open(path, name) as image:
        width, height = image.size
        if _orientation(image) in _TRANSPOSED_ORIENTATIONS:
            return height, width
        return width, height


def read_image(path: ImageSource, max_side: int | None = None, name: str | None = None) -> SpecimenImage:
    """Decode ``path`` (a file, or its bytes) to RGB, EXIF applied, at most ``max_side`` px on its long side.

    The returned ``original_width/height`` are those of the full-resolution oriented image, so
    predictions made on the reduced picture can be scaled back to the original frame. ``name``
    names the image in error messages when ``path`` is bytes.
    """
    where = _describe(path, name)
    if max_side is not None and max_side <= 0:
        raise ValueError(f"max_side: expected a positive number of pixels, got {max_side}")
    image = _open(path, name)
    try:
        full_w, full_h = image.size
        orientation = _orientation(image)
        if max_side is not None and image.format == "JPEG" and max(full_w, full_h) > max_side:
            scale = max_side / max(full_w, full_h)
            image.draft("RGB", (max(1, int(full_w * scale)), max(1, int(full_h * scale))))
        try:
            image.load()
        except OSError as exc:
            raise ImageReadError(f"{where}: truncated or corrupt image data ({exc})") from None
        except Image.DecompressionBombError as exc:
            raise ImageReadError(f"{where}: image too large to decode safely ({exc})") from None
        oriented = ImageOps.exif_transpose(image) if orientation != 1 else image
        rgb = _as_rgb(oriented)
        if max_side is not None and max(rgb.size) > max_side:
            scale = max_side / max(rgb.size)
            rgb = rgb.resize(
                (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BILINEAR
            )
    finally:
        image.close()
    if orientation in _TRANSPOSED_ORIENTATIONS:
        full_w, full_h = full_h, full_w
    kept = path if isinstance(path, str | Path | bytes) else None
    return SpecimenImage(image=rgb, original_width=full_w, original_height=full_h, source=kept)
