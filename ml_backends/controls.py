"""The labelling config's control tags, one small class per tag PlantAI fills.

A control maps the model's canonical classes (the taxonomy) onto the values the project's
config spells, through the taxonomy's aliases, and relabels predictions for its tag. Per-region
controls (an expert's verdict, a comment) are for experts, never filled by a model.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from herbarium.labels import Label
from herbarium.labels.labelstudio_tags import BRUSH_LABELS, CHOICES, POLYGON_LABELS, RECTANGLE_LABELS
from herbarium.taxonomy import NONVEGETAL, ORGANS, PLANT, TRAITS, LabelSet, UnknownLabelError, normalise_label_name


class LabelConfigError(ValueError):
    """A labelling config PlantAI cannot read."""


@dataclass(frozen=True)
class Control:
    """A control tag of the config: ``name`` (from_name), ``to_name`` and its label values."""

    name: str
    to_name: str
    values: tuple[str, ...]

    tag: ClassVar[str] = ""
    label_type: ClassVar[tuple[type, ...]] = ()
    label_sets: ClassVar[tuple[LabelSet, ...]] = ()
    model_kinds: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_element(cls, element: ET.Element) -> Control:
        values = tuple(child.get("value", "") for child in element if child.get("value"))
        return cls(name=element.get("name", ""), to_name=element.get("toName", ""), values=values)

    def canonical(self, value: str) -> str:
        """The taxonomy's name for ``value`` (through aliases), else the value normalised."""
        for label_set in self.label_sets:
            try:
                return label_set.resolve(value)
            except UnknownLabelError:
                continue
        return normalise_label_name(value)

    def class_map(self, model_labels: Sequence[str]) -> dict[str, str]:
        """Model class -> the value this config spells for it, for the classes both know."""
        mapping: dict[str, str] = {}
        for value in self.values:
            canonical = self.canonical(value)
            if canonical in model_labels:
                mapping.setdefault(canonical, value)
        return mapping

    def fits(self, kind: str, task: str, model_labels: Sequence[str]) -> bool:
        """Whether a model of this kind and task can fill this tag."""
        return kind in self.model_kinds and bool(self.class_map(model_labels))

    def relabel(self, labels: Iterable[Label], class_map: Mapping[str, str]) -> list[Label]:
        """Predictions this tag shows, renamed to the config's values; other classes are left out."""
        kept: list[Label] = []
        for label in labels:
            if not isinstance(label, self.label_type):
                continue
            value = class_map.get(label.label)
            if value is not None:
                kept.append(replace(label, label=value, control=self.name))
        return kept


# Tag names and label classes come from herbarium's table of Label Studio tags, shared with the sync.
class RectangleLabelsControl(Control):
    tag = RECTANGLE_LABELS.name
    label_type = (RECTANGLE_LABELS.label_class,)
    label_sets = (NONVEGETAL, ORGANS)
    model_kinds = frozenset({"detect-nonvegetal", "detect-organs"})


class PolygonLabelsControl(Control):
    tag = POLYGON_LABELS.name
    label_type = (POLYGON_LABELS.label_class,)
    label_sets = (PLANT,)
    model_kinds = frozenset({"segment-plant"})


class BrushLabelsControl(Control):
    tag = BRUSH_LABELS.name
    label_type = (BRUSH_LABELS.label_class,)
    label_sets = (PLANT,)
    model_kinds = frozenset({"segment-plant"})


class ChoicesControl(Control):
    """A specimen-level trait: the control is named after the trait, or its choices are the trait's values."""

    tag = CHOICES.name
    label_type = (CHOICES.label_class,)
    model_kinds = frozenset({"classify-trait"})

    def canonical(self, value: str) -> str:
        label_set = TRAITS.get(self.name)
        if label_set is not None:
            try:
                return label_set.resolve(value)
            except UnknownLabelError:
                pass
        return normalise_label_name(value)

    def fits(self, kind: str, task: str, model_labels: Sequence[str]) -> bool:
        if kind not in self.model_kinds:
            return False
        mapping = self.class_map(model_labels)
        return bool(mapping) and (normalise_label_name(self.name) == task or len(mapping) == len(model_labels))


CONTROL_CLASSES: Mapping[str, type[Control]] = {
    cls.tag: cls for cls in (RectangleLabelsControl, PolygonLabelsControl, BrushLabelsControl, ChoicesControl)
}


@dataclass(frozen=True)
class LabelConfig:
    """What a project's labelling config asks a model to fill."""

    image_name: str  # the Image tag's name: results go ``to_name`` it
    image_key: str  # the task data key holding the image URL (``$image`` -> ``image``)
    controls: tuple[Control, ...]

    @classmethod
    def parse(cls, xml: str) -> LabelConfig:
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as exc:
            raise LabelConfigError(f"label_config: not valid XML ({exc})") from None
        images = [el for el in root.iter("Image")]
        if not images:
            raise LabelConfigError("label_config: no <Image> tag; PlantAI predicts on images")
        image = images[0]
        image_name = image.get("name", "")
        value = image.get("value", "")
        if not image_name or not value.startswith("$"):
            raise LabelConfigError('label_config: the <Image> tag needs name="..." and value="$<data key>"')
        controls: list[Control] = []
        for element in root.iter():
            control_class = CONTROL_CLASSES.get(element.tag)
            if control_class is None or element.get("toName") != image_name:
                continue
            if element.get("perRegion", "").lower() == "true":
                continue  # verdicts and per-region notes are the experts' to fill
            controls.append(control_class.from_element(element))
        return cls(image_name=image_name, image_key=value[1:], controls=tuple(controls))

    def controls_of(self, kind: type[Control]) -> Sequence[Control]:
        return [control for control in self.controls if isinstance(control, kind)]
