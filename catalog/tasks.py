"""Model tasks, their label sets from :mod:`herbarium.taxonomy`, and matching a model's class names to them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from catalog.errors import InvalidTaskError, LabelMismatchError
from herbarium.taxonomy import TASK_LABEL_SETS, TRAITS, LabelSet, UnknownLabelError, normalise_label_name

CLASSIFY_TRAIT = "classify-trait"
# What each catalog task asks of an Ultralytics model (its ``task`` attribute).
YOLO_TASKS = {"detect-nonvegetal": "detect", "detect-organs": "detect", "segment-plant": "segment"}
FRAMEWORKS = ("ultralytics", "onnx", "sam", "sheetnet")
_TRAIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class TaskSpec:
    """A task as stored (``detect-organs`` or a trait name such as ``leaf_margin``) and what it implies."""

    task: str
    yolo_task: str  # detect, segment or classify
    known_label_set: LabelSet | None  # None for a trait the taxonomy does not know yet

    @property
    def kind(self) -> str:
        return CLASSIFY_TRAIT if self.yolo_task == "classify" else self.task


def known_tasks() -> list[str]:
    return [*YOLO_TASKS, *(f"{CLASSIFY_TRAIT}:{trait}" for trait in TRAITS)]


def resolve_task(task: str) -> TaskSpec:
    """``detect-organs``; ``leaf_margin`` or ``classify-trait:leaf_margin``; or a new trait name."""
    if task in YOLO_TASKS:
        return TaskSpec(task, YOLO_TASKS[task], TASK_LABEL_SETS[task])
    trait = task.split(":", 1)[1] if task.startswith(f"{CLASSIFY_TRAIT}:") else task
    if trait == CLASSIFY_TRAIT or not _TRAIT_NAME.match(trait):
        raise InvalidTaskError(
            f"unknown task {task!r}; expected one of {', '.join(YOLO_TASKS)}, a trait "
            f"({', '.join(TRAITS)}) or a new snake_case trait name with its labels, "
            f"e.g. {CLASSIFY_TRAIT}:leaf_margin"
        )
    return TaskSpec(trait, "classify", TRAITS.get(trait))


def resolve_labels(spec: TaskSpec, labels: Sequence[str] | None) -> tuple[str, ...]:
    """The model's label set: the taxonomy's (given labels must match it) or, for a new trait, the given one."""
    if spec.known_label_set is not None:
        expected = spec.known_label_set.classes
        if labels is not None:
            match_class_names(spec.known_label_set, expected, labels, what=f"labels given for task {spec.task!r}")
        return expected
    if not labels:
        raise LabelMismatchError(f"trait {spec.task!r} is not in the taxonomy: give its labels (class names in order)")
    canonical = tuple(normalise_label_name(label) for label in labels)
    if any(not label for label in canonical) or len(set(canonical)) != len(canonical):
        raise LabelMismatchError(f"labels for trait {spec.task!r} must be distinct and non-empty: {list(labels)}")
    return canonical


def label_set_for(spec: TaskSpec, labels: Sequence[str]) -> LabelSet:
    if spec.known_label_set is not None:
        return spec.known_label_set
    return LabelSet(name=spec.task, description=f"Trait {spec.task}", classes=tuple(labels))


def match_class_names(label_set: LabelSet, expected: Sequence[str], names: Sequence[str], what: str) -> None:
    """Raise unless ``names`` resolve (through the taxonomy's aliases) to ``expected``, index by index."""
    resolved: list[str | None] = []
    for name in names:
        try:
            resolved.append(label_set.resolve(name))
        except UnknownLabelError:
            resolved.append(None)
    if resolved != list(expected):
        raise LabelMismatchError(
            f"{what} {list(names)} do not match label set {label_set.name!r} {list(expected)} "
            "(compared in index order, through the taxonomy's aliases)"
        )
