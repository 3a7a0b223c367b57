"""The four default models: one SheetNet (pretrained encoder) trained on real, generated and composite sheets.

``bootstrap_default_models(catalog, work_dir)`` trains one SheetNet (:mod:`catalog.sheetnet`) whose
heads are the non-vegetal detector, the organ detector, the plant segmenter and the phenology
classifier, measures it, and registers the one file four times, once per catalog model, each with
its own metrics and its ONNX sibling. Backends run the file once per sheet for all four.

What it learns from:

- the real sample sheets, when a samples folder is given (``../shared/data/herbarium-samples``
  by default): plant masks, the team's boxes (:mod:`herbarium.real_sheets`) and the UNB phenology
  records. Every :data:`REAL_HELD_OUT_EVERY`-th real sheet of each collection is held out: it never
  trains the model and it is what the ``real_*`` metrics are measured on;
- copy-paste composites of those real plants and elements on generated backgrounds and papers;
- generated sheets (:mod:`herbarium.synth`), and another set of them held out for the ``*`` metrics.

Without real sheets it learns from generated sheets alone and records only the generated held-out
figures (the floor; the README says what that floor reaches on real sheets).

The key hashes the code that makes the model, the team's annotations, the profile and the library
versions, and whether real sheets were used: a second run with nothing changed returns at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.errors import CatalogError
from catalog.predictors import SCORE_THRESHOLD_METRIC
from catalog.records import VersionInfo
from catalog.registry import ONNX_ROLE, Catalog
from catalog.sheetnet.spec import SheetNetSpec
from herbarium.real_sheets import ANNOTATIONS_DIR, RealSheet, load_real_sheets
from training.box_decoder import BoxDecoderTraining
from training.pools import PoolSizes
from training.sheetnet_trainer import SheetNetTraining, Window
from training.yolo_trainer import model_code_key

if TYPE_CHECKING:
    from catalog.sheetnet.network import SheetNet
    from training.pools import Pools
    from training.sheetnet_trainer import TrainingOutcome, TraitFit

HELD_OUT_SEED = 1_000_000  # generated held-out sheets: seeds no training sheet uses
REAL_HELD_OUT_EVERY = 4  # every 4th real sheet of a collection measures the model and never trains it
REPORT_NAME = "bootstrap.json"
REAL_IOU_METRIC = "real_plant_iou"
Progress = Callable[[str, int, int], None]  # (stage, done, total); stage names are in STAGES


class BootstrapError(RuntimeError):
    """A bootstrap that could not finish; the message names the stage."""


@dataclass(frozen=True)
class ModelPlan:
    """One default model: its catalog name and the task (SheetNet head) it serves."""

    name: str
    task: str
    metric_prefix: str  # which of the measured figures are this model's


MODELS: tuple[ModelPlan, ...] = (
    ModelPlan("nonvegetal-detector", "detect-nonvegetal", "nonvegetal"),
    ModelPlan("organ-detector", "detect-organs", "organs"),
    ModelPlan("plant-segmenter", "segment-plant", "plant"),
    ModelPlan("phenology-classifier", "phenology", "trait"),
)
MODEL_NAMES = tuple(plan.name for plan in MODELS)
STAGES = ("sheets", "held-out", "train", "features", "train boxes", "trait", "evaluate", "register")


@dataclass(frozen=True)
class Profile:
    """How much the bootstrap generates and trains, and at what size."""

    name: str
    input_side: int
    held_out: int  # generated held-out sheets
    pools: PoolSizes
    training: SheetNetTraining  # the whole network on crops: the mask, the encoder, the box heads' start
    boxes: BoxDecoderTraining  # then the box decoder alone, on cached encoder features
    # Score thresholds the backends use (a version's ``score_threshold``), set by eye on one fold's held-out
    # real sheets; the figures in bench/real_sheets.py (average precision) do not depend on them.
    thresholds: Mapping[str, float] = field(
        default_factory=lambda: {"detect-nonvegetal": 0.3, "detect-organs": 0.25, "segment-plant": 0.5}
    )


PROFILES: Mapping[str, Profile] = {
    # About 18 minutes on 2 CPU cores (measured), most of it training (time budgets shorten it on a slower one).
    "demo": Profile(
        name="demo",
        input_side=768,
        held_out=12,
        pools=PoolSizes(synthetic=40, composites=60),
        training=SheetNetTraining(iterations=200, seconds=330.0),
        boxes=BoxDecoderTraining(steps=1600, window_cells=14, seconds=420.0),
    ),
    # About a minute: for tests of the machinery, not for useful models.
    "quick": Profile(
        name="quick",
        input_side=256,
        held_out=4,
        pools=PoolSizes(synthetic=6, composites=6),
        training=SheetNetTraining(iterations=6, windows=(Window(160, (0.6, 0.9), 2, 1.0),)),
        boxes=BoxDecoderTraining(steps=20, batch=4, window_cells=4, scales=(1.0,), mirror=False),
    ),
}


@dataclass(frozen=True)
class BootstrappedModel:
    """One default model after the bootstrap: its production version and metrics."""

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
    """What a bootstrap did: per model, and the real-sheet figures when real sheets were given."""

    profile: str
    key: str
    dataset: str  # the held-out set's name, as every model's metrics record it
    models: tuple[BootstrappedModel, ...]
    seconds: float
    stage_seconds: Mapping[str, float]
    work_dir: Path
    real_plant_iou: float | None = None
    real_sheets: int = 0  # real sheets held out to measure on
    real_training_sheets: int = 0
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


def _profile(profile: Profile | str) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise BootstrapError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}")
    return PROFILES[profile]


def _spec(profile: Profile) -> SheetNetSpec:
    from catalog.sheetnet.network import encoder_origin

    return SheetNetSpec(input_side=profile.input_side, encoder_origin=encoder_origin())


def cache_key(profile: Profile | str, real_samples_dir: Path | None = None) -> str:
    """A hash of the model-making code, the annotations, the profile, the library versions and the real sheets."""
    profile = _profile(profile)
    real = sorted(str(s.image.relative_to(s.image.parents[2])) for s in _real(real_samples_dir))
    settings = {
        "profile": asdict(profile),
        "held_out_seed": HELD_OUT_SEED,
        "real": hashlib.sha256("\n".join(real).encode()).hexdigest() if real else None,
    }
    sources = [
        "training/bootstrap.py",
        "training",
        "catalog/sheetnet",
        "herbarium/real_sheets",
        *(str(p.relative_to(ANNOTATIONS_DIR.parents[2])) for p in sorted(ANNOTATIONS_DIR.glob("*.json"))),
    ]
    return model_code_key(sources, settings)[:12]


def held_out_dataset_name(profile: Profile | str, key: str | None = None) -> str:
    """The name every default model's metrics give for the held-out sets they were measured on."""
    profile = _profile(profile)
    return f"heldout-{profile.name}-{key or cache_key(profile)}"


