"""Training Ultralytics YOLO models on data sets from :mod:`herbarium.labels.yolo_dataset`, offline and quiet.

Training runs on the CPU unless CUDA is there, deterministically, without plots, and writes
everything Ultralytics prints to a log file instead of stdout (where CLI users read ``--json``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from catalog.ultralytics_offline import configure_offline_ultralytics
from catalog.weights import yolo_class
from herbarium.labels.yolo_dataset import KINDS, Kind, TrainingDataset
from training.cores import all_cores

Progress = Callable[[int, int], None]  # (epochs done, epochs in all)

BASE_MODELS: Mapping[Kind, str] = {
    "detect": "yolo11n.yaml",
    "segment": "yolo11n-seg.yaml",
    "classify": "yolo11n-cls.yaml",
}
# Ultralytics' result keys, under the names PlantAI records in the catalog.
METRIC_KEYS: Mapping[Kind, Mapping[str, str]] = {
    "detect": {"mAP50": "metrics/mAP50(B)", "mAP50-95": "metrics/mAP50-95(B)"},
    "segment": {
        "mask_mAP50": "metrics/mAP50(M)",
        "mask_mAP50-95": "metrics/mAP50-95(M)",
        "box_mAP50-95": "metrics/mAP50-95(B)",
    },
    "classify": {"top1": "metrics/accuracy_top1", "top5": "metrics/accuracy_top5"},
}
LOG_NAME = "train.log"


class TrainingError(RuntimeError):
    """Training that could not start or finish; the log file has Ultralytics' own account."""


REPO_ROOT = Path(__file__).resolve().parents[1]
# Code whose change changes what training on generated sheets produces (paths relative to the repository).
MODEL_CODE_SOURCES = (
    "herbarium/synth",
    "herbarium/labels/model.py",
    "herbarium/labels/yolo.py",
    "herbarium/taxonomy.py",
    "herbarium/imaging.py",
    "herbarium/labels/yolo_dataset.py",
    "training/yolo_trainer.py",
)


def model_code_key(extra_sources: Iterable[str], settings: Mapping[str, Any]) -> str:
    """A hash of the model-making code, ``extra_sources``, ``settings`` and the Ultralytics and torch versions.

    Cached models (the default models, the tests' tiny models) are rebuilt exactly when it changes.
    """
    digest = hashlib.sha256()
    for source in (*MODEL_CODE_SOURCES, *extra_sources):
        path = REPO_ROOT / source
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(REPO_ROOT).as_posix().encode())
            digest.update(file.read_bytes())
    versions = [metadata.version("ultralytics"), metadata.version("torch")]
    digest.update(json.dumps({**settings, "versions": versions}, sort_keys=True, default=str).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class TrainedWeights:
    """The best weights of a run, their validation metrics and where the run's log is."""

    path: Path
    metrics: Mapping[str, float]
    log: Path
    kind: Kind
    names: tuple[str, ...]
    seconds: float
    parameters: Mapping[str, Any] = field(default_factory=dict)


def train_yolo(
    dataset: TrainingDataset | str | Path,
    kind: Kind,
    out_dir: str | Path,
    epochs: int,
    imgsz: int,
    batch: int,
    base: str | Path | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    **options: Any,
) -> TrainedWeights:
    """Train a ``kind`` model on ``dataset`` (a data set, a data.yaml or a classification folder) into ``out_dir``.

    ``base`` is an Ultralytics model yaml (random weights, the default per kind) or a .pt file to
    fine-tune. ``options`` go to Ultralytics' ``train`` as they are (e.g. ``lr0``, ``mosaic``).
    """
    if kind not in KINDS:
        raise TrainingError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if isinstance(dataset, TrainingDataset):
        if dataset.kind != kind:
            raise TrainingError(f"data set {dataset.root} is a {dataset.kind} data set, not {kind}")
        data = dataset.data
    else:
        data = Path(dataset)
    if not data.exists():
        raise TrainingError(f"data set {data} does not exist")
    for name, value in (("epochs", epochs), ("imgsz", imgsz), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise TrainingError(f"{name}: expected a positive integer, got {value!r}")
    base = base if base is not None else BASE_MODELS[kind]
    if Path(base).suffix == ".pt" and not Path(base).is_file():
        raise TrainingError(f"base weights {base} do not exist")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG_NAME

    configure_offline_ultralytics()  # before anything imports ultralytics
    import torch

    parameters: dict[str, Any] = {
        "data": str(data),
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "seed": seed,
        "device": "0" if torch.cuda.is_available() else "cpu",
        "workers": 0,  # the main process loads: no worker start-up cost, and nothing left running
        "deterministic": True,
        "plots": False,
        "project": str(out),
        "name": "run",
        "exist_ok": True,
        "verbose": False,
        **options,
    }
    started = time.perf_counter()
    with logged_to(log), all_cores():
        try:
            model = yolo_class()(str(base), task=kind)
            if model.task != kind:
                raise TrainingError(f"base {base} is a {model.task} model, not {kind}")
            if progress is not None:
                model.add_callback("on_train_epoch_end", lambda trainer: progress(trainer.epoch + 1, trainer.epochs))
            model.train(**parameters)
        except TrainingError:
            raise
        except Exception as error:  # Ultralytics raises many kinds; the log has its own account
            raise TrainingError(f"training {kind} on {data} failed: {error} (log: {log})") from error
    trainer: Any = model.trainer
    best = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
    results = {str(k): float(v) for k, v in (trainer.metrics or {}).items()}
    metrics = {name: results[key] for name, key in METRIC_KEYS[kind].items() if key in results}
    names = tuple(str(trainer.data["names"][i]) for i in sorted(trainer.data["names"]))
    return TrainedWeights(
        path=best,
        metrics=metrics,
        log=log,
        kind=kind,
        names=names,
        seconds=time.perf_counter() - started,
        parameters={**parameters, "base": str(base)},
    )


@contextlib.contextmanager
def logged_to(log: Path) -> Iterator[None]:
    """Send Ultralytics' logger, prints and progress bars to ``log`` (appended) for the duration."""
    logger = logging.getLogger("ultralytics")
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level
    with log.open("a", encoding="utf-8") as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        finally:
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
