"""A SheetNet scored on real sheets it never trained on, sheet by sheet, beside trivial baselines.

The sheets are decoded as the backends decode them (reduced JPEG decode, EXIF applied) and every
figure is computed in the original image's pixels. Baselines from the same sheets: plant mask =
pixels far from the paper's colour (Otsu's threshold); detections = the median position of each
class's boxes on the training sheets; fertile = the training sheets' majority.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from catalog.sheetnet.plant_refinement import (
    otsu_threshold,
    paper_distance,
    refined_plant,
    resized_mask,
    served_plant,
)
from catalog.sheetnet.runtime import SheetNetRunner
from catalog.sheetnet.spec import BOX_CLASSES, BOX_TASK_CHANNELS
from herbarium.imaging import read_image
from herbarium.real_sheets import RealSheet
from training.metrics import BoolMask, DetectionScores, SheetBoxes, box_iou, detection_scores, plant_iou
from training.sheets import NO_TRAIT, TrainingSheet

NONVEGETAL_TASK, ORGANS_TASK = "detect-nonvegetal", "detect-organs"
EVALUATION_CONF = 0.02  # AP needs the low-scoring boxes too
LABEL = BOX_CLASSES.index("label")
BARCODE = BOX_CLASSES.index("barcode")
LEAF = BOX_CLASSES.index("leaf")


@dataclass
class SheetFigures:
    """What one held-out sheet scored."""

    name: str
    collection: str
    plant_iou: float | None = None
    baseline_plant_iou: float | None = None
    nonvegetal_recall50: float | None = None  # share of its elements found (IoU 0.5, at the model's threshold)
    leaf_recall50: float | None = None
    main_label_iou: float | None = None  # UNB: best IoU of a predicted label box with the main label
    fertile_truth: bool | None = None
    fertile_predicted: bool | None = None
    fertile_probability: float | None = None
    barcodes: int = 0  # ground-truth barcodes on the sheet
    barcodes_readable: int = 0  # barcode values a person reads on the sheet, or zxing-cpp in the true box
    barcodes_read: int = 0  # of those, read the same in a barcode box the detector shows


@dataclass
class Predictions:
    """A model's raw output on one sheet, in the original image's pixels."""

    boxes: SheetBoxes
    plant: BoolMask | None
    trait: np.ndarray[Any, Any]


@dataclass
class RealSheetScores:
    sheets: list[SheetFigures] = field(default_factory=list)
    nonvegetal: DetectionScores | None = None
    organs: DetectionScores | None = None
    main_label_ap50: float | None = None
    fertile_accuracy: float | None = None
    fertile_baseline: float | None = None  # majority class of the training sheets

    def mean(self, key: str) -> float | None:
        values = [getattr(s, key) for s in self.sheets if getattr(s, key) is not None]
        return float(np.mean(values)) if values else None

    def to_dict(self) -> dict[str, Any]:
        def scores(d: DetectionScores | None) -> dict[str, Any] | None:
            if d is None:
                return None
            return {"mAP50": d.map50, "mAP50-95": d.map50_95, "AP50": dict(d.ap50), "instances": dict(d.instances)}

        return {
            "sheets": [asdict(s) for s in self.sheets],
            "plant_iou": self.mean("plant_iou"),
            "baseline_plant_iou": self.mean("baseline_plant_iou"),
            "nonvegetal": scores(self.nonvegetal),
            "organs": scores(self.organs),
            "main_label_ap50": self.main_label_ap50,
            "fertile_accuracy": self.fertile_accuracy,
            "fertile_baseline": self.fertile_baseline,
        }


def predict_sheet(
    runner: SheetNetRunner, sheet: RealSheet, threshold: float = 0.5, plant: bool | None = None
) -> Predictions:
    """Run ``runner`` on ``sheet`` as a backend would; boxes of both detection tasks at a low threshold.

    The plant mask (at full resolution, refined by the sheet's colours as the backend refines it) is made when
    ``plant`` says so, by default when the sheet has a true one.
    """
    picture = read_image(sheet.image, max_side=runner.spec.input_side)
    result = runner.run(picture.image)
    scale = picture.scale
    parts = []
    for task in (NONVEGETAL_TASK, ORGANS_TASK):
        xyxy, classes, scores = result.boxes(task, EVALUATION_CONF)
        parts.append((xyxy / scale, np.asarray(BOX_TASK_CHANNELS[task])[classes], scores))
    boxes = SheetBoxes(
        np.concatenate([p[0] for p in parts]).astype(np.float32).reshape(-1, 4),
        np.concatenate([p[1] for p in parts]).astype(np.int64),
        np.concatenate([p[2] for p in parts]).astype(np.float32),
    )
    mask = None
    if sheet.plant_mask is not None if plant is None else plant:
        refined = served_plant(result, picture, threshold)
        mask = resized_mask(refined, (picture.original_width, picture.original_height))
    return Predictions(boxes, mask, result.trait_probabilities)


def paper_threshold_mask(path: Any) -> BoolMask:
    """The trivial plant mask: pixels whose colour is far from the paper's (the image's median), by Otsu."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), np.uint8)
    distance = paper_distance(pixels)
    mask: BoolMask = distance > otsu_threshold(distance)
    return mask


