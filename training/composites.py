"""Copy-paste composites: real plants and real sheet elements pasted onto many papers, labels exact.

Dwibedi et al. 2017 ("Cut, Paste and Learn") and Ghiasi et al. 2021 ("Simple Copy-Paste"): with
few labelled real sheets, the real objects themselves are cut out (plants by their masks, elements
by their boxes) and pasted, scaled, turned and recoloured, onto backgrounds the real sheets lack:
generated sheets without plants (their elements exactly boxed), and bare papers from white to
yellowed brown, some photographed on a dark table with the sheet's edge in view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from catalog.sheetnet.spec import BOX_CLASSES
from herbarium.taxonomy import NONVEGETAL, ORGANS
from training.sheets import CLASS_INDEX, NO_TRAIT, BoolArray, FloatArray, IntArray, TrainingSheet, UInt8Array

MIN_PLANT_SHARE = 0.004  # of the sheet: smaller mask components are fragments, not plants to paste
NONVEGETAL_INDEXES = frozenset(CLASS_INDEX[c] for c in NONVEGETAL.classes)
ORGAN_INDEXES = frozenset(CLASS_INDEX[c] for c in ORGANS.classes)


@dataclass(frozen=True)
class Cutout:
    """A real object cut from a sheet: its pixels, where it is opaque, and the boxes inside it."""

    pixels: UInt8Array  # (h, w, 3)
    alpha: UInt8Array  # (h, w) 1 where the object is
    is_plant: bool
    boxes: FloatArray  # (N, 4) in the cutout's pixels
    classes: IntArray
    known: BoolArray  # organ classes boxed completely inside (plants); the element's own class


def plant_cutouts(sheets: Sequence[TrainingSheet]) -> list[Cutout]:
    """Each sizeable connected plant on sheets with a known mask, with the organ boxes it holds."""
    cutouts: list[Cutout] = []
    for sheet in sheets:
        if sheet.plant is None:
            continue
        # Close small gaps so a plant with a broken stem stays one piece.
        parts, _ = ndimage.label(ndimage.binary_closing(sheet.plant > 0, iterations=2))
        least = MIN_PLANT_SHARE * sheet.plant.size
        for k, where in enumerate(ndimage.find_objects(parts), start=1):
            if where is None:
                continue
            alpha = ((parts[where] == k) & (sheet.plant[where] > 0)).astype(np.uint8)
            if alpha.sum() < least:
                continue
            y0, x0 = where[0].start, where[1].start
            inside = _boxes_within(sheet.boxes, (x0, y0, where[1].stop, where[0].stop))
            organs = np.array([i for i in inside if int(sheet.classes[i]) in ORGAN_INDEXES], dtype=np.int64)
            known = sheet.known & np.array([i in ORGAN_INDEXES for i in range(len(BOX_CLASSES))])
            boxes = sheet.boxes[organs] - np.array([x0, y0, x0, y0], np.float32) if len(organs) else _none()[0]
            classes = sheet.classes[organs] if len(organs) else _none()[1]
            cutouts.append(Cutout(sheet.image[where].copy(), alpha, True, boxes, classes, known))
    return cutouts


def element_cutouts(sheets: Sequence[TrainingSheet], origins: Sequence[str] = ("real",)) -> list[Cutout]:
    """Every non-vegetal element boxed on sheets of ``origins``, cut out by its box."""
    cutouts: list[Cutout] = []
    for sheet in sheets:
        if sheet.origin not in origins:
            continue
        height, width = sheet.image.shape[:2]
        for box, cls in zip(sheet.boxes, sheet.classes, strict=True):
            if int(cls) not in NONVEGETAL_INDEXES:
                continue
            x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
            x1, y1 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
            if x1 - x0 < 3 or y1 - y0 < 3:
                continue
            known = np.zeros(len(BOX_CLASSES), dtype=bool)
            known[int(cls)] = True
            own = np.array([[0, 0, x1 - x0, y1 - y0]], np.float32)
            pixels = sheet.image[y0:y1, x0:x1].copy()
            cutouts.append(Cutout(pixels, np.ones(pixels.shape[:2], np.uint8), False, own, np.array([cls]), known))
    return cutouts


def _none() -> tuple[FloatArray, IntArray]:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)


def _boxes_within(boxes: FloatArray, region: tuple[int, int, int, int], share: float = 0.7) -> list[int]:
    """Boxes with at least ``share`` of their area inside ``region``."""
    x0, y0, x1, y1 = region
    out: list[int] = []
    for i, (bx0, by0, bx1, by1) in enumerate(boxes):
        w = max(0.0, min(bx1, x1) - max(bx0, x0))
        h = max(0.0, min(by1, y1) - max(by0, y0))
        area = max(1e-6, (bx1 - bx0) * (by1 - by0))
        if w * h / area >= share:
            out.append(i)
    return out


def bare_paper(rng: np.random.Generator, size: tuple[int, int]) -> UInt8Array:
    """A paper from bright white to yellowed brown with soft blotches; sometimes on a dark table, edge in view."""
    width, height = size
    tone = rng.choice(["white", "cream", "yellowed", "brown", "grey"], p=[0.25, 0.3, 0.2, 0.15, 0.1])
    base = {
        "white": (246, 245, 242),
        "cream": (240, 234, 218),
        "yellowed": (232, 218, 184),
        "brown": (214, 190, 150),
        "grey": (214, 214, 210),
    }[str(tone)]
    colour = np.array(base, np.float32) + rng.normal(0, 5, 3)
    blotch = ndimage.zoom(rng.normal(0, 1, (6, 5)), (height / 6, width / 5), order=1)[:height, :width]
    image = colour[None, None, :] + blotch[..., None] * rng.uniform(2, 9) * np.array([1.0, 1.0, 1.3])
    image += rng.normal(0, rng.uniform(1, 3.5), (height, width, 1))
    if rng.random() < 0.2:  # photographed: the sheet inset on a darker table
        table = np.array([rng.uniform(30, 120)] * 3, np.float32) + rng.normal(0, 6, 3)
        inset = [int(rng.uniform(0.01, 0.08) * s) for s in (width, height, width, height)]
        framed = np.empty_like(image)
        framed[:] = table
        framed[inset[1] : height - inset[3], inset[0] : width - inset[2]] = image[
            inset[1] : height - inset[3], inset[0] : width - inset[2]
        ]
        image = framed
    return np.asarray(image.clip(0, 255), np.uint8)


def _transformed(cutout: Cutout, rng: np.random.Generator, scale: float) -> Cutout:
    """The cutout scaled, maybe mirrored or turned by quarter turns (boxes follow), its colour jittered."""
    pixels, alpha, boxes = cutout.pixels, cutout.alpha, cutout.boxes.copy()
    h, w = alpha.shape
    nh, nw = max(2, round(h * scale)), max(2, round(w * scale))
    pixels = np.asarray(Image.fromarray(pixels).resize((nw, nh), Image.Resampling.BILINEAR))
    alpha = (np.asarray(Image.fromarray(alpha * 255).resize((nw, nh), Image.Resampling.BILINEAR)) > 127).astype(
        np.uint8
    )
    boxes = boxes * np.array([nw / w, nh / h, nw / w, nh / h], np.float32)
    if rng.random() < 0.5:
        pixels, alpha = pixels[:, ::-1], alpha[:, ::-1]
        boxes = np.stack([nw - boxes[:, 2], boxes[:, 1], nw - boxes[:, 0], boxes[:, 3]], 1) if len(boxes) else boxes
    turns = int(rng.integers(4)) if cutout.is_plant else (2 * int(rng.random() < 0.1))
    for _ in range(turns):  # a quarter turn anticlockwise: (x, y) -> (y, width - x)
        width_now = alpha.shape[1]
        pixels, alpha = np.rot90(pixels), np.rot90(alpha)
        if len(boxes):
            boxes = np.stack([boxes[:, 1], width_now - boxes[:, 2], boxes[:, 3], width_now - boxes[:, 0]], 1)
    if cutout.is_plant:  # dried plants run from green to brown and black
        pixels = _recoloured(pixels, rng)
    return Cutout(
        np.ascontiguousarray(pixels), np.ascontiguousarray(alpha.astype(np.uint8)), cutout.is_plant,
        boxes.astype(np.float32), cutout.classes, cutout.known,
    )  # fmt: skip


def _recoloured(pixels: UInt8Array, rng: np.random.Generator) -> UInt8Array:
    values = pixels.astype(np.float32)
    grey = values.mean(axis=2, keepdims=True)
    values = grey + (values - grey) * rng.uniform(0.6, 1.3)
    shift = np.array([rng.uniform(-10, 18), rng.uniform(-10, 8), rng.uniform(-18, 5)])
    values = values * rng.uniform(0.8, 1.15) + shift
    return np.asarray(values.clip(0, 255), np.uint8)


def _overlap(region: tuple[int, int, int, int], taken: Sequence[tuple[float, ...]]) -> bool:
    x0, y0, x1, y1 = region
    return any(min(x1, t[2]) > max(x0, t[0]) and min(y1, t[3]) > max(y0, t[1]) for t in taken)


def compose(
    background: TrainingSheet,
    plants: Sequence[Cutout],
    elements: Sequence[Cutout],
    rng: np.random.Generator,
    name: str,
    plant_count: tuple[int, int] = (1, 3),
    element_count: tuple[int, int] = (1, 5),
) -> TrainingSheet:
    """Real plants and elements pasted onto ``background`` (a sheet whose every class is known, or bare paper).

    Elements go where no element is; plants go anywhere on the paper and may cover elements (the covered
    part leaves the element's box when most of it is hidden). A class stays known only where every
    pasted object knows it.
    """
    image = background.image.copy()
    height, width = image.shape[:2]
    plant = background.plant.copy() if background.plant is not None else np.zeros((height, width), np.uint8)
    boxes = [tuple(float(v) for v in b) for b in background.boxes]
    classes = [int(c) for c in background.classes]
    known = background.known.copy()
    taken = [b for b, c in zip(boxes, classes, strict=True) if c in NONVEGETAL_INDEXES]

    for _ in range(rng.integers(element_count[0], element_count[1] + 1) if elements else 0):
        source = elements[int(rng.integers(len(elements)))]
        piece = _transformed(source, rng, float(rng.uniform(0.7, 1.3)))
        h, w = piece.alpha.shape
        if w >= width or h >= height:
            continue
        for _attempt in range(8):
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            if not _overlap((x, y, x + w, y + h), taken):
                image[y : y + h, x : x + w] = piece.pixels
                plant[y : y + h, x : x + w] = 0
                boxes.append((x, y, x + w, y + h))
                classes.append(int(piece.classes[0]))
                taken.append((x, y, x + w, y + h))
                break

    hidden = np.zeros((height, width), bool)
    for _ in range(int(rng.integers(plant_count[0], plant_count[1] + 1)) if plants else 0):
        source = plants[int(rng.integers(len(plants)))]
        longest = max(source.alpha.shape)
        scale = float(rng.uniform(0.5, 1.0)) * min(1.0, 0.9 * max(width, height) / longest)
        piece = _transformed(source, rng, scale)
        h, w = piece.alpha.shape
        if w >= width or h >= height:
            continue
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        region = image[y : y + h, x : x + w]
        where = piece.alpha > 0
        region[where] = piece.pixels[where]
        plant[y : y + h, x : x + w][where] = 1
        hidden[y : y + h, x : x + w] |= where
        for box, cls in zip(piece.boxes, piece.classes, strict=True):
            boxes.append((box[0] + x, box[1] + y, box[2] + x, box[3] + y))
            classes.append(int(cls))
        organ_mask = np.array([i in ORGAN_INDEXES for i in range(len(BOX_CLASSES))])
        known &= ~organ_mask | piece.known  # organs known only where every pasted plant knows them

    kept = [i for i, (b, c) in enumerate(zip(boxes, classes, strict=True)) if c not in NONVEGETAL_INDEXES or
            _visible_share(hidden, b) >= 0.5]  # fmt: skip
    box_array = np.asarray([boxes[i] for i in kept], np.float32).reshape(-1, 4)
    class_array = np.asarray([classes[i] for i in kept], np.int64)
    return TrainingSheet(name, "composite", image, plant, box_array, class_array, known, NO_TRAIT)


def _visible_share(hidden: BoolArray, box: tuple[float, ...]) -> float:
    x0, y0, x1, y1 = (round(v) for v in box)
    region = hidden[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
    return 1.0 - float(region.mean()) if region.size else 0.0


def paper_sheet(rng: np.random.Generator, size: tuple[int, int], name: str) -> TrainingSheet:
    """A bare paper as a composite's background: no plant, no element, every class known (absent)."""
    image = bare_paper(rng, size)
    known = np.ones(len(BOX_CLASSES), dtype=bool)
    empty = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    return TrainingSheet(name, "composite", image, np.zeros(image.shape[:2], np.uint8), *empty, known, NO_TRAIT)
