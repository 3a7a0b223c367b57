"""The four default models, trained from scratch on generated sheets, measured, registered and promoted.

``bootstrap_default_models(catalog, work_dir)`` generates training sheets and a held-out set (other
seeds), exports them with :mod:`connectors.training_data`, trains with :func:`connectors.training.train_yolo`
(Ultralytics yamls, no downloaded weights), measures each model on the held-out sheets, registers
it with those metrics (``{"dataset": "synth-heldout-<profile>-<key>", ...}``), promotes it and
stores its ONNX sibling, so that backends serve it with ONNX Runtime.

The key hashes the code that generates, exports and trains, the profile and the library versions.
A model whose production version was measured on the held-out set of the current key is not
trained again: a second run with nothing changed returns at once.

When real sheets with plant masks are given (``images/<id>.jpg``, ``masks/<id>.png``, the layout of
``../shared/data/herbarium-samples/plant-masks``), the segmenter's mean plant-mask IoU on them is
reported and recorded as its ``real_plant_iou`` metric: how far training on generated sheets
carries to real scans.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from catalog.errors import CatalogError
from catalog.predictors import SCORE_THRESHOLD_METRIC
from catalog.records import VersionInfo
from catalog.registry import ONNX_ROLE, Catalog
from catalog.weights import quiet_ultralytics, yolo_class
from connectors.training import TrainedWeights, model_code_key, train_yolo
from connectors.training_data import (
    Kind,
    Specimen,
    TrainingDataset,
    export_classification,
    export_detection,
    export_segmentation,
    synthetic_specimens,
)
from herbarium.imaging import read_image
from herbarium.labels.model import SpecimenLabels
from herbarium.synth import Manifest, load_manifest, write_sheets
from herbarium.taxonomy import NONVEGETAL, ORGANS

_VAL_FRACTION = 0.15  # of the training sheets, for Ultralytics' own check after the last epoch
HELD_OUT_SEED = 1_000_000  # training sheets use seeds from 0: the two sets never share a sheet
REPORT_NAME = "bootstrap.json"
REAL_IOU_METRIC = "real_plant_iou"
HELD_OUT_IOU_METRIC = "plant_iou"
CANDIDATE_THRESHOLDS = (0.05, 0.1, 0.15, 0.25)  # the segmenter's score threshold is chosen among these

Progress = Callable[[str, int, int], None]  # (stage, done, total); stage names are in STAGES


class BootstrapError(RuntimeError):
    """A bootstrap that could not finish; the message names the stage and the model."""


@dataclass(frozen=True)
class Training:
    """How one model trains: Ultralytics' epochs, input size and batch, and the export's image size."""

    epochs: int
    imgsz: int
    batch: int
    max_side: int  # long side of the images written into the data set
    options: Mapping[str, Any] = field(default_factory=dict)  # more train() arguments


@dataclass(frozen=True)
class Profile:
    """How many sheets, of what size, and how each model trains."""

    name: str
    sheets: int
    held_out: int
    sheet_size: int  # long side of generated sheets, px
    training: Mapping[str, Training]  # per model name


@dataclass(frozen=True)
class ModelPlan:
    """One default model: its catalog name and task, the Ultralytics kind and what it learns."""

    name: str
    task: str
    kind: Kind
    export: Callable[[Sequence[Specimen], Path, int], TrainingDataset]


def _export_nonvegetal(specimens: Sequence[Specimen], out: Path, max_side: int) -> TrainingDataset:
    return export_detection(specimens, out, NONVEGETAL, val_fraction=_VAL_FRACTION, max_side=max_side)


def _export_organs(specimens: Sequence[Specimen], out: Path, max_side: int) -> TrainingDataset:
    return export_detection(specimens, out, ORGANS, val_fraction=_VAL_FRACTION, max_side=max_side)


def _export_plant(specimens: Sequence[Specimen], out: Path, max_side: int) -> TrainingDataset:
    # One instance per sheet, the union of its plants: from scratch, a few minutes of CPU learn the
    # plant mask (what the IoU measures) far better from one object than from up to four touching ones.
    merged = [(path, _merged_plant(labels)) for path, labels in specimens]
    return export_segmentation(merged, out, val_fraction=_VAL_FRACTION, max_side=max_side)


def _merged_plant(specimen: SpecimenLabels) -> SpecimenLabels:
    masks = specimen.masks  # generated sheets: one plant mask per plant, nothing else
    if len(masks) < 2:
        return specimen
    union = np.logical_or.reduce([label.mask for label in masks])
    others = [label for label in specimen.labels if not any(label is mask for mask in masks)]
    return specimen.with_labels([*others, replace(masks[0], mask=union, attributes={})])


def _export_phenology(specimens: Sequence[Specimen], out: Path, max_side: int) -> TrainingDataset:
    return export_classification(specimens, out, "phenology", val_fraction=_VAL_FRACTION, max_side=max_side)


MODELS: tuple[ModelPlan, ...] = (
    ModelPlan("nonvegetal-detector", "detect-nonvegetal", "detect", _export_nonvegetal),
    ModelPlan("organ-detector", "detect-organs", "detect", _export_organs),
    ModelPlan("plant-segmenter", "segment-plant", "segment", _export_plant),
    ModelPlan("phenology-classifier", "phenology", "classify", _export_phenology),
)
MODEL_NAMES = tuple(plan.name for plan in MODELS)
# Progress stages: sheets, held-out, then per model "train <name>" (epochs) and "evaluate <name>"
# (measured on held-out sheets, on real sheets for the segmenter when given, registered).
STAGES = ("sheets", "held-out", *(f"{step} {n}" for n in MODEL_NAMES for step in ("train", "evaluate")))

# Small generated sets learn fastest without mosaic, with a short warm-up and AdamW; Ultralytics'
# per-epoch validation is off (it still validates after the last epoch), the held-out set measures.
_COMMON: Mapping[str, Any] = {"mosaic": 0.0, "warmup_epochs": 1, "val": False, "optimizer": "AdamW", "lr0": 0.003}
PROFILES: Mapping[str, Profile] = {
    # About 6-7 minutes on 2 CPU cores. Sheets are generated at 640 px and trained on at 256-320:
    # batches of 4 give more updates per second of CPU than bigger ones, which matters from scratch.
    "demo": Profile(
        name="demo",
        sheets=96,
        held_out=16,
        sheet_size=640,
        training={
            "nonvegetal-detector": Training(20, 256, 4, 256, _COMMON),
            "organ-detector": Training(16, 320, 4, 320, _COMMON),
            # A higher rate, a heavier class loss and wider hue jitter: scores rise faster, and dried
            # (brown) real plants pass the backends' 0.25 threshold more often (trials: real-sheet IoU
            # 0.19 with the common settings at lr0 0.004, 0.35 with these; 0.12 at lr0 0.003).
            "plant-segmenter": Training(30, 256, 4, 256, {**_COMMON, "lr0": 0.004, "cls": 2.0, "hsv_h": 0.05}),
            "phenology-classifier": Training(25, 160, 16, 192, _COMMON),
        },
    ),
    # About a minute: for tests of the machinery, not for useful models.
    "quick": Profile(
        name="quick",
        sheets=24,
        held_out=6,
        sheet_size=512,
        training={
            "nonvegetal-detector": Training(3, 192, 8, 192, _COMMON),
            "organ-detector": Training(2, 192, 8, 192, _COMMON),
            "plant-segmenter": Training(3, 192, 8, 192, _COMMON),
            "phenology-classifier": Training(2, 64, 16, 96, _COMMON),
        },
    ),
}


@dataclass(frozen=True)
class BootstrappedModel:
    """One default model after the bootstrap: its production version and held-out metrics."""

    name: str
    task: str
    version: str
    metrics: Mapping[str, float]
    dataset: str
    seconds: float  # training, evaluation and registration; 0 when cached
    cached: bool
    onnx: bool

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class BootstrapReport:
    """What a bootstrap did: per model, and the real-sheet IoU when real sheets were given."""

    profile: str
    key: str
    dataset: str  # the held-out set's name, as every model's metrics record it
    models: tuple[BootstrappedModel, ...]
    seconds: float
    stage_seconds: Mapping[str, float]
    work_dir: Path
    real_plant_iou: float | None = None
    real_sheets: int = 0
    real_samples_dir: Path | None = None

    @property
    def cached(self) -> bool:
        return all(model.cached for model in self.models)

    @property
    def trained(self) -> tuple[str, ...]:
        return tuple(model.name for model in self.models if not model.cached)

    def model(self, name: str) -> BootstrappedModel:
        return next(model for model in self.models if model.name == name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            work_dir=str(self.work_dir),
            real_samples_dir=str(self.real_samples_dir) if self.real_samples_dir else None,
            cached=self.cached,
            trained=list(self.trained),
            models=[{**asdict(m), "ref": m.ref, "metrics": dict(m.metrics)} for m in self.models],
            stage_seconds=dict(self.stage_seconds),
        )
        return data


def cache_key(profile: Profile | str) -> str:
    """A hash of the generator, export and training code, the profile and the library versions."""
    settings = {"profile": asdict(_profile(profile)), "held_out_seed": HELD_OUT_SEED}
    return model_code_key(["connectors/bootstrap.py"], settings)[:12]


def held_out_dataset_name(profile: Profile | str, key: str | None = None) -> str:
    """The name every default model's metrics give for the held-out set they were measured on."""
    profile = _profile(profile)
    return f"synth-heldout-{profile.name}-{key or cache_key(profile)}"


