"""Training crops and SheetNet's targets: scale, crop, turn, recolour, then heat maps, sizes and masks.

Boxes become FCOS-style targets at an eighth of the crop's resolution (Tian et al. 2019): the central
region of each box in its class's heat map, and the log distances from those cells to the box's edges.
Classes a sheet has not boxed completely are left out of its heat loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from PIL import Image

from catalog.sheetnet.spec import BOX_CLASSES, STRIDE_BOXES, STRIDE_PLANT
from training.sheets import FloatArray, IntArray, TrainingSheet, UInt8Array

MIN_VISIBLE = 0.9  # a box the crop cuts is a target if this share of it shows; else its class is ignored there


@dataclass(frozen=True)
class Augment:
    """How far crops vary: scale about the working size, quarter turns, colour."""

    scale: tuple[float, float] = (0.5, 1.25)
    turn_probability: float = 0.2  # photographed sheets come sideways
    flip_probability: float = 0.5
    colour: bool = True


@dataclass
class Crop:
    image: UInt8Array  # (S, S, 3)
    plant: UInt8Array | None  # (S, S)
    boxes: FloatArray  # objects shown (nearly) whole: targets
    classes: IntArray
    known: npt.NDArray[np.bool_]
    ignored: FloatArray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # objects the crop cuts
    ignored_classes: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))


def random_crop(sheet: TrainingSheet, size: int, rng: np.random.Generator, augment: Augment) -> Crop:
    """A ``size`` x ``size`` window of the sheet scaled by a random factor, turned, flipped and recoloured.

    A sheet scaled smaller than the window is padded with its own paper colour. An object the window
    cuts is not a target (its visible part would teach a wrong size): its class is ignored where it shows.
    """
    scale = float(rng.uniform(*augment.scale))
    width, height = sheet.size
    nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
    sx, sy = nw / width, nh / height
    image = np.asarray(Image.fromarray(sheet.image).resize((nw, nh), Image.Resampling.BILINEAR))
    plant = None
    if sheet.plant is not None:
        plant = np.asarray(Image.fromarray(sheet.plant * 255).resize((nw, nh), Image.Resampling.BILINEAR)) > 127
    # Where the window starts; negative when the scaled sheet is smaller (the sheet then lands at random in it).
    x = int(rng.integers(0, nw - size + 1)) if nw >= size else -int(rng.integers(0, size - nw + 1))
    y = int(rng.integers(0, nh - size + 1)) if nh >= size else -int(rng.integers(0, size - nh + 1))
    window: UInt8Array = np.empty((size, size, 3), np.uint8)
    window[:] = np.median(sheet.image[[0, -1]].reshape(-1, 3), axis=0).astype(np.uint8)
    plant_window: UInt8Array | None = np.zeros((size, size), np.uint8) if plant is not None else None
    src_x0, src_y0 = max(0, x), max(0, y)
    src_x1, src_y1 = min(nw, x + size), min(nh, y + size)
    dst_x0, dst_y0 = src_x0 - x, src_y0 - y
    rows, cols = slice(dst_y0, dst_y0 + src_y1 - src_y0), slice(dst_x0, dst_x0 + src_x1 - src_x0)
    window[rows, cols] = image[src_y0:src_y1, src_x0:src_x1]
    if plant is not None and plant_window is not None:
        plant_window[rows, cols] = plant[src_y0:src_y1, src_x0:src_x1]
    boxes = sheet.boxes * np.array([sx, sy, sx, sy], np.float32) - np.array([x, y, x, y], np.float32)
    boxes, classes, ignored, ignored_classes = split_by_visibility(boxes, sheet.classes, size)
    if rng.random() < augment.turn_probability:
        turns = int(rng.integers(1, 4))
        window, plant_window, boxes = _turned(window, plant_window, boxes, turns)
        ignored = _turned(window, None, ignored, turns, size_only=True)[2]
    if rng.random() < augment.flip_probability:
        window = window[:, ::-1]
        plant_window = plant_window[:, ::-1] if plant_window is not None else None
        boxes, ignored = _flipped(boxes, size), _flipped(ignored, size)
    if augment.colour:
        window = recoloured(window, rng)
    return Crop(
        np.ascontiguousarray(window), None if plant_window is None else np.ascontiguousarray(plant_window),
        boxes.astype(np.float32), classes, sheet.known.copy(), ignored.astype(np.float32), ignored_classes,
    )  # fmt: skip


def _flipped(boxes: FloatArray, size: int) -> FloatArray:
    if not len(boxes):
        return boxes
    return np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], 1)


def split_by_visibility(
    boxes: FloatArray, classes: IntArray, size: int
) -> tuple[FloatArray, IntArray, FloatArray, IntArray]:
    """(whole enough: targets, their classes, cut: ignored, their classes); boxes out of the window go."""
    if not len(boxes):
        empty = np.zeros((0, 4), np.float32)
        return empty, classes, empty, classes
    clipped = boxes.clip(0, size)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]).clip(0) * (clipped[:, 3] - clipped[:, 1]).clip(0)
    whole = visible >= MIN_VISIBLE * np.maximum(area, 1e-6)
    cut = ~whole & (visible > 0)
    return clipped[whole], classes[whole], clipped[cut], classes[cut]


def _turned(
    image: UInt8Array, plant: UInt8Array | None, boxes: FloatArray, turns: int, size_only: bool = False
) -> tuple[UInt8Array, UInt8Array | None, FloatArray]:
    size = image.shape[0]
    for _ in range(turns):  # a quarter turn anticlockwise: (x, y) -> (y, size - x)
        if not size_only:
            image = np.rot90(image)
            plant = np.rot90(plant) if plant is not None else None
        if len(boxes):
            boxes = np.stack([boxes[:, 1], size - boxes[:, 2], boxes[:, 3], size - boxes[:, 0]], 1)
    return image, plant, boxes


def recoloured(image: UInt8Array, rng: np.random.Generator) -> UInt8Array:
    """Brightness, contrast, saturation and a cast toward yellowed or brown paper, as real scans vary."""
    values = image.astype(np.float32)
    grey = values.mean(axis=2, keepdims=True)
    values = grey + (values - grey) * rng.uniform(0.6, 1.4)
    cast = np.array([0.0, rng.uniform(-18, 4), rng.uniform(-55, 6)], np.float32) * rng.uniform(0, 1)
    values = values * rng.uniform(0.78, 1.12) + rng.uniform(-22, 14) + cast
    return np.asarray(values.clip(0, 255), np.uint8)


CENTRE_SHARE = 0.5  # the central part of a box (this share of its width and height) is its positive region
MIN_DISTANCE = 0.25  # cells: log distances to box edges are floored here


@dataclass
class Targets:
    """A batch's targets, as numpy arrays ready for torch."""

    images: FloatArray  # (B, 3, S, S) in [-1, 1]
    plant: FloatArray  # (B, 1, S/2, S/2)
    plant_known: FloatArray  # (B,)
    heat: FloatArray  # (B, C, S/8, S/8): 1 in the central region of each box of class C
    heat_weight: FloatArray  # (B, C, S/8, S/8): 1 where the heat loss counts (class known, no cut object)
    distances: FloatArray  # (B, 4, S/8, S/8): log distances (cells) from each cell's centre to its box's edges
    distance_weight: FloatArray  # (B, 1, S/8, S/8): 1/n on the n cells of each object's central region
    objects: int  # objects in the batch