def _truth(sheet: RealSheet) -> tuple[SheetBoxes, np.ndarray[Any, Any]]:
    known = np.array([name in sheet.exhaustive for name in BOX_CLASSES])
    if sheet.boxes is None:
        return SheetBoxes.empty(), known
    rows = [(b.x, b.y, b.x + b.width, b.y + b.height) for b in sheet.boxes.boxes if b.label in BOX_CLASSES]
    classes = [BOX_CLASSES.index(b.label) for b in sheet.boxes.boxes if b.label in BOX_CLASSES]
    if not rows:
        return SheetBoxes.empty(), known
    return SheetBoxes(np.asarray(rows, np.float32), np.asarray(classes, np.int64)), known


def evaluate(
    runner: SheetNetRunner,
    sheets: Sequence[RealSheet],
    box_thresholds: Mapping[str, float] | None = None,
    fertile_majority: bool | None = None,
) -> RealSheetScores:
    """Every figure of ``runner`` on ``sheets`` (all held out from its training), sheet by sheet."""
    return evaluate_folds([(runner, sheets)], box_thresholds, fertile_majority)


def evaluate_folds(
    folds: Sequence[tuple[SheetNetRunner, Sequence[RealSheet]]],
    box_thresholds: Mapping[str, float] | None = None,
    fertile_majority: bool | None = None,
) -> RealSheetScores:
    """Cross-validation: each fold's model on its own held-out sheets, every sheet's figures pooled.

    Average precision is computed once over all sheets (not averaged over folds), as for one model.
    """
    thresholds = {NONVEGETAL_TASK: 0.25, ORGANS_TASK: 0.25, **(box_thresholds or {})}
    scores = RealSheetScores()
    truths, predictions, knowns = [], [], []
    label_truth, label_predictions = [], []
    fertile_right: list[bool] = []
    sheets = [sheet for _, fold in folds for sheet in fold]
    for runner, sheet in ((runner, sheet) for runner, fold in folds for sheet in fold):
        trait_names = runner.spec.trait_classes
        predicted = predict_sheet(runner, sheet)
        figures = SheetFigures(sheet.name, sheet.collection)
        if sheet.plant_mask is not None and predicted.plant is not None:
            with Image.open(sheet.plant_mask) as mask:
                truth_mask = np.asarray(mask.convert("L")) > 127
            figures.plant_iou = plant_iou(predicted.plant, truth_mask)
            figures.baseline_plant_iou = plant_iou(paper_threshold_mask(sheet.image), truth_mask)
        truth, known = _truth(sheet)
        if sheet.boxes is not None:
            truths.append(truth)
            predictions.append(predicted.boxes)
            knowns.append(known)
            figures.nonvegetal_recall50 = _recall(truth, predicted.boxes, known, NONVEGETAL_TASK, thresholds)
            figures.leaf_recall50 = _recall(truth, predicted.boxes, known, ORGANS_TASK, thresholds, only=LEAF)
            figures.barcodes = int((truth.classes == BARCODE).sum()) if known[BARCODE] else 0
            if figures.barcodes:
                shown = thresholds[NONVEGETAL_TASK]
                figures.barcodes_readable, figures.barcodes_read = _barcodes(sheet, truth, predicted.boxes, shown)
        if sheet.main_label is not None:
            label_truth.append(SheetBoxes(np.asarray([sheet.main_label], np.float32), np.array([LABEL])))
            label_predictions.append(_touching_main_label(predicted.boxes, sheet.main_label))
            ious = box_iou(np.asarray([sheet.main_label], np.float32), label_predictions[-1].boxes)
            figures.main_label_iou = float(ious.max()) if ious.size else 0.0
        if sheet.fertile is not None and "sterile" in trait_names:
            probability = 1.0 - float(predicted.trait[trait_names.index("sterile")])
            figures.fertile_truth = sheet.fertile
            figures.fertile_probability = probability
            figures.fertile_predicted = probability >= 0.5
            fertile_right.append(figures.fertile_predicted == sheet.fertile)
        scores.sheets.append(figures)
    if truths:
        nonveg = np.zeros(len(BOX_CLASSES), bool)
        nonveg[list(BOX_TASK_CHANNELS[NONVEGETAL_TASK])] = True
        organs = ~nonveg
        scores.nonvegetal = detection_scores(truths, predictions, [k & nonveg for k in knowns], BOX_CLASSES)
        scores.organs = detection_scores(truths, predictions, [k & organs for k in knowns], BOX_CLASSES)
    if label_truth:
        only_label = [np.arange(len(BOX_CLASSES)) == LABEL] * len(label_truth)
        scores.main_label_ap50 = detection_scores(label_truth, label_predictions, only_label, BOX_CLASSES).ap50["label"]
    if fertile_right:
        scores.fertile_accuracy = float(np.mean(fertile_right))
        if fertile_majority is not None:
            truth_values = [s.fertile for s in sheets if s.fertile is not None]
            scores.fertile_baseline = float(np.mean([t == fertile_majority for t in truth_values]))
    return scores


