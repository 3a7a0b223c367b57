"""The label sets PlantAI models speak, in one place, with the names other tools use.

Canonical names are snake_case British English (``colour_chart``). Aliases map names from
LeafMachine2, Hespi, the herbarium-segmentation panoptic set and plain spelling variants
onto them, so imported data lands on our vocabulary or fails loudly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class UnknownLabelError(ValueError):
    """A class name that no PlantAI label set knows, even through an alias."""


@dataclass(frozen=True)
class LabelSet:
    """An ordered vocabulary for one kind of model output (class index = position)."""

    name: str
    description: str
    classes: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for alias, target in self.aliases.items():
            if target not in self.classes:
                raise ValueError(f"alias {alias!r} of label set {self.name!r} points to unknown {target!r}")

    def resolve(self, name: str) -> str:
        """Return the canonical class for ``name`` (canonical or alias), else raise."""
        key = normalise_label_name(name)
        if key in self.classes:
            return key
        for alias, target in self.aliases.items():
            if normalise_label_name(alias) == key:
                return target
        raise UnknownLabelError(
            f"unknown label {name!r} for label set {self.name!r}; "
            f"expected one of {', '.join(self.classes)} (or an alias: {', '.join(sorted(self.aliases))})"
        )

    def index(self, name: str) -> int:
        return self.classes.index(self.resolve(name))


def normalise_label_name(name: str) -> str:
    """``"Colour Chart"`` and ``"colour-chart"`` both become ``"colour_chart"``."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


NONVEGETAL = LabelSet(
    name="nonvegetal",
    description="Non-vegetal elements on a herbarium sheet",
    classes=("barcode", "label", "envelope", "colour_chart", "ruler", "stamp"),
    aliases=MappingProxyType(
        {
            # spelling variants
            "color_chart": "colour_chart",
            "colour_card": "colour_chart",
            "color_card": "colour_chart",
            # LeafMachine2 archival classes
            "colorcard": "colour_chart",
            "attached_item": "envelope",
            # Hespi sheet components
            "swatch": "colour_chart",
            "scale": "ruler",
            "institutional_label": "label",
            "original_label": "label",
            "annotation_label": "label",
            "database_label": "label",
            "small_database_label": "label",
            "medium_database_label": "label",
            "full_database_label": "label",
            "swing_tag": "label",
            "data_sheet": "label",
            # herbarium-segmentation panoptic categories
            "note": "label",
            "attachment": "envelope",
        }
    ),
)

ORGANS = LabelSet(
    name="organs",
    description="Plant organs",
    classes=("leaf", "flower", "fruit", "seed", "stem", "root"),
    aliases=MappingProxyType(
        {
            # LeafMachine2 plant classes
            "leaf_whole": "leaf",
            "leaf_partial": "leaf",
            "leaflet": "leaf",
            "flower_one": "flower",
            "flower_many": "flower",
            "bud": "flower",
            "fruit_one": "fruit",
            "fruit_many": "fruit",
            "seed_fruit_one": "fruit",
            "seed_fruit_many": "fruit",
            "roots": "root",
            "wood": "stem",
            # plain plurals
            "leaves": "leaf",
            "flowers": "flower",
            "fruits": "fruit",
            "seeds": "seed",
            "stems": "stem",
        }
    ),
)

PLANT = LabelSet(
    name="plant",
    description="Plant segmentation (everything vegetal on the sheet)",
    classes=("plant",),
    aliases=MappingProxyType({"specimen": "plant", "vegetation": "plant"}),
)

TRAITS: Mapping[str, LabelSet] = MappingProxyType(
    {
        "leaf_margin": LabelSet(
            name="leaf_margin",
            description="Leaf margin",
            classes=("smooth", "toothed"),
            aliases=MappingProxyType({"entire": "smooth", "serrate": "toothed", "dentate": "toothed"}),
        ),
        "phenology": LabelSet(
            name="phenology",
            description="Reproductive state of the specimen",
            classes=("flowering", "fruiting", "sterile"),
            aliases=MappingProxyType({"flower": "flowering", "fruit": "fruiting", "vegetative": "sterile"}),
        ),
    }
)

# Model tasks (as the catalog names them) and the label set each one predicts.
TASK_LABEL_SETS: Mapping[str, LabelSet] = MappingProxyType(
    {
        "detect-nonvegetal": NONVEGETAL,
        "detect-organs": ORGANS,
        "segment-plant": PLANT,
    }
)


def label_set(name: str) -> LabelSet:
    """Look a label set up by task (``detect-organs``), set name (``organs``) or trait name."""
    if name in TASK_LABEL_SETS:
        return TASK_LABEL_SETS[name]
    for candidate in (NONVEGETAL, ORGANS, PLANT, *TRAITS.values()):
        if candidate.name == name:
            return candidate
    known = [*TASK_LABEL_SETS, NONVEGETAL.name, ORGANS.name, PLANT.name, *TRAITS]
    raise UnknownLabelError(f"unknown label set {name!r}; expected one of {', '.join(known)}")


def all_label_sets() -> tuple[LabelSet, ...]:
    return (NONVEGETAL, ORGANS, PLANT, *TRAITS.values())
