"""Mounting paper: cream colour with blotches, fibres and specks, sheet edges, then scan lighting and grain.

Everything full-resolution goes through Pillow's C code; numpy only works on small grids, which
keeps a 6900 x 9900 sheet cheap.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from herbarium.synth.layout import Rect

_GRAIN_TILE = 256


def _upsampled_noise(rng: np.random.Generator, shape: tuple[int, int], size: tuple[int, int]) -> Image.Image:
    """Smooth noise in [0, 255]: a small random grid resized bilinearly to ``size``."""
    grid = rng.normal(128.0, 40.0, shape).clip(0, 255).astype(np.uint8)
    return Image.fromarray(grid, "L").resize(size, Image.Resampling.BILINEAR)


def paper(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, Rect]:
    """A scanned sheet before anything is mounted: the image and the paper's rectangle within it."""
    # Colour field at 1/8 resolution: cream base plus two octaves of blotches.
    small = (max(8, width // 8), max(8, height // 8))
    # Bright enough that the scan gain (about 0.95) still leaves white or cream paper.
    red = rng.uniform(238, 251)
    # From near-white modern paper to cream and old yellowed paper.
    base = np.array([red, red - rng.uniform(2, 14), red - rng.uniform(6, 44)], dtype=np.float32)
    coarse = np.asarray(_upsampled_noise(rng, (6, 5), small), dtype=np.float32) - 128.0
    fine = np.asarray(_upsampled_noise(rng, (small[1] // 6 + 2, small[0] // 6 + 2), small), dtype=np.float32) - 128.0
    blotch = coarse * rng.uniform(0.03, 0.08) + fine * rng.uniform(0.01, 0.03)
    field = base[None, None, :] + blotch[:, :, None] * np.array([1.0, 1.0, 1.2], dtype=np.float32)
    image = Image.fromarray(field.clip(0, 255).astype(np.uint8), "RGB").resize(
        (width, height), Image.Resampling.BILINEAR
    )

    draw = ImageDraw.Draw(image)
    scale = height / 1024.0
    paper_rgb = tuple(int(c) for c in base)
    # Fibres: short bent strokes a little lighter or darker than the paper.
    n_fibres = int(min(4000, 120 + width * height / 6000))
    length = max(4.0, 10.0 * scale)
    starts = rng.uniform((0, 0), (width, height), size=(n_fibres, 2))
    angles = rng.uniform(0, np.pi, size=(n_fibres, 2))
    lengths = rng.uniform(0.4, 1.0, size=(n_fibres, 1)) * length
    shades = rng.integers(-14, 10, size=n_fibres)
    mids = starts + lengths * np.stack([np.cos(angles[:, 0]), np.sin(angles[:, 0])], axis=1)
    ends = mids + lengths * np.stack([np.cos(angles[:, 1]), np.sin(angles[:, 1])], axis=1) * 0.6
    fibre_width = max(1, round(scale * 0.6))
    for a, b, c, shade in zip(starts.round(), mids.round(), ends.round(), shades, strict=True):
        colour = tuple(min(255, max(0, v + int(shade))) for v in paper_rgb)
        draw.line([*a, *b, *c], fill=colour, width=fibre_width)
    # Specks: dust and foxing.
    for _ in range(int(rng.integers(8, 40))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        r = max(0.6, rng.uniform(0.4, 1.6) * scale)
        tone = int(rng.integers(60, 160))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(tone, tone - 10, tone - 30))

    # Sheet edges: the scanner bed shows along some sides.
    margins = [int(rng.uniform(0, 0.015) * width) if rng.random() < 0.35 else 0 for _ in range(4)]
    sheet = Rect(margins[0], margins[1], width - margins[2], height - margins[3])
    if any(margins):
        bed = (int(rng.integers(15, 60)),) * 3
        for x0, y0, x1, y1 in (
            (0, 0, sheet.x0, height),
            (0, 0, width, sheet.y0),
            (sheet.x1, 0, width, height),
            (0, sheet.y1, width, height),
        ):
            if x1 > x0 and y1 > y0:
                draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=bed)
        edge = tuple(int(c * 0.8) for c in paper_rgb)
        draw.rectangle([sheet.x0, sheet.y0, sheet.x1 - 1, sheet.y1 - 1], outline=edge, width=max(1, round(scale)))
    return image, sheet


def scan_finish(rng: np.random.Generator, image: Image.Image) -> Image.Image:
    """Scanner lighting (vignetting, a slight gradient) and grain; per-pixel only, so masks stay exact."""
    width, height = image.size
    ys, xs = np.mgrid[0:12, 0:9].astype(np.float32)
    r2 = ((xs - 4.0) / 4.0) ** 2 + ((ys - 5.5) / 5.5) ** 2
    light = 1.0 - rng.uniform(0.03, 0.09) * r2 / 2.0 - rng.uniform(-0.03, 0.03) * (ys / 11.0 - 0.5)
    # Headroom below 255 so that grain can lighten as well as darken.
    grid = (242.0 * light / light.max()).clip(0, 255).astype(np.uint8)
    lighting = Image.fromarray(grid, "L").resize((width, height), Image.Resampling.BILINEAR)
    # Grain: one random tile repeated; pasting it is far cheaper than drawing noise per pixel.
    tile = rng.normal(128.0, rng.uniform(2.0, 4.5), (_GRAIN_TILE, _GRAIN_TILE)).clip(0, 255).astype(np.uint8)
    tile_image = Image.fromarray(tile, "L")
    grain = Image.new("L", (width, height))
    for y in range(0, height, _GRAIN_TILE):
        for x in range(0, width, _GRAIN_TILE):
            grain.paste(tile_image, (x, y))
    # One greyscale gain applied to all three channels: a single full-size RGB operation.
    gain = ImageChops.add(lighting, grain, scale=1.0, offset=-128)
    return ImageChops.multiply(image, Image.merge("RGB", (gain, gain, gain)))