def bootstrap_default_models(
    catalog: Catalog,
    work_dir: str | Path,
    profile: str | Profile = "demo",
    real_samples_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> BootstrapReport:
    """Train, measure, register and promote the default models that the catalog lacks for the current key.

    ``work_dir`` receives the generated sheets, data sets and training runs (under ``<profile>-<key>/``)
    and ``bootstrap.json``, the report of the run that trained. ``progress(stage, done, total)`` follows each stage.
    """
    started = time.perf_counter()
    profile = _profile(profile)
    key = cache_key(profile)
    dataset = held_out_dataset_name(profile, key)
    root = Path(work_dir).resolve() / f"{profile.name}-{key}"
    real_dir = Path(real_samples_dir).resolve() if real_samples_dir is not None else None
    if real_dir is not None and not _real_sheet_ids(real_dir):
        raise BootstrapError(f"real samples: no images/<id>.jpg with masks/<id>.png under {real_dir}")
    report_progress: Progress = progress or (lambda stage, done, total: None)
    stage_seconds: dict[str, float] = {}

    current = {name: _production(catalog, name) for name in MODEL_NAMES}
    missing = [plan for plan in MODELS if not _descends_from_bootstrap(catalog, current[plan.name], dataset)]
    results: dict[str, BootstrappedModel] = {}
    for plan in MODELS:
        version = current[plan.name]
        if version is not None and plan not in missing:
            results[plan.name] = _model_result(version, seconds=0.0, cached=True)

    real_iou: float | None = None
    if missing:
        root.mkdir(parents=True, exist_ok=True)
        with _timed("sheets", stage_seconds):
            train_sheets = _sheets(root / "sheets", profile.sheets, profile.sheet_size, 0, "sheets", report_progress)
        with _timed("held-out", stage_seconds):
            held_out = _sheets(
                root / "held-out", profile.held_out, profile.sheet_size, HELD_OUT_SEED, "held-out", report_progress
            )
        specimens = synthetic_specimens(train_sheets.root)
        held_out_specimens = synthetic_specimens(held_out.root)
        for plan in missing:
            model_started = time.perf_counter()
            training = profile.training[plan.name]
            stage = f"train {plan.name}"
            report_progress(stage, 0, training.epochs)
            with _timed(stage, stage_seconds):
                trained = _train(plan, training, specimens, root, report_progress)
            stage = f"evaluate {plan.name}"
            steps = 3 if plan.kind == "segment" and real_dir is not None else 2
            report_progress(stage, 0, steps)
            with _timed(stage, stage_seconds):
                metrics = _evaluate(plan, trained, training, held_out, held_out_specimens, root / "eval" / plan.name)
                report_progress(stage, 1, steps)
                if plan.kind == "segment" and real_dir is not None:
                    threshold = metrics[SCORE_THRESHOLD_METRIC]
                    real_iou = metrics[REAL_IOU_METRIC] = _real_iou(trained.path, training, real_dir, threshold)
                    report_progress(stage, 2, steps)
                version = _register(catalog, plan, trained, training, metrics, dataset)
                shutil.rmtree(trained.path.parent, ignore_errors=True)  # the store has them; the log stays
                report_progress(stage, steps, steps)
            results[plan.name] = _model_result(version, time.perf_counter() - model_started, cached=False)

    segmenter = results["plant-segmenter"]
    if real_dir is not None and real_iou is None:
        real_iou = segmenter.metrics.get(REAL_IOU_METRIC)
        if real_iou is None:  # built before real sheets were given: measure the production model now
            with _timed("real sheets", stage_seconds):
                real_iou = _catalog_real_iou(catalog, segmenter, real_dir)
    report = BootstrapReport(
        profile=profile.name,
        key=key,
        dataset=dataset,
        models=tuple(results[name] for name in MODEL_NAMES),
        seconds=time.perf_counter() - started,
        stage_seconds=stage_seconds,
        work_dir=root,
        real_plant_iou=real_iou,
        real_sheets=len(_real_sheet_ids(real_dir)) if real_dir is not None else 0,
        real_samples_dir=real_dir,
    )
    if missing:  # a cached run leaves the report of the run that trained
        (root / REPORT_NAME).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report


# -- stages -----------------------------------------------------------------------------------


def _profile(profile: Profile | str) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise BootstrapError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}")
    return PROFILES[profile]


