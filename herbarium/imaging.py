"""Reading specimen images: the one place that applies EXIF orientation and reduced decode.

Label coordinates everywhere in PlantAI are in the *oriented* frame (as a browser shows the
image). Big scans are decoded at reduced size when the caller only needs a smaller picture
(JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale for a fraction of the full cost).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

# EXIF orientations 5-8 swap width and height.
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION_TAG = 0x0112


class ImageReadError(ValueError):
    """An image that cannot be read; the message names the file and why."""


@dataclass(frozen=True)
class SpecimenImage:
    """An RGB picture of a specimen and the oriented size of the full-resolution original."""

    image: Image.Image
    original_width: int
    original_height: int

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


def _open(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image Pillow can read (corrupt or unsupported format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path}: image too large to decode safely ({exc})") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: truncated or corrupt image ({exc})") from None


def oriented_size(path: str | Path) -> tuple[int, int]:
    """(width, height) as displayed, read from the header only."""
    path = Path(path)
    with _open(path) as image:
        width, height = image.size
        if _orientation(image) in _TRANSPOSED_ORIENTATIONS:
            return height, width
        return width, height


def read_image(path: str | Path, max_side: int | None = None) -> SpecimenImage:
    """Decode ``path`` to RGB, EXIF orientation applied, at most ``max_side`` px on its long side.

    The returned ``original_width/height`` are those of the full-resolution oriented image, so
    predictions made on the reduced picture can be scaled back to the original frame.
    """
    path = Path(path)
    if max_side is not None and max_side <= 0:
        raise ValueError(f"max_side: expected a positive number of pixels, got {max_side}")
    image = _open(path)
    try:
        full_w, full_h = image.size
        orientation = _orientation(image)
        if max_side is not None and image.format == "JPEG" and max(full_w, full_h) > max_side:
            scale = max_side / max(full_w, full_h)
            image.draft("RGB", (max(1, int(full_w * scale)), max(1, int(full_h * scale))))
        try:
            image.load()
        except OSError as exc:
            raise ImageReadError(f"{path}: truncated or corrupt image data ({exc})") from None
        oriented = ImageOps.exif_transpose(image) if orientation != 1 else image
        rgb = oriented.convert("RGB")
        if max_side is not None and max(rgb.size) > max_side:
            scale = max_side / max(rgb.size)
            rgb = rgb.resize(
                (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BILINEAR
            )
    finally:
        image.close()
    if orientation in _TRANSPOSED_ORIENTATIONS:
        full_w, full_h = full_h, full_w
    return SpecimenImage(image=rgb, original_width=full_w, original_height=full_h)
