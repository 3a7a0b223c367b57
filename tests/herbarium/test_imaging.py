from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from herbarium.imaging import MAX_PIXELS, ImageReadError, oriented_size, read_image


def _marked_jpeg(path: Path, width: int, height: int, orientation: int = 1) -> None:
    """A grey image with a red block in its stored top-left corner."""
    pixels = np.full((height, width, 3), 128, dtype=np.uint8)
    pixels[: height // 4, : width // 4] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif)


def _is_red(pixel: tuple[int, int, int]) -> bool:
    return pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60


def test_exif_rotation_is_applied_to_pixels_and_size(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    _marked_jpeg(path, width=200, height=100, orientation=6)  # displayed rotated 90° clockwise
    assert oriented_size(path) == (100, 200)
    loaded = read_image(path)
    assert loaded.image.size == (100, 200)
    assert (loaded.original_width, loaded.original_height) == (100, 200)
    # The stored top-left corner is shown at the top-right.
    assert _is_red(loaded.image.getpixel((95, 5)))  # type: ignore[arg-type]
    assert not _is_red(loaded.image.getpixel((5, 5)))  # type: ignore[arg-type]


def test_upright_image_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "upright.jpg"
    _marked_jpeg(path, width=200, height=100)
    loaded = read_image(path)
    assert loaded.image.size == (200, 100)
    assert _is_red(loaded.image.getpixel((5, 5)))  # type: ignore[arg-type]


def test_reduced_decode_keeps_the_original_frame(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    _marked_jpeg(path, width=3000, height=4000, orientation=8)
    loaded = read_image(path, max_side=1000)
    assert max(loaded.image.size) == 1000
    assert (loaded.original_width, loaded.original_height) == (4000, 3000)
    assert loaded.scale == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "not an image"), (b"this is not a jpeg", "not an image"), (None, "no such file")],
)
def test_unreadable_files_raise_a_clear_error(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "broken.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=rf"broken\.jpg: {reason}"):
        read_image(path)


def test_truncated_jpeg_raises_a_clear_error(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    _marked_jpeg(good, width=400, height=300)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:600])
    with pytest.raises(ImageReadError, match=r"truncated\.jpg: truncated or corrupt"):
        read_image(truncated)


def test_sixteen_bit_greyscale_tiff_becomes_eight_bit_rgb(tmp_path: Path) -> None:
    path = tmp_path / "master.tif"
    pixels = np.zeros((40, 30), dtype=np.uint16)
    pixels[:, 15:] = 65535
    Image.fromarray(pixels).save(path)
    loaded = read_image(path)
    assert loaded.image.mode == "RGB"
    assert loaded.image.getpixel((2, 2)) == (0, 0, 0)
    assert loaded.image.getpixel((25, 2)) == (255, 255, 255)


def test_cmyk_and_transparent_images_become_rgb_on_white(tmp_path: Path) -> None:
    cmyk = tmp_path / "print.jpg"
    Image.new("CMYK", (20, 10), (0, 0, 0, 0)).save(cmyk)
    assert read_image(cmyk).image.getpixel((5, 5)) == pytest.approx((255, 255, 255), abs=2)
    transparent = tmp_path / "cutout.png"
    Image.new("RGBA", (20, 10), (0, 0, 0, 0)).save(transparent)
    assert read_image(transparent).image.getpixel((5, 5)) == (255, 255, 255)


def test_bytes_are_read_like_files_and_named_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "sheet.jpg"
    _marked_jpeg(path, width=80, height=60, orientation=6)
    loaded = read_image(path.read_bytes(), max_side=40, name="task 7")
    assert (loaded.original_width, loaded.original_height) == (60, 80)
    with pytest.raises(ImageReadError, match="task 7: not an image"):
        read_image(b"garbage", name="task 7")


def _png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header says ``width`` x ``height`` RGB (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("pillow_limit", [Image.MAX_IMAGE_PIXELS, None])  # None: as Ultralytics leaves it
def test_a_header_claiming_billions_of_pixels_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pillow_limit: int | None
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(50_000, 50_000))  # 2.5 Gpx: over twice Pillow's default limit (89.5 Mpx)
    assert MAX_PIXELS < 50_000 * 50_000
    with pytest.raises(ImageReadError, match=r"bomb\.png: image too large to decode safely"):
        read_image(path, max_side=1024)
    with pytest.raises(ImageReadError, match=r"bomb\.png: image too large to decode safely"):
        oriented_size(path)
    with pytest.raises(ImageReadError, match=r"task 9: image too large to decode safely"):
        read_image(path.read_bytes(), name="task 9")


def test_pillows_bomb_limit_is_what_refuses_an_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sheet.jpg"
    _marked_jpeg(path, width=200, height=100)
    assert read_image(path).image.size == (200, 100)
    # Pillow refuses images of more than twice its limit (between once and twice it only warns).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200 * 100 // 2 - 1)
    with pytest.raises(ImageReadError, match=r"sheet\.jpg: image too large to decode safely"):
        read_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200 * 100 // 2)  # exactly twice: a warning, held back
    assert read_image(path).image.size == (200, 100)
