"""The plant mask refined by the sheet's colours: grown into the plant, cut from paper, elements and the scanner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.sheetnet import plant_refinement
from catalog.sheetnet.plant_refinement import (
    otsu_threshold,
    refine_picture,
    refine_plant_mask,
    refined_plant,
    resized_mask,
    served_plant,
)
from catalog.sheetnet.runtime import SheetNetResult
from catalog.sheetnet.spec import BOX_CLASSES
from herbarium.imaging import SpecimenImage, read_image

PAPER = (238, 232, 214)
GREEN = (70, 100, 50)
NO_BOXES = np.zeros((0, 4), np.float32)
NO_SCORES = np.zeros(0, np.float32)


def _sheet() -> np.ndarray:
    """A 200 x 300 sheet: a stem (3 px wide, x 100-102, y 40-260) ending in a leaf (x 80-130, y 40-90)."""
    pixels = np.full((300, 200, 3), PAPER, np.uint8)
    pixels[40:260, 100:103] = GREEN
    pixels[40:90, 80:130] = GREEN
    return pixels


def _plant() -> np.ndarray:
    return np.asarray(_sheet() != PAPER).any(axis=2)


def _brute_force_otsu(values: np.ndarray) -> float:
    histogram, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    best, threshold = -1.0, float(edges[1])
    for i in range(255):
        below, above = histogram[: i + 1].sum(), histogram[i + 1 :].sum()
        if below == 0 or above == 0:
            continue
        mean_below = (histogram[: i + 1] * centres[: i + 1]).sum() / below
        mean_above = (histogram[i + 1 :] * centres[i + 1 :]).sum() / above
        between = below * above * (mean_below - mean_above) ** 2
        if between > best:
            best, threshold = between, float(edges[i + 1])
    return threshold


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otsu_matches_its_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(20, 5, 3000), rng.normal(90 + 10 * seed, 12, 1000)])
    # The same split of the values (ties across empty bins may pick either end of the gap).
    assert np.array_equal(values > otsu_threshold(values), values > _brute_force_otsu(values))
    assert 30 < otsu_threshold(values) < 90 + 10 * seed


def test_the_plant_grows_along_a_stem_the_network_half_saw() -> None:
    half_seen = _plant()
    half_seen[150:] = False  # the network lost the stem's lower half
    refined = refine_plant_mask(_sheet(), half_seen, NO_BOXES, NO_SCORES)
    # Grown back as far as GROW_SHARE of the long side (15 px here) from what the network saw, no further.
    assert refined[150:165, 100:103].all()
    assert not refined[166:].any()
    assert np.array_equal(refined[:150], _plant()[:150])


def test_paper_inside_a_coarse_mask_is_dropped() -> None:
    blob = np.zeros((300, 200), bool)
    blob[30:270, 70:140] = True  # a coarse mask head: the stem and leaf as one blob
    refined = refine_plant_mask(_sheet(), blob, NO_BOXES, NO_SCORES)
    assert np.array_equal(refined, _plant())


def test_elements_the_detector_is_sure_of_are_not_plant() -> None:
    pixels = _sheet()
    pixels[200:240, 120:180] = (200, 40, 40)  # a red label touching the stem
    seen = _plant()
    seen[200:240, 120:150] = True  # the network took half the label for plant
    label = np.array([[118, 198, 182, 242]], np.float32)
    unsure = refine_plant_mask(pixels, seen, label, np.array([0.35], np.float32))
    assert unsure[200:240, 120:150].all()  # shown but not sure: the network's pixels stay, without growing
    assert not unsure[200:240, 150:180].any()
    sure = refine_plant_mask(pixels, seen, label, np.array([0.9], np.float32))
    assert not sure[200:240, 120:180].any()
    assert sure[40:198, 100:103].all()
    # Without the detector, the label's red joins the plant the network half-covers (as far as it may grow).
    assert refine_plant_mask(pixels, seen, NO_BOXES, NO_SCORES)[200:240, 120:165].all()


def test_nothing_outside_the_sheet() -> None:
    pixels = np.full((300, 240, 3), (120, 90, 50), np.uint8)  # the scanner's cork around the sheet
    pixels[10:290, 20:220] = _sheet()[:280]
    seen = np.zeros((300, 240), bool)
    seen[50:100, 100:150] = True  # the leaf
    seen[:, :20] = True  # the network took the cork strip for plant
    refined = refine_plant_mask(pixels, seen, NO_BOXES, NO_SCORES)
    assert not refined[:, :20].any()
    assert refined[50:100, 100:150].all()


def test_an_empty_mask_stays_empty() -> None:
    refined = refine_plant_mask(_sheet(), np.zeros((300, 200), bool), NO_BOXES, NO_SCORES)
    assert not refined.any()


def _result(picture_size: tuple[int, int], plant_logits: np.ndarray) -> SheetNetResult:
    return SheetNetResult(
        picture_size=picture_size,
        input_size=picture_size,
        plant_logits=plant_logits,
        box_heat=np.zeros((len(BOX_CLASSES), 4, 4), np.float32),
        box_regression=np.zeros((4, 4, 4), np.float32),
        trait_probabilities=np.ones(1, np.float32),
    )


def test_a_coarse_head_is_refined_on_a_larger_picture() -> None:
    # The head saw the sheet at 50 x 75: leaf and stem as one blob. The 200 x 300 picture separates them.
    coarse = np.full((75, 50), -4.0, np.float32)
    coarse[9:66, 19:34] = 4.0
    refined = refined_plant(_result((100, 150), coarse), Image.fromarray(_sheet()), threshold=0.5)
    assert refined.shape == (300, 200)
    assert np.array_equal(refined, _plant())


def test_the_refine_picture_is_a_larger_decode_when_the_original_is_larger(tmp_path: Path) -> None:
    path = tmp_path / "sheet.png"
    Image.fromarray(np.tile(_sheet(), (4, 4, 1))).save(path)  # 800 x 1200
    small = read_image(path, max_side=300)
    larger = refine_picture(small)
    assert larger.image.size == (800, 1200)
    assert refine_picture(larger) is larger
    detached = SpecimenImage(image=small.image, original_width=800, original_height=1200)
    assert refine_picture(detached) is detached  # no file to decode again


def test_masks_resize_by_nearest_neighbour() -> None:
    mask = np.zeros((3, 2), bool)
    mask[1, 1] = True
    assert resized_mask(mask, (2, 3)) is mask
    big = resized_mask(mask, (20, 30))
    assert big.shape == (30, 20)
    assert big[10:20, 10:].all()
    assert big.sum() == 100


def test_a_head_that_finds_no_plant_costs_no_larger_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decode(image: SpecimenImage) -> SpecimenImage:
        raise AssertionError("decoded a larger picture for an empty mask")

    monkeypatch.setattr(plant_refinement, "refine_picture", no_decode)
    image = SpecimenImage(image=Image.fromarray(_sheet()), original_width=2000, original_height=3000)
    empty = served_plant(_result((200, 300), np.full((75, 50), -4.0, np.float32)), image, threshold=0.5)
    assert empty.shape == (300, 200)
    assert not empty.any()
    coarse = np.full((75, 50), -4.0, np.float32)
    coarse[9:66, 19:34] = 4.0
    with pytest.raises(AssertionError, match="larger picture"):
        served_plant(_result((200, 300), coarse), image, threshold=0.5)


def test_a_flat_picture_adds_nothing_to_the_network() -> None:
    flat = np.full((300, 200, 3), PAPER, np.uint8)
    flat[::2, ::2] += 1  # JPEG-like noise a level deep: not ink
    seen = np.zeros((300, 200), bool)
    seen[100:120, 90:110] = True
    refined = refine_plant_mask(flat, seen, NO_BOXES, NO_SCORES)
    assert not refined[~seen].any()
