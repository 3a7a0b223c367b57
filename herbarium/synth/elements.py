"""Non-vegetal elements, each rendered on its own RGBA layer: label, barcode, envelope, colour chart, ruler, stamp.

A layer's alpha is exactly what lands on the sheet, so an element's box is its alpha's bounding
box moved to where it is pasted. Sizes are physical (centimetres on a 42 cm sheet) and scale
with the image.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from barcode import Code128
from PIL import Image, ImageDraw, ImageFont

from herbarium.synth.vocab import RGB, Record

# Code 128 wants ten modules of white on each side.
QUIET_MODULES = 10
MIN_MODULE_PX = 2

# Approximate sRGB of a 24-patch colour checker, row by row.
CHECKER: tuple[RGB, ...] = (
    (115, 82, 68), (194, 150, 130), (98, 122, 157), (87, 108, 67), (133, 128, 177), (103, 189, 170),
    (214, 126, 44), (80, 91, 166), (193, 90, 99), (94, 60, 108), (157, 188, 64), (224, 163, 46),
    (56, 61, 150), (70, 148, 73), (175, 54, 60), (231, 199, 31), (187, 86, 149), (8, 133, 161),
    (243, 243, 242), (200, 200, 200), (160, 160, 160), (122, 122, 121), (85, 85, 85), (52, 52, 52),
)  # fmt: skip
INKS: tuple[RGB, ...] = ((150, 30, 40), (30, 50, 140), (90, 40, 120), (20, 90, 70))


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in font at ``size`` px (cached: loading it parses the font each time)."""
    return ImageFont.load_default(size=max(4, size))


def _text_width(text: str, size: int) -> float:
    return float(font(size).getlength(text))


def _fit_size(text: str, size: int, width: float, minimum: int = 5) -> int:
    """The largest font size up to ``size`` at which ``text`` fits ``width`` px."""
    while size > minimum and _text_width(text, size) > width:
        size -= 1
    return size


def _jitter(rng: np.random.Generator, colour: RGB, amount: int) -> RGB:
    r, g, b = (int(c + rng.integers(-amount, amount + 1)) for c in colour)
    return (min(255, max(0, r)), min(255, max(0, g)), min(255, max(0, b)))


def _tilt(layer: Image.Image, rng: np.random.Generator, max_degrees: float, p: float) -> Image.Image:
    """Mounted by hand: a slight rotation, sometimes."""
    if rng.random() >= p:
        return layer
    angle = float(rng.uniform(-max_degrees, max_degrees))
    return layer.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)


def module_px(ppcm: float) -> int:
    """Pixels per barcode module: about 0.3 mm, never under 2 px so a decoder reads it from a JPEG."""
    return max(MIN_MODULE_PX, round(0.03 * ppcm))


def barcode_modules(text: str) -> str:
    """The Code 128 module pattern of ``text`` ('1' = bar), quiet zones excluded."""
    pattern: str = Code128(text).build()[0]
    return pattern


def barcode(rng: np.random.Generator, text: str, ppcm: float) -> Image.Image:
    """A white sticker: quiet zones, bars drawn module by module, the number printed beneath. Never tilted."""
    modules = barcode_modules(text)
    m = module_px(ppcm)
    width = (len(modules) + 2 * QUIET_MODULES) * m
    bar_height = max(round(1.1 * ppcm), 16 * m)
    size = max(8, round(0.32 * ppcm))
    top = 4 * m
    height = top + bar_height + m + round(size * 1.3) + 2 * m
    layer = Image.new("RGBA", (width, height), (*_jitter(rng, (250, 250, 247), 3), 255))
    draw = ImageDraw.Draw(layer)
    ink = (*_jitter(rng, (20, 20, 22), 8), 255)
    x = QUIET_MODULES * m
    start = None
    for i, bit in enumerate(modules + "0"):
        if bit == "1" and start is None:
            start = i
        elif bit == "0" and start is not None:
            draw.rectangle([x + start * m, top, x + i * m - 1, top + bar_height - 1], fill=ink)
            start = None
    text_size = _fit_size(text, size, width - 2 * m)
    text_x = (width - _text_width(text, text_size)) / 2
    draw.text((text_x, top + bar_height + m), text, font=font(text_size), fill=ink)
    return layer