@contextlib.contextmanager
def _timed(stage: str, seconds: dict[str, float]) -> Iterator[None]:
    """Add the block's time to ``seconds[stage]``; errors name the stage."""
    started = time.perf_counter()
    try:
        yield
    except BootstrapError:
        raise
    except (CatalogError, OSError, ValueError, RuntimeError) as error:  # TrainingError is a RuntimeError
        raise BootstrapError(f"{stage}: {error}") from error
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - started


def _production(catalog: Catalog, name: str) -> VersionInfo | None:
    try:
        return catalog.version(name)
    except CatalogError:  # no such model, or none in production
        return None


def _built_with(version: VersionInfo | None, dataset: str) -> bool:
    return version is not None and version.metrics_dataset == dataset and version.artefact(ONNX_ROLE) is not None


def _descends_from_bootstrap(catalog: Catalog, version: VersionInfo | None, dataset: str) -> bool:
    """Production is this bootstrap's model or was retrained from it: either way, left as it is.

    Retraining from expert corrections promotes children of the bootstrapped version; a rerun
    must not put a fresh bootstrap model back over them.
    """
    seen: set[str] = set()
    while version is not None and version.version not in seen:
        if _built_with(version, dataset):
            return True
        seen.add(version.version)
        try:
            version = catalog.version(version.model, version.parent) if version.parent else None
        except CatalogError:  # an archived or foreign parent: the chain ends here
            version = None
    return False


