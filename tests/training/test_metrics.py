"""Detection AP with partial ground truth, plant IoU, accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import SheetBoxes, accuracy, box_iou, detection_scores, plant_iou

NAMES = ("a", "b", "c")
ALL = np.ones(3, bool)


def _boxes(
    rows: list[tuple[float, float, float, float]], classes: list[int], scores: list[float] | None = None
) -> SheetBoxes:
    return SheetBoxes(
        np.asarray(rows, np.float32).reshape(-1, 4),
        np.asarray(classes, np.int64),
        None if scores is None else np.asarray(scores, np.float32),
    )


def test_perfect_predictions_score_one_and_shifted_ones_zero() -> None:
    truth = [_boxes([(0, 0, 10, 10), (20, 20, 40, 30)], [0, 1])]
    perfect = detection_scores(truth, [_boxes([(0, 0, 10, 10), (20, 20, 40, 30)], [0, 1], [0.9, 0.8])], [ALL], NAMES)
    assert perfect.ap50 == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}  # "c" has no instance: not averaged
    assert perfect.map50 == pytest.approx(1.0)
    assert perfect.per_sheet_recall50 == [1.0]
    shifted = detection_scores(truth, [_boxes([(8, 8, 18, 18), (40, 30, 60, 40)], [0, 1], [0.9, 0.8])], [ALL], NAMES)
    assert shifted.map50 == 0.0


def test_a_class_not_boxed_completely_on_a_sheet_is_ignored_there() -> None:
    truth = [_boxes([(0, 0, 10, 10)], [0]), _boxes([], [])]
    # Sheet 2 did not box class "a": its confident "a" box must not count as a false positive.
    predictions = [_boxes([(0, 0, 10, 10)], [0], [0.5]), _boxes([(50, 50, 60, 60)], [0], [0.99])]
    partial = detection_scores(truth, predictions, [ALL, np.array([False, True, True])], NAMES)
    assert partial.ap50["a"] == pytest.approx(1.0)
    complete = detection_scores(truth, predictions, [ALL, ALL], NAMES)
    assert complete.ap50["a"] < 0.6


def test_box_iou_and_plant_iou() -> None:
    assert box_iou(np.array([[0, 0, 10, 10]], np.float32), np.array([[5, 0, 15, 10]], np.float32))[
        0, 0
    ] == pytest.approx(1 / 3)
    a, b = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    assert plant_iou(a, b) == 1.0
    a[:2], b[1:3] = True, True
    assert plant_iou(a, b) == pytest.approx(4 / 12)
    assert accuracy([True, False, True], [True, True, True]) == pytest.approx(2 / 3)