def _recall(
    truth: SheetBoxes,
    predicted: SheetBoxes,
    known: np.ndarray[Any, Any],
    task: str,
    thresholds: Mapping[str, float],
    only: int | None = None,
) -> float | None:
    channels = [c for c in BOX_TASK_CHANNELS[task] if known[c] and (only is None or c == only)]
    wanted = [i for i, c in enumerate(truth.classes) if int(c) in channels]
    if not wanted:
        return None
    assert predicted.scores is not None
    confident = predicted.scores >= thresholds[task]
    found = 0
    for i in wanted:
        same = confident & (predicted.classes == truth.classes[i])
        if same.any() and float(box_iou(truth.boxes[i : i + 1], predicted.boxes[same]).max()) >= 0.5:
            found += 1
    return found / len(wanted)


def _barcodes(sheet: RealSheet, truth: SheetBoxes, predicted: SheetBoxes, shown: float) -> tuple[int, int]:
    """(barcode values readable on the sheet, those read the same in a barcode box the detector shows).

    Readable: what a person read on the sheet (its printed lines, :attr:`RealSheet.barcode_values`) and what
    zxing-cpp decodes in the true boxes. Read as the backend reads: on a decode of at most DECODE_SIDE px,
    the bars, else the printed line (:func:`herbarium.barcodes.read_barcode`).
    """
    from herbarium.barcodes import DECODE_SIDE, read_barcode, read_in_box, same_value

    assert predicted.scores is not None
    decoded = read_image(sheet.image, max_side=DECODE_SIDE)
    picture, scale = decoded.image, decoded.scale

    def at_scale(box: npt.NDArray[Any]) -> tuple[float, float, float, float]:
        return (float(box[0]) * scale, float(box[1]) * scale, float(box[2]) * scale, float(box[3]) * scale)

    expected = list(sheet.barcode_values)
    for box in truth.boxes[truth.classes == BARCODE]:
        found = read_in_box(picture, at_scale(box))
        if found is not None and not any(same_value(found.text, value) for value in expected):
            expected.append(found.text)
    if not expected:
        return 0, 0
    shown_boxes = predicted.boxes[(predicted.classes == BARCODE) & (predicted.scores >= shown)]
    reads = [read_barcode(picture, at_scale(b)) for b in shown_boxes]
    values = [r.text for r in reads if r is not None]
    return len(expected), sum(any(same_value(value, v) for v in values) for value in expected)