def _model_result(version: VersionInfo, seconds: float, cached: bool) -> BootstrappedModel:
    return BootstrappedModel(
        name=version.model,
        task=version.task,
        version=version.version,
        metrics={k: float(v) for k, v in version.metrics.items()},
        dataset=version.metrics_dataset or "",
        seconds=seconds,
        cached=cached,
        onnx=version.artefact(ONNX_ROLE) is not None,
    )


def _sheets(out: Path, n: int, size: int, seed: int, stage: str, progress: Progress) -> Manifest:
    """Generated sheets, reused when ``out`` already holds this very set (same count, size and seed)."""
    try:
        manifest = load_manifest(out)
        if manifest.seed == seed and len(manifest.sheets) == n and max(manifest.width, manifest.height) == size:
            progress(stage, n, n)
            return manifest
    except ValueError:  # no manifest, or a broken one: generate
        pass
    shutil.rmtree(out, ignore_errors=True)
    return write_sheets(out, n=n, size=size, seed=seed, progress=lambda done, total: progress(stage, done, total))


def _train(
    plan: ModelPlan, training: Training, specimens: Sequence[Specimen], root: Path, progress: Progress
) -> TrainedWeights:
    stage = f"train {plan.name}"
    data = plan.export(specimens, root / "data" / plan.name, training.max_side)
    run = root / "runs" / plan.name
    shutil.rmtree(run, ignore_errors=True)
    return train_yolo(
        data,
        plan.kind,
        run,
        epochs=training.epochs,
        imgsz=training.imgsz,
        batch=training.batch,
        progress=lambda done, total: progress(stage, done, total),
        **training.options,
    )


