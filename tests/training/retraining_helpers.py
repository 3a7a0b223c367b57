"""Shared by the retraining tests: generated sheets with their exact labels, and a catalog with version 1."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from catalog.registry import Catalog
from herbarium.labels import BoxLabel, LabelState, SpecimenLabels
from herbarium.synth import generate_sheet
from herbarium.taxonomy import NONVEGETAL
from training.retraining import RetrainSettings

MODEL = "nonvegetal-detector"
# An expert's "this sheet is done" in the review config: only such sheets train.
VALIDATED_SHEET = {"from_name": "review", "to_name": "image", "type": "choices", "value": {"choices": ["validated"]}}
SEED_BASE = 7000  # far from the seeds trained_models used (0..39)
# Fine-tuning recipe that finishes in seconds on 2 cores (the trained_models recipe, shorter).
FAST = RetrainSettings(
    epochs=12,
    batch=4,
    max_side=416,
    val_fraction=0.25,
    options={"mosaic": 0.0, "warmup_epochs": 1, "val": False, "optimizer": "AdamW", "lr0": 0.001},
)


def write_sheets(folder: Path, seeds: list[int], width: int, height: int) -> list[tuple[Path, SpecimenLabels]]:
    """Sheets as JPEG files and their exact ground truth as expert-validated labels."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for seed in seeds:
        sheet = generate_sheet(seed, width, height)
        path = folder / f"sheet-{seed}.jpg"
        sheet.image.save(path, quality=92)
        labels = [replace(label, state=LabelState.VALIDATED, source="expert:1") for label in sheet.labels.labels]
        out.append((path, replace(sheet.labels, labels=labels)))
    return out


def shuffled_classes(specimen: SpecimenLabels) -> SpecimenLabels:
    """Every box given the next class of NONVEGETAL: corrupted corrections."""
    classes = NONVEGETAL.classes
    labels: list[Any] = [
        replace(label, label=classes[(classes.index(NONVEGETAL.resolve(label.label)) + 1) % len(classes)])
        if isinstance(label, BoxLabel) and label.control == NONVEGETAL.name
        else label
        for label in specimen.labels
    ]
    return replace(specimen, labels=labels)


def catalog_with_version_1(home: Path, detector: Path) -> Catalog:
    catalog = Catalog.open(home=home)
    catalog.register(MODEL, task="detect-nonvegetal", weights=detector, version="1.0.0", promote=True)
    return catalog
