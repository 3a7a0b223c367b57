"""One synthetic herbarium sheet with exact ground truth.

Order of drawing: paper, non-vegetal elements (each in a zone of its own), plants last, then
per-pixel scan lighting and grain. Plants are drawn last and nothing after them moves pixels, so
the plant mask is exactly the pixels the plants changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from PIL import Image

from herbarium.labels.model import BoolMask, BoxLabel, ClassificationLabel, LabelState, MaskLabel, SpecimenLabels
from herbarium.synth import elements, plants
from herbarium.synth.layout import Item, Layout, LayoutError, Rect, pack
from herbarium.synth.paper import paper, scan_finish
from herbarium.synth.params import check_seed, check_size
from herbarium.synth.vocab import Record, draw_record
from herbarium.taxonomy import NONVEGETAL, ORGANS, PLANT, TRAITS

SYNTHETIC_SOURCE = "synthetic"
PHENOLOGY_WEIGHTS = {"flowering": 0.45, "fruiting": 0.3, "sterile": 0.25}
_PLANT_COUNTS = (1, 2, 3, 4)
_PLANT_COUNT_WEIGHTS = (0.4, 0.3, 0.2, 0.1)
_MIN_ELEMENT_SCALE = 0.3


@dataclass(frozen=True, slots=True)
class SheetBox:
    """A ground-truth box: class, its label set (``nonvegetal`` or ``organs``), plant index for organs."""

    label: str
    group: str
    plant: int | None
    x: int
    y: int
    width: int
    height: int

    def to_label(self) -> BoxLabel:
        attributes = {} if self.plant is None else {"plant": (str(self.plant),)}
        return BoxLabel(
            label=self.label,
            control=self.group,
            x=self.x,
            y=self.y,
            width=self.width,
            height=self.height,
            state=LabelState.VALIDATED,
            source=SYNTHETIC_SOURCE,
            attributes=attributes,
        )


def build_labels(
    width: int,
    height: int,
    boxes: Iterable[SheetBox],
    traits: Mapping[str, str],
    instance_masks: Iterable[BoolMask],
    image: str | None = None,
) -> SpecimenLabels:
    """The sheet's labels in the project's one model: boxes, one mask per plant, trait classifications."""
    labels: list[BoxLabel | MaskLabel | ClassificationLabel] = [box.to_label() for box in boxes]
    for k, mask in enumerate(instance_masks):
        labels.append(
            MaskLabel(
                label=PLANT.classes[0],
                control=PLANT.name,
                mask=mask,
                state=LabelState.VALIDATED,
                source=SYNTHETIC_SOURCE,
                attributes={"plant": (str(k),)},
            )
        )
    for control, value in traits.items():
        labels.append(
            ClassificationLabel(label=value, control=control, state=LabelState.VALIDATED, source=SYNTHETIC_SOURCE)
        )
    return SpecimenLabels(width=width, height=height, labels=list(labels), image=image)


@dataclass(frozen=True, eq=False)
class SyntheticSheet:
    """A generated sheet: the RGB image and everything true about it."""

    seed: int
    image: Image.Image
    boxes: tuple[SheetBox, ...]
    instance_masks: tuple[BoolMask, ...]  # one per plant, disjoint: the pixels each plant shows
    plant_mask: BoolMask  # their union
    traits: Mapping[str, str]
    darwin_core: Mapping[str, str]

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    @property
    def catalog_number(self) -> str:
        return self.darwin_core["catalogNumber"]

    @property
    def labels(self) -> SpecimenLabels:
        return build_labels(self.width, self.height, self.boxes, self.traits, self.instance_masks)


def generate_sheet(seed: int, width: int, height: int) -> SyntheticSheet:
    """Generate one sheet; the same seed and size always give the same pixels and labels."""
    check_seed(seed)
    check_size(width, height)
    return _build(seed, width, height, with_plants=True)


def generate_background(seed: int, width: int, height: int) -> SyntheticSheet:
    """The same sheet as :func:`generate_sheet` without its plants: paper, elements, scan finish.

    Copy-paste training puts real plants on it; its element boxes stay exact.
    """
    check_seed(seed)
    check_size(width, height)
    return _build(seed, width, height, with_plants=False)


def _build(seed: int, width: int, height: int, *, with_plants: bool) -> SyntheticSheet:
    # Independent streams, so that changing one part (say, the paper) leaves the others' draws alone.
    rng_record, rng_paper, rng_elements, rng_plants, rng_finish = np.random.default_rng(seed).spawn(5)
    record = draw_record(rng_record, seed)
    ppcm = height / 42.0  # pixels per centimetre on a 42 cm sheet

    image, sheet_rect = paper(rng_paper, width, height)
    bounds = sheet_rect.inset(max(4, round(0.3 * ppcm)))
    gap = max(3, round(0.25 * ppcm))
    layers, items, layout = _lay_out(rng_elements, record, ppcm, bounds, gap)
    boxes: list[SheetBox] = []
    for item in items:
        if item.name not in layout.placements:
            continue
        layer = layers[item.name]
        x, y = layout.placements[item.name]
        image.paste(layer, (x, y), layer)
        bx0, by0, bx1, by1 = layer.getchannel("A").getbbox() or (0, 0, 0, 0)
        boxes.append(
            SheetBox(NONVEGETAL.resolve(item.name), NONVEGETAL.name, None, x + bx0, y + by0, bx1 - bx0, by1 - by0)
        )

    phenology, margin, pixel_plants = _plants(rng_plants, record, layout.plant_region.inset(3))
    if with_plants:
        drawn, masks = plants.draw_plants(image, pixel_plants)
    else:
        drawn, masks = [], []
    for organ in drawn:
        x, y, w, h = organ.box
        boxes.append(SheetBox(ORGANS.resolve(organ.name), ORGANS.name, organ.plant, x, y, w, h))
    image = scan_finish(rng_finish, image)

    instance_masks = tuple(np.asarray(mask) > 0 for mask in masks)
    plant_mask = np.zeros((height, width), dtype=bool)
    for mask_array in instance_masks:
        plant_mask |= mask_array
    traits = MappingProxyType(
        {"leaf_margin": TRAITS["leaf_margin"].resolve(margin), "phenology": TRAITS["phenology"].resolve(phenology)}
    )
    return SyntheticSheet(
        seed=seed,
        image=image,
        boxes=tuple(boxes),
        instance_masks=instance_masks,
        plant_mask=plant_mask,
        traits=traits,
        darwin_core=MappingProxyType(record.darwin_core()),
    )


def _lay_out(
    rng: np.random.Generator, record: Record, ppcm: float, bounds: Rect, gap: int
) -> tuple[dict[str, Image.Image], list[Item], Layout]:
    """Render and place the elements; they keep their physical size if they fit, else shrink until they do."""
    scale = 1.0
    while True:
        layers, items = _elements(rng, record, ppcm, scale)
        try:
            return layers, items, pack(items, bounds, gap, 0.42, rng)
        except LayoutError:
            scale *= 0.85
            if scale < _MIN_ELEMENT_SCALE:
                raise


def _elements(
    rng: np.random.Generator, record: Record, ppcm: float, scale: float
) -> tuple[dict[str, Image.Image], list[Item]]:
    """Render every element and say where it would rather go; envelope and stamp are not on every sheet.

    ``scale`` < 1 shrinks label, envelope, colour chart and stamp. The barcode keeps its modules
    (at least 2 px) and the ruler its true centimetres: it only gets shorter.
    """
    small = ppcm * scale
    layers = {
        "label": elements.specimen_label(rng, record, small),
        "barcode": elements.barcode(rng, record.catalog_number, ppcm),
        "colour_chart": elements.colour_chart(rng, small),
        "ruler": elements.ruler(rng, ppcm, scale),
    }
    if rng.random() < 0.6:
        layers["envelope"] = elements.envelope(rng, small)
    if rng.random() < 0.75:
        layers["stamp"] = elements.stamp(rng, record, small)
    barcode_band = "top" if rng.random() < 0.3 else "bottom"
    stamp_band = "top" if rng.random() < 0.4 else "bottom"
    ruler_band = "bottom" if rng.random() < 0.2 else "top"
    plan = {
        "label": ("bottom", 9, False),
        "barcode": (barcode_band, 5, False),
        "colour_chart": ("top", int(rng.integers(0, 10)), False),
        "ruler": (ruler_band, int(rng.integers(0, 10)), False),
        "envelope": ("bottom", 0, True),
        "stamp": (stamp_band, int(rng.integers(1, 8)), True),
    }
    items = []
    for name, layer in layers.items():
        band, rank, optional = plan[name]
        items.append(Item(name, layer.width, layer.height, band, rank, optional))
    return layers, items


def _plants(rng: np.random.Generator, record: Record, region: Rect) -> tuple[str, str, list[list[plants.Organ]]]:
    """Grow the sheet's plants (one taxon, so one leaf margin and one phenology) and fit them into the region."""
    taxon = record.taxon
    phenology = str(rng.choice(list(PHENOLOGY_WEIGHTS), p=list(PHENOLOGY_WEIGHTS.values())))
    leaf_shape = taxon.leaf_shapes[int(rng.integers(len(taxon.leaf_shapes)))]
    count = int(rng.choice(_PLANT_COUNTS, p=_PLANT_COUNT_WEIGHTS))
    slot_width = region.width / count
    result = []
    for k in range(count):
        overlap = float(rng.uniform(0.05, 0.3)) * slot_width
        x0 = max(region.x0, int(region.x0 + k * slot_width - overlap))
        x1 = min(region.x1, int(region.x0 + (k + 1) * slot_width + overlap))
        top = region.y0 + int(rng.uniform(0, 0.25) * region.height)
        slot = Rect(x0, top, x1, region.y1)
        style = plants.plant_style(rng, taxon, leaf_shape, phenology)
        organs = plants.grow(rng, style, unit_px=0.8 * slot.height)
        tilt = 0.5 if style.habit == "twig" else 0.15
        result.append(plants.fit(organs, slot, rng, bottom=region.y1, tilt=tilt))
    return phenology, taxon.margin, result