def _evaluate(
    plan: ModelPlan,
    trained: TrainedWeights,
    training: Training,
    held_out: Manifest,
    specimens: Sequence[Specimen],
    out: Path,
) -> dict[str, float]:
    """Held-out metrics: detection mAP, mask mAP and plain plant-mask IoU, or classification top-1."""
    if plan.kind == "classify":
        return {"top1": _top1(trained.path, training, specimens, "phenology")}
    data = plan.export(specimens, out / "data", training.max_side)
    # Every held-out sheet is measured: the export's train and val splits are both validation images here.
    spec = json.loads(data.data.read_text(encoding="utf-8"))
    spec["val"] = [spec["train"], spec["val"]]
    eval_yaml = out / "held-out.yaml"
    eval_yaml.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    with quiet_ultralytics():
        model = yolo_class()(str(trained.path), task=plan.kind)
        validation = model.val(
            data=str(eval_yaml),
            split="val",
            imgsz=training.imgsz,
            batch=training.batch,
            device="cpu",
            workers=0,
            plots=False,
            verbose=False,
            project=str(out),
            name="val",
            exist_ok=True,
        )
    results = {str(k): float(v) for k, v in validation.results_dict.items()}
    metrics: dict[str, float] = {}
    suffix = "M" if plan.kind == "segment" else "B"
    prefix = "mask_" if plan.kind == "segment" else ""
    for name, ultralytics_key in (("mAP50", f"metrics/mAP50({suffix})"), ("mAP50-95", f"metrics/mAP50-95({suffix})")):
        if ultralytics_key in results:
            metrics[prefix + name] = results[ultralytics_key]
    if plan.kind == "segment":
        pairs = [(held_out.root / r.image, held_out.root / r.mask) for r in held_out.sheets]
        threshold, iou = _calibrated_threshold(trained.path, training.imgsz, pairs)
        metrics[HELD_OUT_IOU_METRIC] = iou
        metrics[SCORE_THRESHOLD_METRIC] = threshold
    return metrics


def _calibrated_threshold(weights: Path, imgsz: int, pairs: Sequence[tuple[Path, Path]]) -> tuple[float, float]:
    """The score threshold with the best held-out plant IoU, and that IoU (ties: the higher threshold).

    Models trained for minutes are under-confident; the backends' 0.25 drops whole plants (demo
    profile: held-out IoU 0.297 at 0.25, 0.468 at 0.05; real sheets 0.353 and 0.564).
    """
    scores = {t: _mean_plant_iou(_weights_predictor(weights, imgsz, t), pairs) for t in CANDIDATE_THRESHOLDS}
    best = max(scores, key=lambda t: (round(scores[t], 6), t))
    return best, scores[best]


def _top1(weights: Path, training: Training, specimens: Sequence[Specimen], trait: str) -> float:
    with quiet_ultralytics():
        model = yolo_class()(str(weights), task="classify")
    names = [str(model.names[i]) for i in sorted(model.names)]
    right = total = 0
    for path, labels in specimens:
        truth = next((c.label for c in labels.classifications if c.control == trait), None)
        if truth is None:
            continue
        picture = read_image(path, max_side=training.max_side).image
        with quiet_ultralytics():
            result = model.predict(picture, imgsz=training.imgsz, verbose=False)[0]
        right += names[int(result.probs.top1)] == truth
        total += 1
    if not total:
        raise BootstrapError(f"held-out sheets carry no {trait} value to measure the classifier on")
    return right / total


def _register(
    catalog: Catalog,
    plan: ModelPlan,
    trained: TrainedWeights,
    training: Training,
    metrics: Mapping[str, float],
    dataset: str,
) -> VersionInfo:
    run = catalog.create_training_run(
        plan.name,
        parameters={k: v for k, v in trained.parameters.items() if isinstance(v, str | int | float | bool)},
        dataset_snapshot=dataset,
        log_path=trained.log,
        status="succeeded",
    )
    version = catalog.register(
        plan.name,
        plan.task,
        trained.path,
        metrics={"dataset": dataset, **metrics},
        training_run_id=run.id,
        promote=True,
    )
    catalog.export_onnx(plan.name, version.version, imgsz=training.imgsz)
    return catalog.version(plan.name, version.version)


# -- plant-mask IoU -----------------------------------------------------------------------------

Mask = npt.NDArray[np.bool_]
MaskPredictor = Callable[[Path], Mask]  # an image file -> the plant mask at its full size


