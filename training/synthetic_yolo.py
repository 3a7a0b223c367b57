"""Tiny YOLO models really trained on generated sheets, cached: for tests and the docs' screenshots.

A non-vegetal detector, a plant segmenter and a phenology classifier, trained from Ultralytics
yamls (no weights are downloaded). They are kept in ``<cache_dir>/<key>/``, where the key hashes
the code that generates the sheets, writes the data sets and trains, plus every parameter: change
any of them and the next call rebuilds (about 2 minutes on 2 cores), otherwise it reuses the files.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHEETS = 40
SHEET_SIZE = 640  # long side, px
SHEET_SEED = 0
VAL_FRACTION = 0.2
SPLIT_SEED = 0
# Small sets learn faster without mosaic and with a short warm-up; validating only at the end saves a third.
_COMMON = {"mosaic": 0.0, "warmup_epochs": 1, "val": False, "optimizer": "AdamW", "lr0": 0.003}
TRAINING: dict[str, dict[str, Any]] = {
    "detect": {"epochs": 25, "imgsz": 320, "batch": 4, "max_side": 416, **_COMMON},
    "segment": {"epochs": 10, "imgsz": 320, "batch": 4, "max_side": 416, **_COMMON},
    "classify": {"epochs": 15, "imgsz": 96, "batch": 8, "max_side": 128, **_COMMON},
}


@dataclass(frozen=True)
class TrainedModels:
    """Weight files (class names as the catalog tasks expect them) and what is known about them."""

    detect: Path  # detect-nonvegetal: NONVEGETAL classes
    segment: Path  # segment-plant: ["plant"]
    classify: Path  # phenology: flowering, fruiting, sterile
    metrics: dict[str, dict[str, float]]  # per kind, as train_yolo reported them on val
    snapshots: dict[str, dict[str, Any]]  # per kind, the data set snapshot
    val_seeds: tuple[int, ...]  # generate_sheet(seed, width, height) gives a sheet none of them trained on
    width: int
    height: int
    root: Path
    seconds: dict[str, float]  # build times; empty when the cache served
    cached: bool


def cache_key() -> str:
    from training.yolo_trainer import model_code_key

    settings = {"sheets": [SHEETS, SHEET_SIZE, SHEET_SEED, VAL_FRACTION, SPLIT_SEED], "training": TRAINING}
    return model_code_key(["training/synthetic_yolo.py"], settings)[:16]


def build_models(root: Path) -> dict[str, Any]:
    """Generate the sheets, export the three data sets, train; write the weights and info.json into ``root``."""
    from herbarium.labels.yolo_dataset import (
        Kind,
        TrainingDataset,
        export_classification,
        export_detection,
        export_segmentation,
        synthetic_specimens,
    )
    from herbarium.synth import write_sheets
    from training.yolo_trainer import train_yolo

    seconds: dict[str, float] = {}
    work = root / "work"
    start = time.perf_counter()
    manifest = write_sheets(work / "sheets", n=SHEETS, size=SHEET_SIZE, seed=SHEET_SEED)
    specimens = synthetic_specimens(manifest.root)
    seconds["sheets"] = time.perf_counter() - start

    start = time.perf_counter()
    split: dict[str, Any] = {"val_fraction": VAL_FRACTION, "seed": SPLIT_SEED}
    datasets: dict[Kind, TrainingDataset] = {
        "detect": export_detection(specimens, work / "detect", max_side=TRAINING["detect"]["max_side"], **split),
        "segment": export_segmentation(specimens, work / "segment", max_side=TRAINING["segment"]["max_side"], **split),
        "classify": export_classification(
            specimens, work / "classify", "phenology", max_side=TRAINING["classify"]["max_side"], **split
        ),
    }
    seconds["export"] = time.perf_counter() - start

    metrics: dict[str, dict[str, float]] = {}
    for kind, dataset in datasets.items():
        options = {k: v for k, v in TRAINING[kind].items() if k != "max_side"}
        trained = train_yolo(dataset, kind, work / f"train-{kind}", seed=0, **options)
        shutil.copyfile(trained.path, root / f"{kind}.pt")
        metrics[kind] = dict(trained.metrics)
        seconds[kind] = trained.seconds

    val_ids = set(datasets["detect"].splits["val"])
    info = {
        "metrics": metrics,
        "snapshots": {kind: dict(dataset.snapshot) for kind, dataset in datasets.items()},
        "val_seeds": sorted(r.seed for r in manifest.sheets if Path(r.image).stem in val_ids),
        "width": manifest.width,
        "height": manifest.height,
        "seconds": seconds,
    }
    (root / "info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    shutil.rmtree(work)  # sheets, data sets and runs: about 20 MB nobody reads again
    return info


def trained_models_in(cache_dir: Path) -> TrainedModels:
    """The cached models for the current code, built first if missing."""
    root = cache_dir / cache_key()
    cached = (root / "info.json").is_file()
    if not cached:
        building = cache_dir / f".building-{os.getpid()}-{root.name}"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        start = time.perf_counter()
        build_models(building)
        info = json.loads((building / "info.json").read_text(encoding="utf-8"))
        info["seconds"]["total"] = time.perf_counter() - start
        (building / "info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        try:
            building.rename(root)  # atomic: a concurrent run sees a whole cache entry or none
        except OSError:  # another session finished first: its files are as good as ours
            shutil.rmtree(building, ignore_errors=True)
    info = json.loads((root / "info.json").read_text(encoding="utf-8"))
    return TrainedModels(
        detect=root / "detect.pt",
        segment=root / "segment.pt",
        classify=root / "classify.pt",
        metrics=info["metrics"],
        snapshots=info["snapshots"],
        val_seeds=tuple(info["val_seeds"]),
        width=info["width"],
        height=info["height"],
        root=root,
        seconds=info["seconds"] if not cached else {},
        cached=cached,
    )