def _touching_main_label(predicted: SheetBoxes, main: tuple[float, float, float, float]) -> SheetBoxes:
    """Label predictions that touch the main label: the others are other labels, which this ground truth lacks."""
    assert predicted.scores is not None
    labels = predicted.classes == LABEL
    touching = labels & (box_iou(predicted.boxes, np.asarray([main], np.float32))[:, 0] > 0)
    return SheetBoxes(predicted.boxes[touching], predicted.classes[touching], predicted.scores[touching])


ALL_TASKS = (NONVEGETAL_TASK, ORGANS_TASK, "segment-plant", "trait")


def evaluate_sheets(
    runner: SheetNetRunner,
    sheets: Sequence[TrainingSheet],
    threshold: float = 0.5,
    tasks: Sequence[str] = ALL_TASKS,
) -> dict[str, float]:
    """Sheets at the working size (generated, or reviewed for retraining): mAP per box task, plant IoU, top-1.

    Only what a sheet knows counts: its known box classes, its plant mask, its trait.
    """
    truths: list[SheetBoxes] = []
    predictions: list[SheetBoxes] = []
    plant_scores: list[float] = []
    right: list[bool] = []
    box_tasks = [t for t in (NONVEGETAL_TASK, ORGANS_TASK) if t in tasks]
    for sheet in sheets:
        picture = Image.fromarray(sheet.image)
        result = runner.run(picture)
        parts: list[tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]] = []
        for task in box_tasks:
            xyxy, classes, scores = result.boxes(task, EVALUATION_CONF)
            parts.append((xyxy, np.asarray(BOX_TASK_CHANNELS[task])[classes], scores))
        predictions.append(
            SheetBoxes(
                np.concatenate([p[0] for p in parts] or [np.zeros((0, 4))]).astype(np.float32).reshape(-1, 4),
                np.concatenate([p[1] for p in parts] or [np.zeros(0)]).astype(np.int64),
                np.concatenate([p[2] for p in parts] or [np.zeros(0)]).astype(np.float32),
            )
        )
        truths.append(SheetBoxes(sheet.boxes, sheet.classes))
        if sheet.plant is not None and "segment-plant" in tasks:
            plant_scores.append(plant_iou(refined_plant(result, picture, threshold), sheet.plant > 0))
        if sheet.trait != NO_TRAIT and "trait" in tasks:
            right.append(int(np.argmax(result.trait_probabilities)) == sheet.trait)
    metrics: dict[str, float] = {}
    for task in box_tasks:
        prefix = "nonvegetal" if task == NONVEGETAL_TASK else "organs"
        channels = np.zeros(len(BOX_CLASSES), bool)
        channels[list(BOX_TASK_CHANNELS[task])] = True
        if not any((channels & s.known).any() for s in sheets):
            continue
        task_scores = detection_scores(truths, predictions, [channels & s.known for s in sheets], BOX_CLASSES)
        metrics[f"{prefix}_mAP50"], metrics[f"{prefix}_mAP50-95"] = task_scores.map50, task_scores.map50_95
    if plant_scores:
        metrics["plant_iou"] = float(np.mean(plant_scores))
    if right:
        metrics["top1"] = float(np.mean(right))
    return metrics
