"""Retraining a SheetNet catalog model from expert corrections: fine-tune, then measure both on the same sheets.

Called by the retraining job (:mod:`training.retraining`) when production is a SheetNet. The
corrected sheets are split by specimen (a seeded hash of the image's name, as for Ultralytics
models); the candidate fine-tunes production's own file on the training split (box and mask heads by
crops, the trait head as a linear probe) with only this model's task known on those sheets; candidate
and production are then measured on the held-out split with PlantAI's own evaluator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from catalog.sheetnet import network
from catalog.sheetnet.runtime import SheetNetRunner
from catalog.sheetnet.spec import BOX_TASK_CHANNELS, PLANT_TASK
from herbarium.labels.model import SpecimenLabels
from training.box_calibration import measure_box_scales_on_training_sheets
from training.box_decoder import BoxDecoderTraining, cache_features, train_box_decoder
from training.evaluation import evaluate_sheets
from training.sheetnet_trainer import SheetNetTraining, Window, fit_trait_head, train_sheetnet
from training.sheets import TrainingSheet, from_specimen

Step = Callable[[str, float], None]
# The figure that decides promotion, per head (names as the evaluator writes them, for this task).
GATE_METRICS: Mapping[str, str] = {"detect": "mAP50-95", "segment": "plant_iou", "classify": "top1"}


def fine_tuning() -> SheetNetTraining:
    """The plant mask's fine-tuning: gentler than training from ImageNet, fewer steps, lower rates."""
    return SheetNetTraining(
        iterations=60, windows=(Window(448, (0.5, 0.8), 2, 1.0),), encoder_lr=2e-4, head_lr=1e-3, warmup=0.05,
        pool_weights={"real": 1.0},
    )  # fmt: skip


def box_fine_tuning() -> BoxDecoderTraining:
    """The box decoder's fine-tuning on the corrected sheets' cached encoder features."""
    return BoxDecoderTraining(steps=400, learning_rate=1e-3)


@dataclass(frozen=True)
class SheetNetRetraining:
    training: SheetNetTraining = field(default_factory=fine_tuning)
    boxes: BoxDecoderTraining = field(default_factory=box_fine_tuning)
    val_fraction: float = 0.25
    seed: int = 0


@dataclass(frozen=True)
class Candidate:
    path: Path
    metric: str
    candidate_metrics: Mapping[str, float]
    production_metrics: Mapping[str, float]
    snapshot_id: str
    snapshot: Mapping[str, Any]


def kind_of(task: str) -> str:
    if task in BOX_TASK_CHANNELS:
        return "detect"
    return "segment" if task == PLANT_TASK else "classify"


def retrain_sheetnet(
    production_file: Path,
    task: str,
    specimens: Sequence[tuple[str | Path, SpecimenLabels]],
    out_dir: Path,
    settings: SheetNetRetraining | None = None,
    step: Step | None = None,
) -> Candidate:
    """Fine-tune the SheetNet at ``production_file`` for ``task`` on ``specimens``; measure it and production."""
    from herbarium.labels.yolo_dataset import split_specimens

    settings = settings or SheetNetRetraining()
    report: Step = step or (lambda message, fraction: None)
    production = network.load(production_file)
    spec = production.spec
    names = [Path(path).stem for path, _ in specimens]
    splits = split_specimens(names, settings.val_fraction, settings.seed)
    report(f"reading {len(specimens)} corrected sheets", 0.05)
    sheets = [from_specimen(path, labels, spec, task) for path, labels in specimens]
    training = [s for s in sheets if s.name in splits["train"]]
    held_out = [s for s in sheets if s.name in splits["val"]]
    snapshot = _snapshot(task, sheets, splits)
    snapshot_id = f"sheetnet-{kind_of(task)}-{snapshot['sha256'][:16]}"
    kind = kind_of(task)
    metric = GATE_METRICS[kind]
    candidate = network.load(production_file)  # a second copy: production stays as it was, to be measured
    if kind == "classify":
        report(f"fitting the trait head on {len(training)} sheets", 0.2)
        fit_trait_head(candidate, training)
    elif kind == "detect":
        report(f"encoding {len(training)} corrected sheets", 0.1)
        cached = cache_features(candidate, training, settings.boxes)

        def box_progress(done: int, total: int) -> None:
            report(f"box decoder step {done}/{total}", 0.2 + 0.6 * done / total)

        train_box_decoder(candidate, cached, settings.boxes, progress=box_progress)
        report("measuring the new decoder's size bias on the corrected sheets", 0.8)
        _recalibrate_boxes(candidate, training, task)
    else:

        def progress(done: int, total: int) -> None:
            report(f"step {done}/{total}", 0.1 + 0.7 * done / total)

        report(f"fine-tuning {settings.training.iterations} steps on {len(training)} sheets", 0.1)
        candidate = train_sheetnet({"real": training}, spec, settings.training, start=candidate, progress=progress).net
    report("evaluating the candidate and production on the same held-out sheets", 0.85)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = network.save(candidate, out_dir / "candidate.safetensors")
    candidate_metrics = _measure(candidate, held_out, task)
    production_metrics = _measure(production, held_out, task)
    return Candidate(path, metric, candidate_metrics, production_metrics, snapshot_id, snapshot)


def _recalibrate_boxes(candidate: network.SheetNet, training: Sequence[TrainingSheet], task: str) -> None:
    """The task's classes measured afresh on the sheets the decoder was just tuned on (where a class has enough
    matches); the others keep production's factors."""
    classes = candidate.spec.classes_for(task)
    before = dict(candidate.spec.box_scales)
    candidate.spec = replace(candidate.spec, box_scales={k: v for k, v in before.items() if k not in classes})
    fresh = measure_box_scales_on_training_sheets(SheetNetRunner.from_network(candidate), training, classes)
    candidate.spec = replace(candidate.spec, box_scales={**before, **fresh})


def _measure(net: network.SheetNet, sheets: Sequence[TrainingSheet], task: str) -> dict[str, float]:
    kind = kind_of(task)
    tasks = [task] if kind == "detect" else (["segment-plant"] if kind == "segment" else ["trait"])
    figures = evaluate_sheets(SheetNetRunner.from_network(net), sheets, tasks=tasks)
    prefix = "nonvegetal_" if task == "detect-nonvegetal" else "organs_"
    return {k.removeprefix(prefix): v for k, v in figures.items() if v == v}  # NaN: nothing to measure


def _snapshot(task: str, sheets: Sequence[TrainingSheet], splits: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Counts and a hash of every sheet's targets: the run's data set, as the catalog records it."""
    digest = hashlib.sha256()
    for sheet in sorted(sheets, key=lambda s: s.name):
        digest.update(sheet.name.encode())
        digest.update(np.ascontiguousarray(sheet.boxes).tobytes())
        digest.update(np.ascontiguousarray(sheet.classes).tobytes())
        digest.update(str(sheet.trait).encode())
        if sheet.plant is not None:
            digest.update(hashlib.sha256(np.ascontiguousarray(sheet.plant).tobytes()).digest())
    return {
        "task": task,
        "sheets": len(sheets),
        "splits": {k: list(v) for k, v in splits.items()},
        "boxes": int(sum(len(s.boxes) for s in sheets)),
        "sha256": digest.hexdigest(),
        "format": "plantai-sheetnet-corrections/1",
    }


def snapshot_json(candidate: Candidate) -> str:
    return json.dumps({**candidate.snapshot, "id": candidate.snapshot_id}, indent=2)
