"""The plant mask, sharpened by the sheet's own colours: the network finds the plant, the paper says where it ends.

SheetNet's mask head works at half its input (a 384-px grid for a 768-px input): thin stems vanish,
an inflorescence becomes one blob, and a pale leaf the network half-sees stays half-seen. Herbarium
paper is nearly uniform, so a larger decode of the same sheet settles the details:

1. *ink*: pixels whose colour is far from the paper's (the median colour outside the network's plant),
   by Otsu's threshold on that distance;
2. the plant grows into ink regions near it (within GROW_SHARE of the sheet's long side) that it already
   half-covers (at least KEEP_COVER), except inside non-vegetal elements the detector shows;
3. the network's plant loses what is clearly paper (less than half the ink threshold) and what lies in
   an element the detector is sure of (colour charts and labels are never plant);
4. nothing outside the paper: the sheet is the union of the large paper-coloured regions' boxes (the
   scanner's cork or cloth around a sheet is not plant).

Measured on the ten real masked sheets, each by a model that never trained on it (bench/real_sheets.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

if TYPE_CHECKING:
    from catalog.sheetnet.runtime import SheetNetResult
    from herbarium.imaging import SpecimenImage

BoolMask = npt.NDArray[np.bool_]
REFINE_SIDE = 2048  # the long side of the decode the mask is refined on (or the original, if smaller)
GROW_SHARE = 0.05  # how far (share of the long side) the plant may grow into ink next to it
KEEP_COVER = 0.2  # an ink region joins the plant when the network covers at least this share of it
GROWTH_STOP_SCORE = 0.3  # non-vegetal elements shown at this score stop the plant growing into them
ELEMENT_SURE_SCORE = 0.5  # ... and at this score take the network's plant pixels out of them
MIN_INK_DISTANCE = 24  # L1 over R, G and B: about 8 levels a channel, JPEG noise on paper stays below it
SHEET_PART_SHARE = 0.05  # paper-coloured regions this large (share of the picture) are parts of the sheet
NONVEGETAL_TASK = "detect-nonvegetal"


def otsu_threshold(values: npt.NDArray[Any]) -> float:
    """Otsu's threshold of ``values`` (256 bins): the split that maximises the between-class variance.

    The threshold is the upper edge of the last bin below the split: ``values > threshold`` is the upper class.
    """
    histogram, edges = np.histogram(values, bins=256)
    weights = histogram.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(weights)[:-1]
    below_sum = np.cumsum(weights * centres)[:-1]
    above = weights.sum() - below
    above_sum = float((weights * centres).sum()) - below_sum
    with np.errstate(divide="ignore", invalid="ignore"):
        between = below * above * (below_sum / below - above_sum / above) ** 2
    between[(below == 0) | (above == 0)] = -1.0
    return float(edges[int(np.argmax(between)) + 1])


def paper_distance(pixels: npt.NDArray[np.uint8], paper: BoolMask | None = None) -> npt.NDArray[np.int16]:
    """Each pixel's L1 colour distance from the paper: the median colour of ``paper`` (all pixels by default).

    The median is taken over every fourth row and column: the same colour, a sixteenth of the work.
    """
    sample, where = pixels[::4, ::4], None if paper is None else paper[::4, ::4]
    colours = sample.reshape(-1, 3) if where is None or not where.any() else sample[where]
    median = np.median(colours, axis=0).astype(np.int16)
    distance: npt.NDArray[np.int16] = np.abs(pixels.astype(np.int16) - median).sum(axis=2, dtype=np.int16)
    return distance


def refine_plant_mask(
    pixels: npt.NDArray[np.uint8],
    plant: BoolMask,
    elements: npt.NDArray[np.float32],
    element_scores: npt.NDArray[np.float32],
) -> BoolMask:
    """The network's ``plant`` (on ``pixels``' grid) refined by colour; ``elements``: non-vegetal boxes there."""
    import cv2

    height, width = plant.shape
    if not plant.any():
        return plant
    distance = paper_distance(pixels, ~plant)
    # On a flat or faint picture Otsu splits the paper's own noise: ink is never closer to the paper than this.
    threshold = max(otsu_threshold(distance), MIN_INK_DISTANCE)
    ink = distance > threshold
    shown = _boxes_mask((height, width), elements[element_scores >= GROWTH_STOP_SCORE])
    sure = _boxes_mask((height, width), elements[element_scores >= ELEMENT_SURE_SCORE])

    # Exact Euclidean distance to the nearest plant pixel (OpenCV: a tenth of scipy's time on a 2,048-px sheet).
    to_plant = cv2.distanceTransform((~plant).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    near = to_plant <= GROW_SHARE * max(height, width)
    count, regions = cv2.connectedComponents((ink & near & ~shown).astype(np.uint8), connectivity=4)
    sizes = np.bincount(regions.ravel(), minlength=count)
    covered = np.bincount(regions.ravel(), weights=plant.ravel(), minlength=count)
    joins = covered >= KEEP_COVER * np.maximum(sizes, 1)
    joins[0] = False  # label 0: everything outside the candidate regions
    refined: BoolMask = (joins[regions] | (plant & (distance > threshold / 2))) & ~sure
    return refined & _sheet(~ink)


def _boxes_mask(shape: tuple[int, int], boxes: npt.NDArray[np.float32]) -> BoolMask:
    mask = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(0, int(y0)) : max(0, int(np.ceil(y1))), max(0, int(x0)) : max(0, int(np.ceil(x1)))] = True
    return mask


def _sheet(paper: BoolMask) -> BoolMask:
    """The sheet: the boxes of the large paper-coloured regions (everything, when there are none)."""
    import cv2

    count, _regions, stats, _centres = cv2.connectedComponentsWithStats(paper.astype(np.uint8), connectivity=4)
    large = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= SHEET_PART_SHARE * paper.size]
    if not large:
        return np.ones_like(paper)
    sheet = np.zeros_like(paper)
    for i in large:
        x, y, w, h = (int(v) for v in stats[i, :4])
        sheet[y : y + h, x : x + w] = True
    return sheet


def refine_picture(image: SpecimenImage) -> SpecimenImage:
    """The decode the mask is refined on: the same file at up to REFINE_SIDE px, or ``image`` itself."""
    from herbarium.imaging import ImageReadError, read_image

    side = min(max(image.original_width, image.original_height), REFINE_SIDE)
    if image.source is None or side <= max(image.image.size):
        return image
    try:
        return read_image(image.source, max_side=side)
    except ImageReadError:
        return image


def served_plant(result: SheetNetResult, image: SpecimenImage, threshold: float) -> BoolMask:
    """The plant as the backends serve it: refined on a larger decode of ``image`` (none when the head finds none).

    The mask is on the grid of that decode (REFINE_SIDE, or the original if smaller), or of ``image`` when the
    head finds no plant: resize it to what you need.
    """
    if not (result.plant_logits > _logit(threshold)).any():
        return np.zeros((image.image.height, image.image.width), dtype=bool)
    return refined_plant(result, refine_picture(image).image, threshold)


def _logit(probability: float) -> float:
    return float(np.log(probability / (1 - probability)))


def refined_plant(result: SheetNetResult, picture: Image.Image, threshold: float) -> BoolMask:
    """The plant on ``picture``'s grid (the sheet ``result`` came from, at any size), at score ``threshold``."""
    import cv2

    width, height = picture.size
    logits = cv2.resize(result.plant_logits, (width, height), interpolation=cv2.INTER_LINEAR)
    plant = logits > _logit(threshold)
    xyxy, _classes, scores = result.boxes(NONVEGETAL_TASK, GROWTH_STOP_SCORE)
    scale = width / result.picture_size[0]
    pixels = np.asarray(picture.convert("RGB"), dtype=np.uint8)
    return refine_plant_mask(pixels, plant, (xyxy * scale).astype(np.float32), scores)


def resized_mask(mask: BoolMask, size: Sequence[int]) -> BoolMask:
    """``mask`` at ``size`` (width, height), nearest neighbour."""
    import cv2

    width, height = int(size[0]), int(size[1])
    if mask.shape == (height, width):
        return mask
    return np.asarray(cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0)
