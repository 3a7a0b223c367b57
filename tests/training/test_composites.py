"""Copy-paste composites: pasted plants land in the mask, pasted elements get exact boxes, unknowns stay unknown."""

from __future__ import annotations

import numpy as np

from catalog.sheetnet.spec import BOX_CLASSES
from training.composites import compose, element_cutouts, paper_sheet, plant_cutouts
from training.sheets import TrainingSheet

LABEL, LEAF = BOX_CLASSES.index("label"), BOX_CLASSES.index("leaf")


def _source(leaves_known: bool) -> TrainingSheet:
    """A 200 x 200 sheet: one plant (a green blob with one leaf box) and one label."""
    image = np.full((200, 200, 3), 235, np.uint8)
    plant = np.zeros((200, 200), np.uint8)
    plant[40:120, 50:90] = 1
    image[plant > 0] = (60, 110, 40)
    image[150:180, 120:190] = (250, 250, 250)
    known = np.zeros(len(BOX_CLASSES), bool)
    known[LABEL] = True
    known[LEAF] = leaves_known
    boxes = np.array([[50, 40, 90, 80], [120, 150, 190, 180]], np.float32)
    return TrainingSheet("src", "real", image, plant, boxes, np.array([LEAF, LABEL]), known)


def test_a_pasted_plant_is_in_the_mask_and_its_leaf_box_follows_it() -> None:
    rng = np.random.default_rng(3)
    plants = plant_cutouts([_source(leaves_known=True)])
    assert len(plants) == 1
    assert plants[0].alpha.sum() == 80 * 40
    background = paper_sheet(rng, (300, 400), "bg")
    made = compose(background, plants, [], rng, "c", plant_count=(1, 1))
    assert made.plant is not None
    assert made.plant.sum() > 0
    red, green_channel, blue = (made.image[..., k].astype(int) for k in range(3))
    green = (green_channel > red + 30) & (green_channel > blue + 30)
    assert green.sum() > 1000
    assert (made.plant[green] == 1).all()  # every plant-coloured pixel is in the mask
    leaves = made.boxes[made.classes == LEAF]
    assert len(leaves) == 1
    assert made.known[LEAF]
    x0, y0, x1, y1 = leaves[0].round().astype(int)
    assert made.plant[y0:y1, x0:x1].mean() > 0.9  # the leaf box sits on pasted plant pixels


def test_organs_stay_unknown_when_a_pasted_plant_did_not_box_them() -> None:
    rng = np.random.default_rng(0)
    made = compose(paper_sheet(rng, (300, 400), "bg"), plant_cutouts([_source(False)]), [], rng, "c", (1, 1))
    assert not made.known[LEAF]
    assert made.known[LABEL]  # the paper has no label, and nothing pasted brought one


def test_pasted_elements_keep_exact_boxes_and_never_overlap() -> None:
    rng = np.random.default_rng(1)
    elements = element_cutouts([_source(True)])
    assert len(elements) == 1
    assert elements[0].pixels.shape[:2] == (30, 70)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        made = compose(paper_sheet(rng, (400, 500), "bg"), [], elements, rng, "c", element_count=(3, 3))
        labels = made.boxes[made.classes == LABEL]
        assert len(labels) >= 1
        for i, (x0, y0, x1, y1) in enumerate(labels.round().astype(int)):
            assert (made.image[y0:y1, x0:x1] >= 245).all()  # the white label's pixels, exactly
            for other in labels[i + 1 :]:
                assert min(x1, other[2]) <= max(x0, other[0]) or min(y1, other[3]) <= max(y0, other[1])