def _real(real_samples_dir: Path | None) -> list[RealSheet]:
    if real_samples_dir is None:
        return []
    sheets = load_real_sheets(real_samples_dir)
    return [s for s in sheets if s.plant_mask is not None or s.has_boxes or s.phenology is not None]


def split_real(sheets: Sequence[RealSheet]) -> tuple[list[RealSheet], list[RealSheet]]:
    """(training, held out): every REAL_HELD_OUT_EVERY-th sheet of each collection, in name order, is held out."""
    training: list[RealSheet] = []
    held_out: list[RealSheet] = []
    seen: dict[str, int] = {}
    for sheet in sorted(sheets, key=lambda s: (s.collection, s.name)):
        index = seen.get(sheet.collection, 0)
        seen[sheet.collection] = index + 1
        (held_out if index % REAL_HELD_OUT_EVERY == REAL_HELD_OUT_EVERY - 1 else training).append(sheet)
    return training, held_out


def bootstrap_default_models(
    catalog: Catalog,
    work_dir: str | Path,
    profile: str | Profile = "demo",
    real_samples_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> BootstrapReport:
    """Train, measure, register and promote the default models the catalog lacks for the current key.

    ``work_dir`` receives the trained file and ``bootstrap.json`` (under ``<profile>-<key>/``), the report
    of the run that trained. ``progress(stage, done, total)`` follows each stage.
    """
    started = time.perf_counter()
    profile = _profile(profile)
    real_dir = Path(real_samples_dir).resolve() if real_samples_dir is not None else None
    real = _real(real_dir)
    if real_dir is not None and not real:
        raise BootstrapError(f"real samples: no sheets with ground truth under {real_dir}")
    key = cache_key(profile, real_dir)
    dataset = held_out_dataset_name(profile, key)
    root = Path(work_dir).resolve() / f"{profile.name}-{key}"
    report_progress: Progress = progress or (lambda stage, done, total: None)
    stage_seconds: dict[str, float] = {}
    training_real, held_out_real = split_real(real)

    current = {name: _production(catalog, name) for name in MODEL_NAMES}
    missing = [plan for plan in MODELS if not _descends_from_bootstrap(catalog, current[plan.name], dataset)]
    results: dict[str, BootstrappedModel] = {}
    for plan in MODELS:
        version = current[plan.name]
        if version is not None and plan not in missing:
            results[plan.name] = _model_result(version, seconds=0.0, cached=True)
    if missing:
        root.mkdir(parents=True, exist_ok=True)
        model_started = time.perf_counter()
        versions = _train_and_register(
            catalog, profile, missing, training_real, held_out_real, dataset, root, report_progress, stage_seconds
        )
        seconds = time.perf_counter() - model_started
        for plan in missing:
            results[plan.name] = _model_result(versions[plan.name], seconds, cached=False)

    segmenter = results["plant-segmenter"]
    report = BootstrapReport(
        profile=profile.name,
        key=key,
        dataset=dataset,
        models=tuple(results[name] for name in MODEL_NAMES),
        seconds=time.perf_counter() - started,
        stage_seconds=stage_seconds,
        work_dir=root,
        real_plant_iou=segmenter.metrics.get(REAL_IOU_METRIC),
        real_sheets=len(held_out_real),
        real_training_sheets=len(training_real),
        real_samples_dir=real_dir,
    )
    if missing:  # a cached run leaves the report of the run that trained
        (root / REPORT_NAME).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report


def _train_and_register(
    catalog: Catalog,
    profile: Profile,
    missing: Sequence[ModelPlan],
    training_real: Sequence[RealSheet],
    held_out_real: Sequence[RealSheet],
    dataset: str,
    root: Path,
    progress: Progress,
    stage_seconds: dict[str, float],
) -> dict[str, VersionInfo]:
    from catalog.sheetnet import network
    from catalog.sheetnet.runtime import SheetNetRunner
    from herbarium.barcodes import READER as BARCODE_READER
    from herbarium.printed_text import origin as printed_text_origin
    from herbarium.synth import generate_sheet
    from training.evaluation import evaluate, evaluate_sheets
    from training.sheets import from_synthetic, generated_size

    spec = _spec(profile)
    trained = train_default_sheetnet(profile, training_real, progress, stage_seconds)
    with _timed("held-out", stage_seconds):
        width, height = generated_size(spec)
        held_out = []
        for i in range(profile.held_out):
            sheet = generate_sheet(HELD_OUT_SEED + i, width, height)
            held_out.append(from_synthetic(sheet, spec, f"held-out-{i}"))
            progress("held-out", i + 1, profile.held_out)
    outcome, pools = trained.outcome, trained.pools
    with _timed("evaluate", stage_seconds):
        runner = SheetNetRunner.from_network(outcome.net)
        steps = 2 if held_out_real else 1
        progress("evaluate", 0, steps)
        generated = evaluate_sheets(runner, held_out, profile.thresholds["segment-plant"])
        progress("evaluate", 1, steps)
        real_figures: dict[str, float] = {}
        if held_out_real:
            majority = majority_fertile(training_real)
            real_scores = evaluate(runner, held_out_real, dict(profile.thresholds), fertile_majority=majority)
            real_figures = _real_metrics(real_scores)
            progress("evaluate", 2, steps)
    weights = network.save(outcome.net, root / "sheetnet.safetensors")
    parameters = {
        **{k: v for k, v in profile.training.to_parameters().items() if isinstance(v, str | int | float | bool)},
        "iterations_run": outcome.iterations,
        "training_seconds": round(outcome.seconds, 1),
        **{f"box_{k}": v for k, v in asdict(profile.boxes).items() if isinstance(v, str | int | float | bool)},
        "box_feature_windows": trained.feature_windows,
        **{
            f"final_loss_{k}": round(v, 4)
            for k, v in {**outcome.losses, **{f"boxes_{k}": v for k, v in trained.box_losses.items()}}.items()
        },
        "input_side": spec.input_side,
        "real_training_sheets": len(training_real),
        "real_held_out_sheets": len(held_out_real),
        **{f"pool_{k}": v for k, v in pools.counts().items()},
        "trait_sheets": trained.trait.sheets,
        **{f"trait_sheets_{k}": v for k, v in trained.trait.per_class.items()},
        "trait_probe_accuracy": round(trained.trait.probe_accuracy, 4),
        "trait_prior_accuracy": round(trained.trait.prior_accuracy, 4),
        "trait_head": "class prior" if trained.trait.uses_prior else "linear probe",
        "base_weights": json.dumps(dict(spec.encoder_origin), sort_keys=True),
        "box_scales": json.dumps(dict(outcome.net.spec.box_scales), sort_keys=True),
        # Barcode boxes are read by zxing-cpp, then by PP-OCRv4 from the rapidocr wheel (models sha256-pinned).
        "barcode_readers": json.dumps({"bars": BARCODE_READER, "printed_line": printed_text_origin()}, sort_keys=True),
    }
    versions: dict[str, VersionInfo] = {}
    with _timed("register", stage_seconds):
        run = catalog.create_training_run(
            "sheetnet", parameters=parameters, dataset_snapshot=dataset, status="succeeded"
        )
        for k, plan in enumerate(missing):
            metrics = _model_metrics(plan, generated, real_figures, profile)
            version = catalog.register(
                plan.name, plan.task, weights, metrics={"dataset": dataset, **metrics}, training_run_id=run.id,
                promote=True,
            )  # fmt: skip
            catalog.export_onnx(plan.name, version.version)
            versions[plan.name] = catalog.version(plan.name, version.version)
            progress("register", k + 1, len(missing))
    return versions


@dataclass(frozen=True)
class TrainedSheetNet:
    """A SheetNet trained by the bootstrap's recipe, and what it learned from."""

    outcome: TrainingOutcome
    pools: Pools
    feature_windows: int
    box_losses: Mapping[str, float]
    trait: TraitFit

    @property
    def net(self) -> SheetNet:
        return self.outcome.net


def train_default_sheetnet(
    profile: Profile,
    training_real: Sequence[RealSheet],
    progress: Progress | None = None,
    stage_seconds: dict[str, float] | None = None,
) -> TrainedSheetNet:
    """The bootstrap's recipe: the whole network on crops, then the box decoder on cached features, then the
    trait probe. ``training_real`` are the real sheets it may learn from (bench/real_sheets.py gives it folds)."""
    from training.box_decoder import cache_features, train_box_decoder
    from training.pools import build_pools
    from training.sheetnet_trainer import fit_trait_head, train_sheetnet

    report: Progress = progress or (lambda stage, done, total: None)
    seconds: dict[str, float] = stage_seconds if stage_seconds is not None else {}
    spec = _spec(profile)
    with _timed("sheets", seconds):
        pools = build_pools(training_real, spec, profile.pools, seed=0, progress=lambda d, t: report("sheets", d, t))
    with _timed("train", seconds):
        outcome = train_sheetnet(pools.crops(), spec, profile.training, progress=lambda d, t: report("train", d, t))
    with _timed("train boxes", seconds):
        box_sheets = [sheet for pool in pools.crops().values() for sheet in pool]
        cached = cache_features(outcome.net, box_sheets, profile.boxes, progress=lambda d, t: report("features", d, t))
        box_losses = train_box_decoder(
            outcome.net, cached, profile.boxes, progress=lambda d, t: report("train boxes", d, t)
        )
    with _timed("trait", seconds):
        report("trait", 0, 1)
        trait = fit_trait_head(outcome.net, pools.trait)
        report("trait", 1, 1)
    with _timed("calibrate boxes", seconds):
        calibrate_box_scales(outcome.net, training_real, lambda d, t: report("calibrate boxes", d, t))
    return TrainedSheetNet(outcome, pools, len(cached), box_losses, trait)


def calibrate_box_scales(net: SheetNet, sheets: Sequence[RealSheet], progress: Callable[[int, int], None]) -> None:
    """Put the box decoder's size bias on ``sheets`` (its real training sheets) into ``net``'s spec."""
    from dataclasses import replace

    from catalog.sheetnet.runtime import SheetNetRunner
    from training.box_calibration import measure_box_scales

    net.spec = replace(net.spec, box_scales={})  # measured on the decoder's own boxes, uncorrected
    net.spec = replace(net.spec, box_scales=measure_box_scales(SheetNetRunner.from_network(net), sheets, progress))


def majority_fertile(sheets: Sequence[RealSheet]) -> bool | None:
    values = [s.fertile for s in sheets if s.fertile is not None]
    return (sum(values) * 2 >= len(values)) if values else None


def _real_metrics(scores: Any) -> dict[str, float]:
    """The held-out real figures, flattened into catalog metric names."""
    figures: dict[str, float | None] = {
        REAL_IOU_METRIC: scores.mean("plant_iou"),
        "real_baseline_plant_iou": scores.mean("baseline_plant_iou"),
        "real_nonvegetal_mAP50": scores.nonvegetal.map50 if scores.nonvegetal else None,
        "real_nonvegetal_mAP50-95": scores.nonvegetal.map50_95 if scores.nonvegetal else None,
        "real_organs_mAP50": scores.organs.map50 if scores.organs else None,
        "real_leaf_AP50": scores.organs.ap50.get("leaf") if scores.organs else None,
        "real_main_label_AP50": scores.main_label_ap50,
        "real_fertile_accuracy": scores.fertile_accuracy,
        "real_fertile_baseline": scores.fertile_baseline,
    }
    return {k: float(v) for k, v in figures.items() if v is not None and v == v}


_MODEL_METRICS: Mapping[str, tuple[str, ...]] = {
    "nonvegetal": (
        "nonvegetal_mAP50", "nonvegetal_mAP50-95", "real_nonvegetal_mAP50", "real_nonvegetal_mAP50-95",
        "real_main_label_AP50",
    ),
    "organs": ("organs_mAP50", "organs_mAP50-95", "real_organs_mAP50", "real_leaf_AP50"),
    "plant": ("plant_iou", REAL_IOU_METRIC, "real_baseline_plant_iou"),
    "trait": ("top1", "real_fertile_accuracy", "real_fertile_baseline"),
}  # fmt: skip
_RENAMED = {"nonvegetal_mAP50": "mAP50", "nonvegetal_mAP50-95": "mAP50-95", "organs_mAP50": "mAP50",
            "organs_mAP50-95": "mAP50-95"}  # fmt: skip


def _model_metrics(
    plan: ModelPlan, generated: Mapping[str, float], real: Mapping[str, float], profile: Profile
) -> dict[str, float]:
    figures = {**generated, **real}
    metrics = {_RENAMED.get(k, k): figures[k] for k in _MODEL_METRICS[plan.metric_prefix] if k in figures}
    if plan.task in profile.thresholds:
        metrics[SCORE_THRESHOLD_METRIC] = profile.thresholds[plan.task]
    return metrics


@contextlib.contextmanager
def _timed(stage: str, seconds: dict[str, float]) -> Iterator[None]:
    """Add the block's time to ``seconds[stage]``; errors name the stage."""
    started = time.perf_counter()
    try:
        yield
    except BootstrapError:
        raise
    except (CatalogError, OSError, ValueError, RuntimeError) as error:
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
    "bootstrap_default_models",
    "cache_key",
    "held_out_dataset_name",
    "split_real",
]
