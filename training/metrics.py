"""Scores on sheets: plant-mask IoU, detection average precision (COCO's own evaluator), accuracy.

Detection ground truth on real sheets is partial: a sheet may box some classes completely and not
others. A class counts on a sheet only when it is boxed completely there (its ``known`` classes):
both its ground truth and the predictions of that class on that sheet are left out otherwise.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.sheetnet.runtime import pairwise_iou

BoolMask = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def plant_iou(predicted: BoolMask, truth: BoolMask) -> float:
    """Intersection over union of two plant masks; 1.0 when both are empty."""
    union = int(np.logical_or(predicted, truth).sum())
    return 1.0 if union == 0 else int(np.logical_and(predicted, truth).sum()) / union


@dataclass(frozen=True)
class SheetBoxes:
    """One sheet's boxes (x0 y0 x1 y1 pixels), class indexes, and scores (predictions) or not (truth)."""

    boxes: FloatArray
    classes: IntArray
    scores: FloatArray | None = None

    @classmethod
    def empty(cls, scored: bool = False) -> SheetBoxes:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32) if scored else None)


@dataclass(frozen=True)
class DetectionScores:
    """Average precision per class (at IoU 0.5, and averaged over 0.5:0.95), and their means over classes seen."""

    ap50: Mapping[str, float]
    ap50_95: Mapping[str, float]
    instances: Mapping[str, int]  # ground-truth boxes per class (classes with none are not averaged)
    sheets: int
    per_sheet_recall50: Sequence[float] = field(default_factory=list)  # share of each sheet's boxes found at IoU 0.5

    @property
    def map50(self) -> float:
        return _mean(self.ap50.values())

    @property
    def map50_95(self) -> float:
        return _mean(self.ap50_95.values())


def _mean(values: object) -> float:
    numbers = [float(v) for v in values]  # type: ignore[attr-defined]
    return float(np.mean(numbers)) if numbers else float("nan")


def detection_scores(
    truths: Sequence[SheetBoxes],
    predictions: Sequence[SheetBoxes],
    known: Sequence[npt.NDArray[np.bool_]],
    class_names: Sequence[str],
) -> DetectionScores:
    """COCO-style AP per class over sheets; class indexes refer to ``class_names``.

    ``known[i][c]``: class ``c`` is boxed completely on sheet ``i``; otherwise that class is ignored there.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    recalls: list[float] = []
    for sheet, (truth, predicted, counted) in enumerate(zip(truths, predictions, known, strict=True)):
        images.append({"id": sheet, "width": 1, "height": 1})
        keep_truth = [i for i, c in enumerate(truth.classes) if counted[int(c)]]
        for i in keep_truth:
            x0, y0, x1, y1 = (float(v) for v in truth.boxes[i])
            annotations.append(
                {"id": len(annotations) + 1, "image_id": sheet, "category_id": int(truth.classes[i]),
                 "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}
            )  # fmt: skip
        scores = predicted.scores if predicted.scores is not None else np.ones(len(predicted.classes), np.float32)
        for i, c in enumerate(predicted.classes):
            if counted[int(c)]:
                x0, y0, x1, y1 = (float(v) for v in predicted.boxes[i])
                detections.append(
                    {"image_id": sheet, "category_id": int(c), "bbox": [x0, y0, x1 - x0, y1 - y0],
                     "score": float(scores[i])}
                )  # fmt: skip
        if keep_truth:
            recalls.append(_recall50(truth, predicted, keep_truth))
    instances = {name: 0 for name in class_names}
    for annotation in annotations:
        instances[class_names[int(annotation["category_id"])]] += 1
    seen = [c for c, name in enumerate(class_names) if instances[name] > 0]
    ap50: dict[str, float] = {}
    ap50_95: dict[str, float] = {}
    if seen:
        truth_set = COCO()
        truth_set.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c, "name": name} for c, name in enumerate(class_names)],
        }
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            truth_set.createIndex()
            found = truth_set.loadRes(detections) if detections else None
            for c in seen:
                if found is None:
                    ap50[class_names[c]] = ap50_95[class_names[c]] = 0.0
                    continue
                evaluator = COCOeval(truth_set, found, "bbox")
                evaluator.params.catIds = [c]
                evaluator.params.maxDets = [1, 10, 100]
                evaluator.evaluate()
                evaluator.accumulate()
                evaluator.summarize()
                ap50_95[class_names[c]] = max(0.0, float(evaluator.stats[0]))
                ap50[class_names[c]] = max(0.0, float(evaluator.stats[1]))
    return DetectionScores(ap50, ap50_95, instances, len(truths), recalls)


def box_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of two sets of x0 y0 x1 y1 boxes: (len(a), len(b)); the runtime's own."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), np.float32)
    return pairwise_iou(np.asarray(a, np.float32), np.asarray(b, np.float32))


def _recall50(truth: SheetBoxes, predicted: SheetBoxes, keep: Sequence[int]) -> float:
    found = 0
    for i in keep:
        same = predicted.classes == truth.classes[i]
        if same.any() and float(box_iou(truth.boxes[i : i + 1], predicted.boxes[same]).max()) >= 0.5:
            found += 1
    return found / len(keep)


def accuracy(predicted: Sequence[object], truth: Sequence[object]) -> float:
    if not truth:
        return float("nan")
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