def plant_iou(predicted: Mask, truth: Mask) -> float:
    """Intersection over union of two plant masks; 1.0 when both are empty."""
    union = int(np.logical_or(predicted, truth).sum())
    return 1.0 if union == 0 else int(np.logical_and(predicted, truth).sum()) / union


def _read_mask(path: Path) -> Mask:
    with Image.open(path) as mask:
        return np.asarray(mask.convert("L")) > 127


def _mean_plant_iou(predict: MaskPredictor, pairs: Iterable[tuple[Path, Path]]) -> float:
    scores = []
    for image, mask in pairs:
        truth = _read_mask(mask)
        predicted = predict(image)
        if predicted.shape != truth.shape:
            raise BootstrapError(f"{image}: predicted mask {predicted.shape} but ground truth {truth.shape}")
        scores.append(plant_iou(predicted, truth))
    if not scores:
        raise BootstrapError("no sheets to measure the plant-mask IoU on")
    return float(np.mean(scores))


def _mask_predictor(predict: Callable[[Image.Image], Any], decode_side: int) -> MaskPredictor:
    """What the segmentation backend does: decode at the model's size, predict, union the masks at full size."""

    def masks(path: Path) -> Mask:
        image = read_image(path, max_side=decode_side)
        full = (image.original_height, image.original_width)
        result = predict(image.image)
        if result.masks is None:
            return np.zeros(full, dtype=bool)
        union = (result.masks.data.cpu().numpy() > 0.5).any(axis=0)
        resized = Image.fromarray(union).resize((image.original_width, image.original_height), Image.Resampling.NEAREST)
        return np.asarray(resized, dtype=bool)

    return masks


def _weights_predictor(weights: Path, imgsz: int, conf: float) -> MaskPredictor:
    with quiet_ultralytics():
        model = yolo_class()(str(weights), task="segment")

    def predict(picture: Image.Image) -> Any:
        with quiet_ultralytics():
            return model.predict(picture, imgsz=imgsz, conf=conf, retina_masks=True, verbose=False)[0]

    return _mask_predictor(predict, imgsz)


def _real_sheet_ids(real_dir: Path) -> list[str]:
    images = real_dir / "images"
    if not images.is_dir():
        return []
    return sorted(p.stem for p in images.glob("*.jpg") if (real_dir / "masks" / f"{p.stem}.png").is_file())


def _real_pairs(real_dir: Path) -> list[tuple[Path, Path]]:
    return [(real_dir / "images" / f"{i}.jpg", real_dir / "masks" / f"{i}.png") for i in _real_sheet_ids(real_dir)]


def _real_iou(weights: Path, training: Training, real_dir: Path, conf: float) -> float:
    return _mean_plant_iou(_weights_predictor(weights, training.imgsz, conf), _real_pairs(real_dir))


def _catalog_real_iou(catalog: Catalog, segmenter: BootstrappedModel, real_dir: Path) -> float:
    """The production segmenter as backends load it (ONNX when there is one) on the real sheets."""
    from catalog.predictors import load_model

    loaded = load_model(segmenter.ref, catalog=catalog)
    overrides = getattr(loaded.model, "overrides", None) or {}
    imgsz = int(overrides.get("imgsz") or 640) if loaded.framework != "onnx" else _onnx_imgsz(loaded.path)

    def predict(picture: Image.Image) -> Any:
        options: dict[str, Any] = {"conf": loaded.score_threshold, "retina_masks": True}
        if loaded.framework != "onnx":
            options["imgsz"] = imgsz
        return loaded.predict(picture, **options)[0]

    return _mean_plant_iou(_mask_predictor(predict, imgsz), _real_pairs(real_dir))


def _onnx_imgsz(path: Path) -> int:
    import ast

    import onnx

    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        size = ast.literal_eval(props["imgsz"])
        return int(max(size) if isinstance(size, list | tuple) else size)
    except Exception:  # no metadata: Ultralytics' default
        return 640


__all__ = [
    "MODELS",
    "MODEL_NAMES",
    "PROFILES",
    "REAL_IOU_METRIC",
    "STAGES",
    "BootstrapError",
    "BootstrapReport",
    "BootstrappedModel",
    "ModelPlan",
    "Profile",
    "Progress",
    "Training",
    "bootstrap_default_models",
    "cache_key",
    "held_out_dataset_name",
    "plant_iou",
]
