"""Crops and box targets: which cells a box marks, what they learn, what is ignored, how boxes follow a turn."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.sheetnet.spec import BOX_CLASSES
from training.sheets import TrainingSheet
from training.targets import Augment, Crop, encode, random_crop

LABEL = BOX_CLASSES.index("label")
STILL = Augment(scale=(1.0, 1.0), turn_probability=0.0, flip_probability=0.0, colour=False)


def _sheet(boxes: list[tuple[float, float, float, float]], size: int = 64) -> TrainingSheet:
    image = np.full((size, size, 3), 230, np.uint8)
    for x0, y0, x1, y1 in boxes:
        image[int(y0) : int(y1), int(x0) : int(x1)] = (200, 30, 30)
    known = np.zeros(len(BOX_CLASSES), bool)
    known[LABEL] = True
    return TrainingSheet(
        "s", "real", image, np.zeros((size, size), np.uint8), np.asarray(boxes, np.float32).reshape(-1, 4),
        np.full(len(boxes), LABEL, np.int64), known,
    )  # fmt: skip


def test_a_box_marks_its_central_region_and_each_cell_there_learns_the_distances_to_its_edges() -> None:
    # A 64 px crop has 8x8 cells of 8 px; the box spans cells 1-5 across and 2-6 down.
    crop = Crop(np.zeros((64, 64, 3), np.uint8), None, np.array([[8, 16, 40, 48]], np.float32), np.array([LABEL]),
                np.ones(len(BOX_CLASSES), bool))  # fmt: skip
    targets = encode([crop])
    heat = targets.heat[0, LABEL]
    assert heat.shape == (8, 8)
    assert [tuple(a) for a in heat.nonzero()] == [
        (3, 3, 4, 4),
        (2, 3, 2, 3),
    ]  # the central half of the box: rows 3-4, columns 2-3
    assert targets.objects == 1
    np.testing.assert_allclose(targets.distance_weight[0, 0][heat > 0], 0.25)  # the object's cells weigh 1 in all
    # The cell at row 3, column 2 (centre 2.5, 3.5 in cells) lies 1.5 from the left and top, 2.5 from the others.
    np.testing.assert_allclose(targets.distances[0, :, 3, 2], np.log([1.5, 1.5, 2.5, 2.5]), rtol=1e-6)
    assert targets.heat[0, LABEL + 1].max() == 0.0
    assert targets.plant_known[0] == 0.0  # no mask: its loss is off for this crop


def test_a_small_box_still_marks_the_cell_holding_its_centre() -> None:
    crop = Crop(np.zeros((64, 64, 3), np.uint8), None, np.array([[17, 17, 20, 21]], np.float32), np.array([LABEL]),
                np.ones(len(BOX_CLASSES), bool))  # fmt: skip
    assert [tuple(a) for a in encode([crop]).heat[0, LABEL].nonzero()] == [(2,), (2,)]


def test_unknown_classes_and_cut_objects_do_not_count_in_the_heat_loss() -> None:
    known = np.zeros(len(BOX_CLASSES), bool)
    known[LABEL] = True
    cut = np.array([[0, 0, 16, 16]], np.float32)
    crop = Crop(np.zeros((64, 64, 3), np.uint8), None, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), known,
                cut, np.array([LABEL]))  # fmt: skip
    weight = encode([crop]).heat_weight[0]
    assert weight[LABEL, :2, :2].max() == 0.0  # where the cut label shows: neither positive nor negative
    assert weight[LABEL, 4:, 4:].min() == 1.0
    assert weight[LABEL + 1].max() == 0.0  # a class the sheet did not box completely


def test_a_crop_keeps_boxes_it_shows_and_drops_those_it_cuts_away() -> None:
    sheet = _sheet([(4, 4, 20, 20), (50, 50, 60, 60)], size=64)
    rng = np.random.default_rng(0)
    crop = random_crop(sheet, 32, rng, STILL)
    # The window is 32 px somewhere in 64: every kept box lies inside it.
    assert crop.image.shape == (32, 32, 3)
    assert ((crop.boxes >= 0) & (crop.boxes <= 32)).all()


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_boxes_follow_the_pixels_through_quarter_turns(turns: int) -> None:
    sheet = _sheet([(8, 20, 40, 28)], size=64)
    augment = Augment(scale=(1.0, 1.0), turn_probability=1.0, flip_probability=0.0, colour=False)
    for seed in range(20):
        crop = random_crop(sheet, 64, np.random.default_rng(seed), augment)
        x0, y0, x1, y1 = (round(v) for v in crop.boxes[0])
        red = (crop.image[..., 1] < 100).nonzero()
        assert (red[1].min(), red[0].min(), red[1].max() + 1, red[0].max() + 1) == (x0, y0, x1, y1)


def test_a_flip_mirrors_the_box_with_the_pixels() -> None:
    sheet = _sheet([(8, 20, 40, 28)], size=64)
    augment = Augment(scale=(1.0, 1.0), turn_probability=0.0, flip_probability=1.0, colour=False)
    crop = random_crop(sheet, 64, np.random.default_rng(0), augment)
    np.testing.assert_allclose(crop.boxes[0], [24, 20, 56, 28])
    assert (crop.image[24, 30] == (200, 30, 30)).all()
    assert (crop.image[24, 10] == 230).all()
