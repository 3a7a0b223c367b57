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

from catalog.sheetnet.runtime import SheetNetRunner
from catalog.sheetnet.spec import BOX_CLASSES
from herbarium.real_sheets import RealSheet
from training.evaluation import predict_sheet
from training.metrics import box_iou

MIN_MATCHES = 5  # a class's factors need this many matched boxes; others stay unscaled
MATCH_IOU = 0.3  # a true box is matched by the best-overlapping prediction of its class, at this IoU or more
MATCH_SCORE = 0.25  # ... among predictions scoring this much (the backends' lowest display threshold)
FACTOR_RANGE = (0.5, 2.0)  # a larger correction is a broken decoder, not a bias: clipped


def measure_box_scales(
    runner: SheetNetRunner,
    sheets: Sequence[RealSheet],
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, tuple[float, float]]:
    """Per box class with MIN_MATCHES matches on ``sheets``' boxes: the (width, height) factors that undo the bias."""
    ratios: dict[str, list[tuple[float, float]]] = {name: [] for name in BOX_CLASSES}
    boxed = [sheet for sheet in sheets if sheet.boxes is not None]
    for done, sheet in enumerate(boxed, start=1):
        assert sheet.boxes is not None
        predicted = predict_sheet(runner, sheet, plant=False)
        assert predicted.boxes.scores is not None
        for truth in sheet.boxes.boxes:
            if truth.label not in ratios or truth.width <= 0 or truth.height <= 0:
                continue
            same = (predicted.boxes.classes == BOX_CLASSES.index(truth.label)) & (predicted.boxes.scores >= MATCH_SCORE)
            if not same.any():
                continue
            true_box = np.asarray([[truth.x, truth.y, truth.x + truth.width, truth.y + truth.height]], np.float32)
            candidates = predicted.boxes.boxes[same]
            overlaps = box_iou(true_box, candidates)[0]
            best = int(np.argmax(overlaps))
            if overlaps[best] >= MATCH_IOU:
                x0, y0, x1, y1 = candidates[best]
                ratios[truth.label].append(((x1 - x0) / truth.width, (y1 - y0) / truth.height))
        if progress is not None:
            progress(done, len(boxed))
    low, high = FACTOR_RANGE
    scales: dict[str, tuple[float, float]] = {}
    for name, pairs in ratios.items():
        if len(pairs) >= MIN_MATCHES:
            width, height = np.median(np.asarray(pairs), axis=0)
            scales[name] = (float(np.clip(1 / width, low, high)), float(np.clip(1 / height, low, high)))
    return scales
