"""Training SheetNet's box decoder alone, on encoder features computed once: many more steps for the same CPU.

After the whole network has trained on crops (:mod:`training.sheetnet_trainer`), its encoder is held
fixed and its features are computed once per sheet (and per variant: two scales, mirrored or not).
The box decoder then trains on windows cut from those features, aligned to the encoder's
stride-32 cells, at a fraction of a full step's cost: the box heads need many steps to learn where
objects end, the encoder and the mask do not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from catalog.sheetnet.network import SheetNet
from catalog.sheetnet.runtime import network_size
from training.cores import all_cores
from training.sheets import FloatArray, IntArray, TrainingSheet
from training.targets import Crop, encode, split_by_visibility

Progress = Callable[[int, int], None]
CELL = 32  # pixels per stride-32 feature cell: windows are cut on these


@dataclass(frozen=True)
class BoxDecoderTraining:
    steps: int = 1500
    batch: int = 8
    window_cells: int = 12  # stride-32 cells per side of a training window (384 px)
    scales: tuple[float, ...] = (0.8, 1.0)
    mirror: bool = True
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seconds: float | None = None  # a time budget: the schedule is shortened to fit it
    seed: int = 0


@dataclass(frozen=True)
class CachedSheet:
    """One sheet variant's encoder features (half precision) and its boxes in that variant's input pixels."""

    f8: torch.Tensor
    f16: torch.Tensor
    f32: torch.Tensor
    boxes: FloatArray
    classes: IntArray
    known: np.ndarray  # type: ignore[type-arg]


def cache_features(
    net: SheetNet, sheets: Sequence[TrainingSheet], settings: BoxDecoderTraining, progress: Progress | None = None
) -> list[CachedSheet]:
    """Encoder features of every sheet with known box classes, at each scale, mirrored too when asked."""
    from catalog.sheetnet.runtime import to_input

    usable = [s for s in sheets if s.known.any()]
    variants = [
        (s, scale, mirror)
        for s in usable
        for scale in settings.scales
        for mirror in (False, True)[: 1 + settings.mirror]
    ]
    cached: list[CachedSheet] = []
    net.eval()
    with torch.inference_mode():
        for k, (sheet, scale, mirror) in enumerate(variants):
            width, height = sheet.size
            size = network_size(
                round(width * scale), round(height * scale), round(max(width, height) * scale / 32) * 32
            )
            picture = Image.fromarray(sheet.image).resize(size, Image.Resampling.BILINEAR)
            boxes = sheet.boxes * np.array([size[0] / width, size[1] / height] * 2, np.float32)
            if mirror:
                picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                boxes = np.stack([size[0] - boxes[:, 2], boxes[:, 1], size[0] - boxes[:, 0], boxes[:, 3]], 1)
            features = net.encode(torch.from_numpy(to_input(picture, max(size))))
            cached.append(
                CachedSheet(
                    features.f8[0].half(), features.f16[0].half(), features.f32[0].half(),
                    boxes.astype(np.float32).reshape(-1, 4), sheet.classes, sheet.known,
                )
            )  # fmt: skip
            if progress is not None:
                progress(k + 1, len(variants))
    return cached


def _window(sheet: CachedSheet, cells: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...] | None:
    rows, cols = sheet.f32.shape[1:]
    if rows < cells or cols < cells:
        return None
    y, x = int(rng.integers(0, rows - cells + 1)), int(rng.integers(0, cols - cells + 1))
    f32 = sheet.f32[:, y : y + cells, x : x + cells]
    f16 = sheet.f16[:, 2 * y : 2 * (y + cells), 2 * x : 2 * (x + cells)]
    f8 = sheet.f8[:, 4 * y : 4 * (y + cells), 4 * x : 4 * (x + cells)]
    return f8, f16, f32, torch.tensor([x * CELL, y * CELL])


def train_box_decoder(
    net: SheetNet, cached: Sequence[CachedSheet], settings: BoxDecoderTraining, progress: Progress | None = None
) -> dict[str, float]:
    """Train ``net.boxes`` on windows of cached features; returns the last tenth's mean losses."""
    from training.sheetnet_trainer import distance_loss, focal_loss, learning_rate_factor

    if not cached:
        return {}
    rng = np.random.default_rng(settings.seed)
    decoder = net.boxes
    decoder.train()
    optimiser = torch.optim.AdamW(decoder.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    # Windows no larger than the smallest sheet's features (small input sides, tests): else none would fit.
    cells = min(settings.window_cells, *(min(sheet.f32.shape[1:]) for sheet in cached))
    size = cells * CELL
    blank = np.zeros((size, size, 3), np.uint8)
    total, step, started = settings.steps, 0, time.perf_counter()
    history: list[tuple[float, float]] = []
    with all_cores():
        while step < total:
            for group in optimiser.param_groups:
                group["lr"] = settings.learning_rate * learning_rate_factor(step, total, 0.05)
            features: list[tuple[torch.Tensor, ...]] = []
            crops: list[Crop] = []
            while len(crops) < settings.batch:
                sheet = cached[int(rng.integers(len(cached)))]
                window = _window(sheet, cells, rng)
                if window is None:
                    continue
                offset = window[3].numpy().astype(np.float32)
                boxes = sheet.boxes - np.concatenate([offset, offset])
                kept, classes, ignored, ignored_classes = split_by_visibility(boxes, sheet.classes, size)
                crops.append(Crop(blank, None, kept, classes, sheet.known, ignored, ignored_classes))
                features.append(window[:3])
            targets = encode(crops)
            f8, f16, f32 = (torch.stack([f[i] for f in features]).float() for i in range(3))
            heat, regression = decoder(f8, f16, f32)
            heat_loss = focal_loss(heat, torch.from_numpy(targets.heat), torch.from_numpy(targets.heat_weight))
            regression_loss = distance_loss(
                regression, torch.from_numpy(targets.distances), torch.from_numpy(targets.distance_weight),
                targets.objects,
            )  # fmt: skip
            loss = heat_loss + regression_loss
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            history.append((float(heat_loss.detach()), float(regression_loss.detach())))
            step += 1
            if settings.seconds is not None and step == 5:
                per_step = (time.perf_counter() - started) / step
                total = max(step + 1, min(settings.steps, int(settings.seconds / per_step)))
            if progress is not None:
                progress(step, total)
    decoder.eval()
    tail = history[-max(1, len(history) // 10) :]
    return {"heat": float(np.mean([h for h, _ in tail])), "regression": float(np.mean([r for _, r in tail]))}