def specimen_label(rng: np.random.Generator, record: Record, ppcm: float) -> Image.Image:
    """The printed label: institution, taxon, family, locality, habitat, collector, date."""
    width = round(rng.uniform(10.0, 14.0) * ppcm)
    height = round(rng.uniform(6.0, 8.5) * ppcm)
    layer = Image.new("RGBA", (width, height), (*_jitter(rng, (248, 246, 238), 5), 255))
    draw = ImageDraw.Draw(layer)
    ink = _jitter(rng, (30, 30, 45), 12)
    pad = round(0.35 * ppcm)
    if rng.random() < 0.7:
        line = max(1, round(0.04 * ppcm))
        draw.rectangle([pad // 2, pad // 2, width - 1 - pad // 2, height - 1 - pad // 2], outline=ink, width=line)
    lines = [
        (record.institution.name.upper(), 1.05, True),
        (f"Flora of {record.country}", 0.9, True),
        (record.taxon.scientific_name, 1.3, False),
        (f"Fam. {record.taxon.family}", 1.0, False),
        (f"Loc.: {record.locality}", 1.0, False),
        (f"Hab.: {record.habitat}", 1.0, False),
        (f"Leg. {record.recorded_by}    No. {record.collector_number}", 1.0, False),
        (f"Date: {record.printed_date}", 1.0, False),
    ]
    base = (height - 2 * pad) / (sum(f for _, f, _ in lines) * 1.3)
    y = float(pad + 0.15 * base)
    room = width - 2.4 * pad
    for text, factor, centred in lines:
        size = _fit_size(text, max(5, int(base * factor)), room)
        x = (width - _text_width(text, size)) / 2 if centred else 1.2 * pad
        draw.text((x, y), text, font=font(size), fill=ink)
        y += base * factor * 1.3
    return _tilt(layer, rng, 1.5, 0.5)


def envelope(rng: np.random.Generator, ppcm: float) -> Image.Image:
    """A fragment packet: paper rectangle, darker flap triangle, fold lines."""
    width = round(rng.uniform(7.0, 11.0) * ppcm)
    height = round(rng.uniform(5.0, 8.0) * ppcm)
    colour = _jitter(rng, (205, 178, 130) if rng.random() < 0.5 else (238, 234, 222), 8)
    layer = Image.new("RGBA", (width, height), (*colour, 255))
    draw = ImageDraw.Draw(layer)
    line = max(1, round(0.03 * ppcm))
    fold = tuple(int(c * 0.78) for c in colour)
    flap = tuple(int(c * 0.92) for c in colour)
    tip = height * rng.uniform(0.38, 0.55)
    draw.polygon([(0, 0), (width - 1, 0), (width / 2, tip)], fill=flap, outline=fold)
    draw.line([(0, height - 1), (width * 0.5, height * 0.58)], fill=fold, width=line)
    draw.line([(width - 1, height - 1), (width * 0.5, height * 0.58)], fill=fold, width=line)
    draw.rectangle([0, 0, width - 1, height - 1], outline=fold, width=line)
    if rng.random() < 0.6:
        size = max(5, round(0.3 * ppcm))
        text = "Fragment packet"
        size = _fit_size(text, size, width * 0.8)
        draw.text(((width - _text_width(text, size)) / 2, height * 0.7), text, font=font(size), fill=fold)
    return _tilt(layer, rng, 2.0, 0.5)


def colour_chart(rng: np.random.Generator, ppcm: float) -> Image.Image:
    """A grid of colour and grey patches on a black, grey or white backing."""
    rows, cols = [(1, 8), (2, 6), (2, 8), (3, 6), (4, 6)][int(rng.integers(5))]
    patch = min(rng.uniform(1.0, 1.5) * ppcm, 4.4 * ppcm / rows)
    border = max(2, round(0.18 * patch))
    patch_px = max(4, round(patch))
    width = cols * patch_px + (cols + 1) * border
    height = rows * patch_px + (rows + 1) * border
    backing = [(25, 25, 25), (128, 128, 126), (240, 240, 236)][int(rng.integers(3))]
    layer = Image.new("RGBA", (width, height), (*backing, 255))
    draw = ImageDraw.Draw(layer)
    if rows * cols == len(CHECKER):
        colours = list(CHECKER)
    else:
        picks = np.sort(rng.choice(len(CHECKER), size=rows * cols, replace=False))
        colours = [CHECKER[int(i)] for i in picks]
    for k, colour in enumerate(colours):
        r, c = divmod(k, cols)
        x = border + c * (patch_px + border)
        y = border + r * (patch_px + border)
        draw.rectangle([x, y, x + patch_px - 1, y + patch_px - 1], fill=_jitter(rng, colour, 4))
    return layer


def ruler(rng: np.random.Generator, ppcm: float, shrink: float = 1.0) -> Image.Image:
    """A scale bar in true centimetres of the sheet: mm ticks where 3 px apart or more, numbers per cm.

    ``shrink`` shortens it (fewer centimetres) where room is short; it never changes the scale.
    """
    length_cm = max(3, int(int(rng.integers(10, 21)) * shrink))
    height = round(rng.uniform(1.4, 2.0) * ppcm)
    pad = round(0.4 * ppcm)
    width = round(length_cm * ppcm) + 2 * pad
    colour = [(246, 244, 236), (236, 210, 120), (214, 184, 140)][int(rng.integers(3))]
    layer = Image.new("RGBA", (width, height), (*_jitter(rng, colour, 5), 255))
    draw = ImageDraw.Draw(layer)
    ink = _jitter(rng, (25, 25, 25), 10)
    line = max(1, round(0.025 * ppcm))
    draw.rectangle([0, 0, width - 1, height - 1], outline=ink, width=line)
    size = max(5, round(0.32 * height))
    step = 10 if ppcm / 10 >= 3 else (2 if ppcm / 2 >= 3 else 1)
    for k in range(length_cm * step + 1):
        x = round(pad + k * ppcm / step)
        major = k % step == 0
        half = step > 1 and k % (step // 2) == 0 and step % 2 == 0
        tick = height * (0.42 if major else 0.3 if half else 0.18)
        draw.line([(x, 0), (x, tick)], fill=ink, width=line)
        if major:
            text = str(k // step)
            draw.text((x - _text_width(text, size) / 2, tick + 0.05 * height), text, font=font(size), fill=ink)
    unit_size = max(5, round(0.22 * height))
    draw.text((width - pad * 0.9 - _text_width("cm", unit_size), height * 0.68), "cm", font=font(unit_size), fill=ink)
    return layer


def stamp(rng: np.random.Generator, record: Record, ppcm: float) -> Image.Image:
    """An institution stamp: translucent ink, double ring, code and words, at any angle."""
    diameter = round(rng.uniform(2.4, 3.6) * ppcm)
    layer = Image.new("RGBA", (diameter, diameter), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    ink = (*_jitter(rng, INKS[int(rng.integers(len(INKS)))], 15), int(rng.integers(150, 225)))
    ring = max(1, round(0.05 * diameter))
    draw.ellipse([0, 0, diameter - 1, diameter - 1], outline=ink, width=ring)
    inner = round(0.12 * diameter)
    draw.ellipse([inner, inner, diameter - 1 - inner, diameter - 1 - inner], outline=ink, width=max(1, ring // 2))
    texts = [("HERBARIUM", 0.11), (record.institution.code, 0.3), (record.event_date[:4], 0.11)]
    y = diameter * 0.27
    for text, factor in texts:
        size = _fit_size(text, max(5, round(factor * diameter)), diameter * 0.62)
        draw.text(((diameter - _text_width(text, size)) / 2, y), text, font=font(size), fill=ink)
        y += factor * diameter * 1.25
    return layer.rotate(float(rng.uniform(-35, 35)), resample=Image.Resampling.BILINEAR, expand=True)
