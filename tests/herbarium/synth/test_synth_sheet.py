"""One generated sheet: determinism, boxes, masks, traits and the label model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from herbarium.labels.model import BoxLabel, ClassificationLabel, LabelState, MaskLabel
from herbarium.synth import SYNTHETIC_SOURCE, SyntheticSheet, generate_sheet
from herbarium.synth.params import MIN_ASPECT
from herbarium.synth.plants import leaf_outline
from herbarium.synth.sheet import _build
from herbarium.taxonomy import NONVEGETAL, ORGANS, PLANT, TRAITS

SIZES = [(707, 1024), (353, 512), (600, 800)]


@pytest.fixture(scope="module")
def sheets() -> list[SyntheticSheet]:
    return [generate_sheet(seed, *SIZES[seed % len(SIZES)]) for seed in range(24)]


def test_same_seed_gives_identical_sheet() -> None:
    a, b = generate_sheet(11, 707, 1024), generate_sheet(11, 707, 1024)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.boxes == b.boxes
    assert np.array_equal(a.plant_mask, b.plant_mask)
    assert all(np.array_equal(x, y) for x, y in zip(a.instance_masks, b.instance_masks, strict=True))
    assert a.darwin_core == b.darwin_core
    assert a.traits == b.traits
    c = generate_sheet(12, 707, 1024)
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_image_is_rgb_of_requested_size(sheets: list[SyntheticSheet]) -> None:
    for seed, sheet in enumerate(sheets):
        assert sheet.image.mode == "RGB"
        assert sheet.image.size == SIZES[seed % len(SIZES)]
        assert sheet.plant_mask.shape == (sheet.height, sheet.width)


def test_every_box_lies_inside_its_image(sheets: list[SyntheticSheet]) -> None:
    for sheet in sheets:
        for box in sheet.boxes:
            assert box.width > 0
            assert box.height > 0
            assert box.x >= 0
            assert box.y >= 0
            assert box.x + box.width <= sheet.width
            assert box.y + box.height <= sheet.height


def test_classes_are_canonical_and_every_sheet_has_the_core_elements(sheets: list[SyntheticSheet]) -> None:
    for sheet in sheets:
        elements = [b for b in sheet.boxes if b.group == NONVEGETAL.name]
        organs = [b for b in sheet.boxes if b.group == ORGANS.name]
        assert len(elements) + len(organs) == len(sheet.boxes)
        assert all(b.label in NONVEGETAL.classes and b.plant is None for b in elements)
        assert all(b.label in ORGANS.classes for b in organs)
        assert all(b.plant is not None and 0 <= b.plant < len(sheet.instance_masks) for b in organs)
        names = [b.label for b in elements]
        assert len(names) == len(set(names)), "one of each element at most"
        assert {"label", "barcode", "ruler", "colour_chart"} <= set(names)
        for k in range(len(sheet.instance_masks)):
            assert {"stem", "leaf"} <= {b.label for b in organs if b.plant == k}
    seen = {b.label for sheet in sheets for b in sheet.boxes}
    assert set(NONVEGETAL.classes) <= seen
    assert set(ORGANS.classes) <= seen


def test_element_boxes_are_tight_around_drawn_pixels() -> None:
    # The paper under an element is never exactly its colour everywhere: a box one pixel too big would
    # take in paper along its whole edge, so the element's outer rows and columns must differ from paper.
    sheet = _build(5, 707, 1024, with_plants=False)
    barcode = next(b for b in sheet.boxes if b.label == "barcode")
    pixels = np.asarray(sheet.image.convert("L")).astype(int)
    inside = pixels[barcode.y : barcode.y + barcode.height, barcode.x : barcode.x + barcode.width]
    assert inside.min() < 80, "bars are dark"
    assert np.median(inside[:, 0]) > 200, "the sticker's quiet zone is white up to the box edge"


def test_plant_mask_is_union_of_disjoint_instance_masks(sheets: list[SyntheticSheet]) -> None:
    for sheet in sheets:
        assert sheet.plant_mask.any()
        union = np.zeros_like(sheet.plant_mask)
        total = 0
        for mask in sheet.instance_masks:
            assert mask.dtype == bool
            assert mask.any()
            union |= mask
            total += int(mask.sum())
        assert np.array_equal(union, sheet.plant_mask)
        assert total == int(sheet.plant_mask.sum()), "instance masks overlap"


def test_plant_mask_is_exactly_the_pixels_plants_changed() -> None:
    for seed, size in ((3, (707, 1024)), (8, (353, 512))):
        with_plants = _build(seed, *size, with_plants=True)
        without = _build(seed, *size, with_plants=False)
        changed = np.any(np.asarray(with_plants.image) != np.asarray(without.image), axis=2)
        assert not (changed & ~with_plants.plant_mask).any(), "pixels changed outside the plant mask"
        # A plant pixel can match the paper by chance, but only rarely.
        assert changed[with_plants.plant_mask].mean() > 0.98


def test_organ_boxes_cover_their_plant(sheets: list[SyntheticSheet]) -> None:
    for sheet in sheets:
        for k, mask in enumerate(sheet.instance_masks):
            ys, xs = np.nonzero(mask)
            organs = [b for b in sheet.boxes if b.plant == k]
            x0 = min(b.x for b in organs)
            y0 = min(b.y for b in organs)
            x1 = max(b.x + b.width for b in organs)
            y1 = max(b.y + b.height for b in organs)
            # Every visible plant pixel belongs to some organ; hidden organ parts may reach beyond.
            assert x0 <= xs.min()
            assert xs.max() < x1
            assert y0 <= ys.min()
            assert ys.max() < y1
            for box in organs:
                assert mask[box.y : box.y + box.height, box.x : box.x + box.width].any() or any(
                    other[box.y : box.y + box.height, box.x : box.x + box.width].any() for other in sheet.instance_masks
                )


def test_plants_never_cover_an_element(sheets: list[SyntheticSheet]) -> None:
    for sheet in sheets:
        for box in sheet.boxes:
            if box.group == NONVEGETAL.name:
                assert not sheet.plant_mask[box.y : box.y + box.height, box.x : box.x + box.width].any(), box.label


def test_elements_do_not_overlap(sheets: list[SyntheticSheet]) -> None:
    for sheet in sheets:
        elements = [b for b in sheet.boxes if b.group == NONVEGETAL.name]
        for i, a in enumerate(elements):
            for b in elements[i + 1 :]:
                apart = a.x + a.width <= b.x or b.x + b.width <= a.x or a.y + a.height <= b.y or b.y + b.height <= a.y
                assert apart, (a, b)


def test_phenology_matches_drawn_organs(sheets: list[SyntheticSheet]) -> None:
    phenologies = set()
    for sheet in sheets:
        organs = {b.label for b in sheet.boxes if b.group == ORGANS.name}
        phenology = sheet.traits["phenology"]
        phenologies.add(phenology)
        assert phenology in TRAITS["phenology"].classes
        if phenology == "flowering":
            assert "flower" in organs
            assert "fruit" not in organs
        elif phenology == "fruiting":
            assert "fruit" in organs
            assert "flower" not in organs
        else:
            assert not organs & {"flower", "fruit", "seed"}
        if "seed" in organs:
            assert phenology == "fruiting"
    assert phenologies == set(TRAITS["phenology"].classes)


def test_leaf_margin_matches_taxon_and_drawn_teeth(sheets: list[SyntheticSheet]) -> None:
    from herbarium.synth.vocab import TAXA

    margins = set()
    by_name = {t.scientific_name: t for t in TAXA}
    for sheet in sheets:
        margin = sheet.traits["leaf_margin"]
        margins.add(margin)
        assert margin in TRAITS["leaf_margin"].classes
        assert by_name[sheet.darwin_core["scientificName"]].margin == margin
    assert margins == set(TRAITS["leaf_margin"].classes)


@pytest.mark.parametrize("shape", ["elliptic", "lanceolate", "ovate"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_toothed_leaves_are_drawn_with_teeth(shape: str, seed: int) -> None:
    # Teeth are notches in the drawn outline: count convexity defects deeper than 2 px on a 400 px leaf.
    import cv2

    def notches(margin: str) -> int:
        outline = leaf_outline(np.random.default_rng(seed), shape, margin, 400.0).outline
        image = Image.new("L", (460, 300))
        ImageDraw.Draw(image).polygon([(x + 30, y + 150) for x, y in outline], fill=255)
        contours, _ = cv2.findContours(np.asarray(image), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        contour = max(contours, key=cv2.contourArea)
        defects = cv2.convexityDefects(contour, cv2.convexHull(contour, returnPoints=False))
        depths = np.zeros(0) if defects is None else defects.reshape(-1, 4)[:, 3] / 256.0
        return int((depths > 2.0).sum())

    assert notches("smooth") <= 3  # a curved blade may leave one or two shallow hollows
    assert notches("toothed") >= 12


def test_darwin_core_record(sheets: list[SyntheticSheet]) -> None:
    numbers = set()
    for sheet in sheets:
        dwc = sheet.darwin_core
        assert dwc["catalogNumber"].startswith(dwc["institutionCode"])
        assert dwc["scientificName"].startswith(dwc["genus"] + " ")
        assert len(dwc["eventDate"]) == 10
        assert all(dwc[term] for term in dwc)
        numbers.add(dwc["catalogNumber"][len(dwc["institutionCode"]) :])
    assert len(numbers) == len(sheets), "catalogue numbers are unique across consecutive seeds"


def test_specimen_labels_use_the_label_model(sheets: list[SyntheticSheet]) -> None:
    sheet = sheets[0]
    labels = sheet.labels
    assert (labels.width, labels.height) == (sheet.width, sheet.height)
    assert len(labels.boxes) == len(sheet.boxes)
    assert len(labels.masks) == len(sheet.instance_masks)
    for label in labels:
        assert label.state is LabelState.VALIDATED
        assert label.source == SYNTHETIC_SOURCE
    for box, label in zip(sheet.boxes, labels.boxes, strict=True):
        assert isinstance(label, BoxLabel)
        assert (label.label, label.control, label.xyxy) == (
            box.label,
            box.group,
            (box.x, box.y, box.x + box.width, box.y + box.height),
        )
        if box.plant is not None:
            assert label.attributes["plant"] == (str(box.plant),)
    for k, mask in enumerate(labels.masks):
        assert isinstance(mask, MaskLabel)
        assert (mask.label, mask.control, mask.attributes["plant"]) == (PLANT.classes[0], PLANT.name, (str(k),))
        assert np.array_equal(mask.mask, sheet.instance_masks[k])
    traits = {c.control: c.label for c in labels.classifications if isinstance(c, ClassificationLabel)}
    assert traits == dict(sheet.traits)


@pytest.mark.parametrize(("seed", "size"), [(0, (353, 512)), (1, (707, 1024)), (2, (2070, 2970))])
def test_barcode_bars_are_the_code128_pattern_at_two_or_more_px_per_module(seed: int, size: tuple[int, int]) -> None:
    from herbarium.synth.elements import QUIET_MODULES, barcode_modules

    sheet = generate_sheet(seed, *size)
    box = next(b for b in sheet.boxes if b.label == "barcode")
    row = np.asarray(sheet.image.convert("L"))[box.y + box.height // 3, box.x : box.x + box.width] < 128
    edges = np.flatnonzero(np.diff(row.astype(np.int8))) + 1
    runs = np.diff(np.concatenate([[0], edges, [row.size]]))
    assert not row[0]
    assert not row[-1]
    module = int(runs[1:-1].min())
    assert module >= 2
    assert runs[0] >= QUIET_MODULES * module
    assert runs[-1] >= QUIET_MODULES * module
    assert all(r % module == 0 for r in runs[1:-1])
    bits = "".join(("1" if i % 2 else "0") * (int(r) // module) for i, r in enumerate(runs[1:-1], start=1))
    assert bits == barcode_modules(sheet.catalog_number)


def test_narrowest_smallest_sheets_still_fit_every_core_element() -> None:
    width = math.ceil(512 * MIN_ASPECT)
    for seed in range(40):
        sheet = generate_sheet(seed, width, 512)
        assert {"label", "barcode", "ruler", "colour_chart"} <= {b.label for b in sheet.boxes}
        assert sheet.plant_mask.any()
