"""A new trait: a classifier trained from scratch on the choices experts made in a project."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from catalog.registry import Catalog
from catalog.tasks import resolve_task
from herbarium.labels import ClassificationLabel, LabelState
from herbarium.labels.yolo_dataset import Specimen, TrainingDataError
from herbarium.taxonomy import normalise_label_name
from training.retraining import (
    Progress,
    RetrainResult,
    RetrainSettings,
    collect_corrections,
    retrain_specimens,
)


def trait_values(specimens: Sequence[Specimen], trait: str) -> tuple[str, ...]:
    """The values experts chose for ``trait`` (a Choices control), sorted (Ultralytics' class order)."""
    values = {
        normalise_label_name(label.label)
        for _, specimen in specimens
        for label in specimen.labels
        if isinstance(label, ClassificationLabel) and label.control == trait and label.state != LabelState.REJECTED
    }
    return tuple(sorted(values))


def _normalised(specimens: Sequence[Specimen], trait: str) -> list[Specimen]:
    out: list[Specimen] = []
    for path, specimen in specimens:
        labels = [
            replace(label, label=normalise_label_name(label.label))
            if isinstance(label, ClassificationLabel) and label.control == trait
            else label
            for label in specimen.labels
        ]
        out.append((path, replace(specimen, labels=labels)))
    return out


# A classifier from scratch on a few dozen sheets: no random crops, RandAugment or erasing (with them
# it learnt nothing in 30 epochs, in trials), smaller batches for more steps. Images reduced to imgsz,
# as backends decode them for it (trained on sharper ones it was right on 13 of 18 sheets, not 16).
NEW_TRAIT_SETTINGS = RetrainSettings(
    epochs=30,
    imgsz=96,
    batch=4,
    max_side=192,  # what backends decode a sheet to for a 96-px classifier (ClassificationAdapter.decode_side)
    options={
        "mosaic": 0.0,
        "warmup_epochs": 1,
        "val": False,
        "optimizer": "AdamW",
        "lr0": 0.001,
        "scale": 0.0,
        "erasing": 0.0,
        "auto_augment": None,
    },
)


def train_new_trait(
    catalog: Catalog,
    trait: str,
    client: Any,
    project: int,
    *,
    name: str | None = None,
    settings: RetrainSettings | None = None,
    document_root: Path | None = None,
    progress: Progress | None = None,
) -> RetrainResult:
    """A new catalog classifier (``name``, default ``<trait>-classifier``) from a project's ``trait`` choices.

    Its classes are the values experts chose (sorted); the first version is registered and promoted,
    so a backend serving ``traits`` (or ``all``) fills the project's ``trait`` tag from then on.
    A later call retrains it through the same gate as any model.
    """
    resolve_task(trait)  # a snake_case trait name
    name = name or f"{trait.replace('_', '-')}-classifier"
    settings = settings or NEW_TRAIT_SETTINGS
    specimens = collect_corrections(client, [project], document_root, only_validated=settings.only_validated)
    specimens = _normalised(specimens, trait)
    labels = trait_values(specimens, trait)
    if len(labels) < 2:
        raise TrainingDataError(f"project {project}: trait {trait!r} has {len(labels)} distinct values; need 2 or more")
    return retrain_specimens(
        catalog,
        name,
        specimens,
        settings=settings,
        labels=labels,
        task=trait,
        progress=progress,
        extra={"trigger": "new-trait", "projects": [project], "trait": trait},
    )
