"""The box decoder's size bias, measured on real sheets the network trained on, and taken out when serving.

A few CPU minutes of training leave the decoder's distances biased per class: on the real sheets of
bench/real_sheets.py its label boxes came out 0.85 as wide and 0.77 as high as the labels, on the
sheets it trained on and on those it never saw alike. Each class's factors are the inverse of the
median ratio (predicted / true width and height) over its matched boxes on the training sheets; they
go into the spec (``box_scales``) and the runtime scales every decoded box about its centre.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

from catalog.sheetnet.runtime import SheetNetRunner
from catalog.sheetnet.spec import BOX_CLASSES, BOX_SCALE_RANGE, BOX_TASK_CHANNELS
from herbarium.real_sheets import RealSheet
from training.evaluation import predict_sheet
from training.metrics import SheetBoxes, box_iou
from training.sheets import TrainingSheet

MIN_MATCHES = 5  # a class's factors need this many matched boxes; others stay unscaled
MATCH_IOU = 0.3  # a true box is matched by the best-overlapping prediction of its class, at this IoU or more
MATCH_SCORE = 0.25  # ... among predictions scoring this much (the backends' lowest display threshold)


def measure_box_scales(
    runner: SheetNetRunner,
    sheets: Sequence[RealSheet],
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, tuple[float, float]]:
    """Per box class with MIN_MATCHES matches on ``sheets``' boxes: the (width, height) factors that undo the bias."""
    ratios: list[tuple[int, float, float]] = []
    boxed = [sheet for sheet in sheets if sheet.boxes is not None]
    for done, sheet in enumerate(boxed, start=1):
        assert sheet.boxes is not None
        truth = [b for b in sheet.boxes.boxes if b.label in BOX_CLASSES and b.width > 0 and b.height > 0]
        true_boxes = np.asarray([[b.x, b.y, b.x + b.width, b.y + b.height] for b in truth], np.float32).reshape(-1, 4)
        true_classes = np.asarray([BOX_CLASSES.index(b.label) for b in truth], np.int64)
        ratios += _size_ratios(predict_sheet(runner, sheet, plant=False).boxes, true_boxes, true_classes)
        if progress is not None:
            progress(done, len(boxed))
    return _factors(ratios)


def measure_box_scales_on_training_sheets(
    runner: SheetNetRunner, sheets: Sequence[TrainingSheet], classes: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """:func:`measure_box_scales` on sheets at the working size (reviewed sheets in retraining), for ``classes``."""
    wanted = [BOX_CLASSES.index(name) for name in classes]
    ratios: list[tuple[int, float, float]] = []
    for sheet in sheets:
        result = runner.run(Image.fromarray(sheet.image))
        parts = []
        for task, channels in BOX_TASK_CHANNELS.items():
            xyxy, found, scores = result.boxes(task, MATCH_SCORE)
            parts.append((xyxy, np.asarray(channels, np.int64)[found], scores))
        predicted = SheetBoxes(
            np.concatenate([p[0] for p in parts]).reshape(-1, 4),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )
        known = np.isin(sheet.classes, wanted) & sheet.known[sheet.classes]
        ratios += _size_ratios(predicted, sheet.boxes[known], sheet.classes[known])
    return _factors(ratios)


def _size_ratios(
    predicted: SheetBoxes, true_boxes: npt.NDArray[np.float32], true_classes: npt.NDArray[np.int64]
) -> list[tuple[int, float, float]]:
    """(class, predicted / true width, predicted / true height) for each true box its best prediction matches."""
    assert predicted.scores is not None
    ratios: list[tuple[int, float, float]] = []
    for true_box, cls in zip(true_boxes, true_classes, strict=True):
        same = (predicted.classes == cls) & (predicted.scores >= MATCH_SCORE)
        width, height = float(true_box[2] - true_box[0]), float(true_box[3] - true_box[1])
        if not same.any() or width <= 0 or height <= 0:
            continue
        candidates = predicted.boxes[same]
        overlaps = box_iou(true_box[None, :].astype(np.float32), candidates)[0]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= MATCH_IOU:
            x0, y0, x1, y1 = candidates[best]
            ratios.append((int(cls), float(x1 - x0) / width, float(y1 - y0) / height))
    return ratios


def _factors(ratios: Sequence[tuple[int, float, float]]) -> dict[str, tuple[float, float]]:
    low, high = BOX_SCALE_RANGE  # clipped: a larger correction is a broken decoder, not a bias
    scales: dict[str, tuple[float, float]] = {}
    for index, name in enumerate(BOX_CLASSES):
        pairs = [(w, h) for cls, w, h in ratios if cls == index]
        if len(pairs) >= MIN_MATCHES:
            width, height = np.median(np.asarray(pairs), axis=0)
            scales[name] = (float(np.clip(1 / width, low, high)), float(np.clip(1 / height, low, high)))
    return scales
