"""Retraining from expert corrections, gated: train a candidate, compare it with production, promote if not worse.

One job, :func:`retrain`, does it all and records it in the catalog's ``training_runs`` table:

1. **collect**: the newest annotation of every task in the given Label Studio projects, read with
   :func:`connectors.review.reviewed_sheet` (THE rules for states), kept when the expert marked the
   sheet ``validated``. Rejected regions never become targets (the exporters drop them), so a sheet
   whose regions were all rejected trains as a negative (an image without boxes) for detect/segment.
2. **export**: with :mod:`herbarium.labels.yolo_dataset` (YOLO detect/segment, classification folders),
   split by specimen with a fixed seed; the data set is frozen in the run folder and its snapshot
   (counts and a hash of every label file) is recorded with the run (``dataset_snapshot``).
   Classification images are cut to their centre square, the part Ultralytics classifies.
3. **train**: :func:`training.yolo_trainer.train_yolo`, fine-tuning from the production version's
   weights (or from the Ultralytics yaml for a new model); CPU unless CUDA is there.
4. **gate**: candidate and production are evaluated with Ultralytics ``val`` on the same held-out
   split (the same data yaml); the model's metric (:data:`GATE_METRICS`) decides. The candidate is
   registered in staging with its metrics, ``parent`` = the production version and the run id; it is
   promoted when ``candidate >= production - margin``, otherwise it stays in staging and the run
   records why. Production's figure is recorded on its own version too, keyed by the snapshot
   (:meth:`catalog.registry.Catalog.record_metrics`). Backends re-read the catalog every few
   seconds, so a promotion reaches them.

One job per model at a time: a run moves from ``queued`` to ``running`` only if no other run of the
same model is ``running`` (checked and written in one catalog transaction); a ``running`` run whose
process is gone (killed) is marked ``failed`` first. A job that fails is marked ``failed`` with the
error, and the production version is untouched: promotion is the job's very last write.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from catalog.errors import UnknownModelError
from catalog.records import TrainingRunInfo, VersionInfo
from catalog.registry import Catalog
from catalog.sheetnet.spec import FRAMEWORK as SHEETNET
from catalog.tasks import CLASSIFY_TRAIT, label_set_for, resolve_task
from connectors.review import reviewed_sheet
from herbarium.labels.yolo_dataset import (
    Kind,
    Specimen,
    TrainingDataset,
    export_classification,
    export_detection,
    export_segmentation,
)
from herbarium.settings import document_root as settings_document_root
from herbarium.taxonomy import LabelSet
from training.sheetnet_retraining import SheetNetRetraining
from training.yolo_trainer import BASE_MODELS, LOG_NAME, METRIC_KEYS, TrainingError, logged_to, train_yolo

# The metric that decides promotion, per Ultralytics task (names as training.yolo_trainer records them).
GATE_METRICS: Mapping[Kind, str] = {"detect": "mAP50-95", "segment": "mask_mAP50-95", "classify": "top1"}
VALIDATED = "validated"
RUNS_DIR = "training-runs"
SNAPSHOT_FILE = "snapshot.json"
Progress = Callable[[str, float], None]  # (step, fraction of the whole job done)


class RetrainingError(RuntimeError):
    """A retraining job that cannot run as asked; the message says why."""


@dataclass(frozen=True)
class RetrainSettings:
    """How a job trains. Defaults finish in minutes on a laptop CPU for a few hundred small sheets."""

    epochs: int = 12
    imgsz: int | None = None  # None: the production model's training size, else 320 (96 for classifiers)
    batch: int = 4
    max_side: int | None = 416  # images are reduced to this long side in the frozen data set
    val_fraction: float = 0.25
    seed: int = 0
    margin: float = 0.0  # promote when candidate >= production - margin
    only_validated: bool = True  # keep sheets the expert marked "validated" (else every annotated sheet)
    sheetnet: SheetNetRetraining = field(default_factory=SheetNetRetraining)  # when production is a SheetNet
    options: Mapping[str, Any] = field(
        default_factory=lambda: {"mosaic": 0.0, "warmup_epochs": 1, "val": False, "optimizer": "AdamW", "lr0": 0.001}
    )


@dataclass(frozen=True)
class RetrainResult:
    """What a job did: its run, the candidate (if registered), both scores and the decision."""

    run_id: int
    model: str
    status: str  # promoted, staged, failed
    metric: str
    candidate: str | None = None  # name@version
    production: str | None = None  # the production version it was compared with (None for a new model)
    candidate_score: float | None = None
    production_score: float | None = None
    margin: float = 0.0
    reason: str = ""
    snapshot: str | None = None
    log: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Collecting corrections


def corrections_from_tasks(
    tasks: Iterable[Mapping[str, Any]], document_root: Path | None, *, only_validated: bool = True
) -> list[Specimen]:
    """(image path, expert labels) of each task whose newest annotation is usable for training.

    Images must be local files under ``document_root`` (Label Studio's local-files URLs).
    """
    from connectors.sync import image_path, newest_annotation
    from herbarium.labels.labelstudio import task_image_size

    out: list[Specimen] = []
    for task in tasks:
        annotation = newest_annotation([a for a in task.get("annotations") or () if isinstance(a, Mapping)])
        if annotation is None:
            continue
        path = image_path(str((task.get("data") or {}).get("image") or ""), document_root)
        if path is None or not path.is_file():
            raise RetrainingError(
                f"task {task.get('id')}: its image is not a local file under the document root ({document_root})"
            )
        size = task_image_size(task)
        if size is None:
            from herbarium.imaging import oriented_size

            size = oriented_size(path)
        sheet = reviewed_sheet(annotation, size[0], size[1])
        if only_validated and sheet.review != VALIDATED:
            continue
        out.append((path, sheet.labels))
    return out


def collect_corrections(
    client: Any, projects: Sequence[int], document_root: Path | None = None, *, only_validated: bool = True
) -> list[Specimen]:
    """The expert-reviewed sheets of ``projects`` (Label Studio SDK client), as (image path, labels)."""
    from connectors.sync.reader import TaskReader

    root = document_root or settings_document_root()
    out: list[Specimen] = []
    for project in projects:
        reader = TaskReader(client, int(project))
        for page, _total in reader.pages(None, 500):
            out += corrections_from_tasks(page, root, only_validated=only_validated)
    return out


def _finish(catalog: Catalog, run_id: int, status: str, **facts: Any) -> None:
    run = catalog.training_run(run_id)
    catalog.update_training_run(run_id, status=status, parameters={**run.parameters, **facts})


# ---------------------------------------------------------------------------------------------
# Export, train, evaluate


def export_for(
    kind: Kind, specimens: Sequence[Specimen], out_dir: Path, label_set: LabelSet, trait: str, settings: RetrainSettings
) -> TrainingDataset:
    fraction, seed, side = settings.val_fraction, settings.seed, settings.max_side
    if kind == "detect":
        return export_detection(specimens, out_dir, label_set, val_fraction=fraction, seed=seed, max_side=side)
    if kind == "segment":
        return export_segmentation(specimens, out_dir, label_set, val_fraction=fraction, seed=seed, max_side=side)
    return export_classification(specimens, out_dir, trait, label_set, val_fraction=fraction, seed=seed, max_side=side)


def centre_squares(root: Path) -> int:
    """Crop every image of a classification data set to its centre square; returns how many.

    Ultralytics classifies the centre square of an image (resize, then centre crop) but trains on
    the whole image squeezed square: on portrait sheets a new trait's classifier trained on 30 of
    them then got 11 of those 30 wrong, against 1 when trained on the centre squares (trials).
    """
    from PIL import Image

    count = 0
    for path in sorted(root.glob("*/*/*.jpg")):
        with Image.open(path) as image:
            width, height = image.size
            side = min(width, height)
            if width == height:
                continue
            left, top = (width - side) // 2, (height - side) // 2
            square = image.crop((left, top, left + side, top + side))
        path.unlink()  # it may be a link to the expert's original: never write through it
        square.save(path, quality=95)
        count += 1
    return count


def evaluate(weights: Path, dataset: TrainingDataset, imgsz: int, batch: int, log: Path) -> dict[str, float]:
    """Ultralytics ``val`` of ``weights`` on the data set's held-out split; PlantAI's metric names."""
    from catalog.ultralytics_offline import configure_offline_ultralytics

    configure_offline_ultralytics()
    import torch

    from catalog.weights import yolo_class

    with logged_to(log):
        model = yolo_class()(str(weights), task=dataset.kind)
        results = model.val(
            data=str(dataset.data),
            split="val",
            imgsz=imgsz,
            batch=batch,
            device="0" if torch.cuda.is_available() else "cpu",
            workers=0,
            plots=False,
            verbose=False,
            project=str(log.parent / "val"),
            name=weights.stem,
            exist_ok=True,
        )
    values = {str(k): float(v) for k, v in (results.results_dict or {}).items()}
    return {name: values[key] for name, key in METRIC_KEYS[dataset.kind].items() if key in values}


def _train_imgsz(weights: Path | None, kind: Kind) -> int:
    default = 96 if kind == "classify" else 320
    if weights is None:
        return default
    import torch

    checkpoint = torch.load(str(weights), map_location="cpu", weights_only=False)
    args = checkpoint.get("train_args") if isinstance(checkpoint, dict) else None
    size = args.get("imgsz") if isinstance(args, dict) else None
    return int(size) if isinstance(size, int) and size > 0 else default


# ---------------------------------------------------------------------------------------------
# The job


def queue_run(catalog: Catalog, model: str, **parameters: Any) -> TrainingRunInfo:
    """A ``queued`` training run for ``model`` (the job record; the work happens in :func:`retrain_specimens`)."""
    return catalog.create_training_run(model, parameters=parameters, status="queued")


def retrain_specimens(
    catalog: Catalog,
    model: str,
    specimens: Sequence[Specimen],
    *,
    settings: RetrainSettings | None = None,
    run_id: int | None = None,
    labels: Sequence[str] | None = None,
    task: str | None = None,
    progress: Progress | None = None,
    changed_by: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> RetrainResult:
    """Train a candidate for ``model`` on ``specimens``, gate it against production, register and maybe promote.

    For a model not in the catalog yet, give ``task`` (a trait name for a classifier) and ``labels``:
    it trains from the Ultralytics yaml and the first version is promoted when it trains at all.
    Failures mark the run ``failed`` and re-raise; the catalog's production version is never touched
    before the very end.
    """
    settings = settings or RetrainSettings()
    started = time.perf_counter()
    if run_id is None:
        # ``extra`` may name the trigger (a new trait does).
        run_id = queue_run(catalog, model, **{"trigger": "direct", **dict(extra or {})}).id
    catalog.acquire_run(run_id)
    run_dir = catalog.home / RUNS_DIR / f"{run_id:06d}-{model}"
    log = run_dir / LOG_NAME
    run_dir.mkdir(parents=True, exist_ok=True)
    catalog.update_training_run(run_id, log_path=log)

    def step(message: str, fraction: float) -> None:
        with log.open("a", encoding="utf-8") as stream:
            stream.write(f"[plantai {time.strftime('%H:%M:%S')}] {message}\n")
        if progress is not None:
            progress(message, fraction)

    try:
        result = _run(catalog, model, specimens, settings, run_id, run_dir, log, labels, task, step, changed_by)
    except BaseException as error:  # killed threads (KeyboardInterrupt, SystemExit) fail the run too
        reason = f"{type(error).__name__}: {error}"
        with log.open("a", encoding="utf-8") as stream:
            stream.write(traceback.format_exc())
        _finish(catalog, run_id, "failed", reason=reason, outcome="failed")
        raise
    result = replace(result, seconds=time.perf_counter() - started)
    return result


def _run(
    catalog: Catalog,
    model: str,
    specimens: Sequence[Specimen],
    settings: RetrainSettings,
    run_id: int,
    run_dir: Path,
    log: Path,
    labels: Sequence[str] | None,
    task: str | None,
    step: Progress,
    changed_by: str | None,
) -> RetrainResult:
    production: VersionInfo | None
    try:
        info = catalog.get(model)
    except UnknownModelError:
        if task is None:
            raise RetrainingError(f"no model {model!r} in the catalog: give its task to train a new one") from None
        spec = resolve_task(task)
        if labels is None and spec.known_label_set is None:
            raise RetrainingError(f"new trait {spec.task!r}: give its labels") from None
        model_labels = tuple(labels) if labels is not None else spec.known_label_set.classes  # type: ignore[union-attr]
        production = None
    else:
        spec = resolve_task(info.task)
        model_labels = info.labels
        production = catalog.version(model) if info.production is not None else None
    if production is not None and production.framework == SHEETNET:
        return _run_sheetnet(catalog, model, production, spec.task, specimens, settings, run_id, run_dir, log, step,
                             changed_by)  # fmt: skip
    kind: Kind = spec.yolo_task  # type: ignore[assignment]
    label_set = label_set_for(spec, model_labels)
    metric = GATE_METRICS[kind]

    step(f"exporting {len(specimens)} corrected sheets as a {kind} data set", 0.05)
    dataset = export_for(kind, specimens, run_dir / "data", label_set, spec.task, settings)
    if kind == "classify":
        centre_squares(dataset.root)
    snapshot_id = f"{kind}-{dataset.snapshot['sha256'][:16]}"
    (run_dir / SNAPSHOT_FILE).write_text(
        json.dumps({**dataset.snapshot, "id": snapshot_id, "splits": dataset.splits}, indent=2), encoding="utf-8"
    )
    base: Path | None = None
    if production is not None:
        base = run_dir / f"{model}-{production.version}.pt"  # a copy: Ultralytics never writes into the store
        shutil.copyfile(catalog.artefact_path(production), base)
    imgsz = settings.imgsz or _train_imgsz(base, kind)
    parameters = {
        "epochs": settings.epochs,
        "imgsz": imgsz,
        "batch": settings.batch,
        "seed": settings.seed,
        "margin": settings.margin,
        "base": production.ref if production is not None else BASE_MODELS[kind],
        "snapshot": dataset.snapshot,
        "options": dict(settings.options),
    }
    current = catalog.training_run(run_id)
    catalog.update_training_run(run_id, parameters={**current.parameters, **parameters})
    catalog.update_training_run(run_id, dataset_snapshot=snapshot_id)

    step(f"training {settings.epochs} epochs from {parameters['base']}", 0.1)

    def epoch_done(done: int, total: int) -> None:
        step(f"epoch {done}/{total}", 0.1 + 0.7 * done / total)

    trained = train_yolo(
        dataset,
        kind,
        run_dir,
        epochs=settings.epochs,
        imgsz=imgsz,
        batch=settings.batch,
        base=base,
        seed=settings.seed,
        progress=epoch_done,
        **dict(settings.options),
    )
    step("evaluating the candidate and production on the same held-out split", 0.85)
    candidate_metrics = evaluate(trained.path, dataset, imgsz, settings.batch, log)
    production_metrics = evaluate(base, dataset, imgsz, settings.batch, log) if base is not None else {}
    return _gate_and_register(
        catalog, model, spec.task if kind != "classify" else f"{CLASSIFY_TRAIT}:{spec.task}", list(model_labels),
        trained.path, metric, candidate_metrics, production_metrics, production, snapshot_id, settings.margin,
        run_id, log, step, changed_by,
    )  # fmt: skip


def _gate_and_register(
    catalog: Catalog,
    model: str,
    task: str,
    labels: list[str],
    weights: Path,
    metric: str,
    candidate_metrics: Mapping[str, float],
    production_metrics: Mapping[str, float],
    production: VersionInfo | None,
    snapshot_id: str,
    margin: float,
    run_id: int,
    log: Path,
    step: Progress,
    changed_by: str | None,
) -> RetrainResult:
    """The gate: register the candidate with both figures, promote it when not worse than production by ``margin``."""
    candidate_score = candidate_metrics.get(metric)
    production_score = production_metrics.get(metric)
    if candidate_score is None:
        raise RetrainingError(f"the evaluation gave no {metric} for the candidate")
    if production is not None and production_metrics:
        # Production's own record keeps its figure on this snapshot too, beside the candidate's.
        catalog.record_metrics(model, production.version, dict(production_metrics), dataset=snapshot_id)
    if production is None:
        promote, reason = True, "first version of a new model"
    elif production_score is None:
        promote, reason = True, f"production gave no {metric} on the held-out split"
    elif candidate_score >= production_score - margin:
        promote = True
        reason = f"{metric} {candidate_score:.4f} >= production {production_score:.4f} - margin {margin}"
    else:
        promote = False
        reason = (
            f"{metric} {candidate_score:.4f} < production {production.ref} {production_score:.4f} "
            f"- margin {margin}: left in staging"
        )
    metrics: dict[str, Any] = {"dataset": snapshot_id, **candidate_metrics}
    metrics.update({f"production_{k}": v for k, v in production_metrics.items()})
    step(f"registering the candidate ({reason})", 0.95)
    registered = catalog.register(
        model,
        task=task,
        weights=weights,
        labels=labels,
        metrics=metrics,
        parent=production.version if production is not None else None,
        training_run_id=run_id,
        registered_by=changed_by or "plantai-retraining",
    )
    if registered.framework == SHEETNET:  # backends serve a SheetNet through its ONNX sibling
        catalog.export_onnx(model, registered.version)
    if promote:  # the one write that changes what backends serve
        catalog.promote(model, registered.version, changed_by=changed_by or "plantai-retraining")
    status = "promoted" if promote else "staged"
    result = RetrainResult(
        run_id=run_id,
        model=model,
        status=status,
        metric=metric,
        candidate=registered.ref,
        production=production.ref if production is not None else None,
        candidate_score=candidate_score,
        production_score=production_score,
        margin=margin,
        reason=reason,
        snapshot=snapshot_id,
        log=str(log),
    )
    _finish(
        catalog,
        run_id,
        "succeeded",
        outcome=status,
        reason=reason,
        candidate=registered.ref,
        candidate_metrics=candidate_metrics,
        production=result.production,
        production_metrics=production_metrics,
    )
    step(f"done: {registered.ref} {status}", 1.0)
    return result


def _run_sheetnet(
    catalog: Catalog,
    model: str,
    production: VersionInfo,
    task: str,
    specimens: Sequence[Specimen],
    settings: RetrainSettings,
    run_id: int,
    run_dir: Path,
    log: Path,
    step: Progress,
    changed_by: str | None,
) -> RetrainResult:
    """A SheetNet production model: fine-tune its own file, gate on the same held-out sheets, as for YOLO."""
    from training.sheetnet_retraining import retrain_sheetnet

    sheetnet = settings.sheetnet
    current = catalog.training_run(run_id)
    parameters = {
        **sheetnet.training.to_parameters(),
        "val_fraction": sheetnet.val_fraction,
        "seed": sheetnet.seed,
        "margin": settings.margin,
        "base": production.ref,
    }
    catalog.update_training_run(run_id, parameters={**current.parameters, **_flat(parameters)})
    candidate = retrain_sheetnet(catalog.artefact_path(production), task, specimens, run_dir, sheetnet, step)
    (run_dir / SNAPSHOT_FILE).write_text(
        json.dumps({**candidate.snapshot, "id": candidate.snapshot_id}, indent=2), encoding="utf-8"
    )
    catalog.update_training_run(run_id, dataset_snapshot=candidate.snapshot_id)
    return _gate_and_register(
        catalog, model, task, list(production.labels), candidate.path, candidate.metric, candidate.candidate_metrics,
        candidate.production_metrics, production, candidate.snapshot_id, settings.margin, run_id, log, step,
        changed_by,
    )  # fmt: skip


def _flat(values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe parameters: nested settings as JSON text."""
    return {k: v if isinstance(v, str | int | float | bool) or v is None else json.dumps(v) for k, v in values.items()}


def retrain(
    catalog: Catalog,
    model: str,
    client: Any,
    projects: Sequence[int],
    *,
    settings: RetrainSettings | None = None,
    run_id: int | None = None,
    document_root: Path | None = None,
    progress: Progress | None = None,
    trigger: str = "direct",
) -> RetrainResult:
    """Retrain ``model`` from the expert corrections of ``projects`` (see the module doc)."""
    settings = settings or RetrainSettings()
    if run_id is None:
        run_id = queue_run(catalog, model, trigger=trigger, projects=list(projects)).id
    try:
        specimens = collect_corrections(client, projects, document_root, only_validated=settings.only_validated)
        if len(specimens) < 2:
            raise RetrainingError(
                f"projects {list(projects)} have {len(specimens)} validated sheets; at least 2 are needed"
            )
    except Exception as error:
        _finish(catalog, run_id, "failed", reason=f"{type(error).__name__}: {error}", outcome="failed")
        raise
    return retrain_specimens(catalog, model, specimens, settings=settings, run_id=run_id, progress=progress)


__all__ = [
    "GATE_METRICS",
    "RetrainResult",
    "RetrainSettings",
    "RetrainingError",
    "TrainingError",
    "centre_squares",
    "collect_corrections",
    "corrections_from_tasks",
    "evaluate",
    "queue_run",
    "retrain",
    "retrain_specimens",
]