def central_region(x0: float, y0: float, x1: float, y1: float, cells: int) -> tuple[slice, slice]:
    """Rows and columns of the cells in a box's central region (at least the cell holding its centre)."""
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w, half_h = CENTRE_SHARE * (x1 - x0) / 2, CENTRE_SHARE * (y1 - y0) / 2
    col0, col1 = int(np.floor(cx - half_w)), int(np.ceil(cx + half_w))
    row0, row1 = int(np.floor(cy - half_h)), int(np.ceil(cy + half_h))
    col = min(cells - 1, max(0, int(cx)))
    row = min(cells - 1, max(0, int(cy)))
    return (
        slice(max(0, min(row0, row)), min(cells, max(row1, row + 1))),
        slice(max(0, min(col0, col)), min(cells, max(col1, col + 1))),
    )


def encode(crops: Sequence[Crop]) -> Targets:
    """Stack crops into network inputs and their targets (FCOS-style centre regions: Tian et al. 2019).

    Each box marks its central region in its class's heat map, and every cell of that region learns the
    distances to the box's four edges: dense supervision, which a few minutes of CPU can learn from (a
    single centre cell, as in CenterNet, cannot). Where regions overlap, the smaller box is drawn last.
    """
    size = crops[0].image.shape[0]
    cells = size // STRIDE_BOXES
    half = size // STRIDE_PLANT
    batch = len(crops)
    images = np.stack([c.image for c in crops]).astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0
    plant = np.zeros((batch, 1, half, half), np.float32)
    plant_known = np.zeros(batch, np.float32)
    heat = np.zeros((batch, len(BOX_CLASSES), cells, cells), np.float32)
    distances = np.zeros((batch, 4, cells, cells), np.float32)
    distance_weight = np.zeros((batch, 1, cells, cells), np.float32)
    centre = np.arange(cells, dtype=np.float32) + 0.5
    objects = 0
    for b, crop in enumerate(crops):
        if crop.plant is not None:
            small = Image.fromarray(crop.plant * 255).resize((half, half), Image.Resampling.BILINEAR)
            plant[b, 0] = np.asarray(small, np.float32) / 255.0
            plant_known[b] = 1.0
        boxes = crop.boxes / STRIDE_BOXES
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) if len(boxes) else np.zeros(0)
        for k in np.argsort(-areas):  # largest first: smaller boxes overwrite the cells they share
            x0, y0, x1, y1 = (float(v) for v in boxes[k])
            if x1 - x0 <= 0 or y1 - y0 <= 0:
                continue
            rows, cols = central_region(x0, y0, x1, y1, cells)
            heat[b, crop.classes[k], rows, cols] = 1.0
            count = (rows.stop - rows.start) * (cols.stop - cols.start)
            distance_weight[b, 0, rows, cols] = 1.0 / count
            ys, xs = centre[rows], centre[cols]
            for channel, value in enumerate((xs[None, :] - x0, ys[:, None] - y0, x1 - xs[None, :], y1 - ys[:, None])):
                distances[b, channel, rows, cols] = np.log(np.maximum(value, MIN_DISTANCE))
            objects += 1
    heat_weight = np.repeat(np.stack([c.known for c in crops]).astype(np.float32)[:, :, None, None], cells, 2)
    heat_weight = np.ascontiguousarray(np.repeat(heat_weight, cells, 3))
    for b, crop in enumerate(crops):
        for (x0, y0, x1, y1), cls in zip(crop.ignored / STRIDE_BOXES, crop.ignored_classes, strict=True):
            heat_weight[b, cls, int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = 0.0
    return Targets(images, plant, plant_known, heat, heat_weight, distances, distance_weight, objects)
