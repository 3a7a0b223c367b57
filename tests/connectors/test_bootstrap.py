"""The default models, bootstrapped with the quick profile into a private catalog: trained once, then cached."""

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
from connectors.bootstrap import (
    CANDIDATE_THRESHOLDS,
    MODEL_NAMES,
    REAL_IOU_METRIC,
    BootstrapError,
    BootstrapReport,
    bootstrap_default_models,
    plant_iou,
)
from plantai.cli import cli

REAL_SHEETS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "herbarium-samples" / "plant-masks"
EXPECTED_METRICS = {
    "nonvegetal-detector": {"mAP50", "mAP50-95"},
    "organ-detector": {"mAP50", "mAP50-95"},
    "plant-segmenter": {"mask_mAP50", "mask_mAP50-95", "plant_iou", "score_threshold"},
    "phenology-classifier": {"top1"},
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


def test_four_models_are_trained_registered_and_in_production(bootstrapped: Bootstrapped) -> None:
    report = bootstrapped.report
    assert not report.cached
    assert report.trained == MODEL_NAMES
    assert report.dataset.startswith("synth-heldout-quick-")
    with Catalog.open(home=bootstrapped.home) as catalog:
        for name in MODEL_NAMES:
            version = catalog.version(name)  # the production version
            assert version.stage == "production"
            assert version.ref == report.model(name).ref
            assert version.metrics_dataset == report.dataset
            assert EXPECTED_METRICS[name] <= set(version.metrics), version.metrics
            assert all(0.0 <= value <= 1.0 for value in version.metrics.values()), version.metrics
            assert version.artefact("onnx") is not None
            assert version.training_run_id is not None
            assert load_model(name, catalog=catalog).framework == "onnx"  # backends serve ONNX Runtime
        segmenter = catalog.version("plant-segmenter")
        assert segmenter.metrics["score_threshold"] in CANDIDATE_THRESHOLDS
        assert load_model("plant-segmenter", catalog=catalog).score_threshold == segmenter.metrics["score_threshold"]
    # Progress: sheets, then every epoch of every model, then its evaluation.
    assert bootstrapped.stages["sheets"][-1][0] == bootstrapped.stages["sheets"][-1][1]
    for name in MODEL_NAMES:
        done, total = bootstrapped.stages[f"train {name}"][-1]
        assert done == total > 0
        done, total = bootstrapped.stages[f"evaluate {name}"][-1]
        assert done == total
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
    assert time.perf_counter() - started < 5
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
        again = bootstrap_default_models(catalog, bootstrapped.work, profile="quick")
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
    from connectors.bootstrap import _descends_from_bootstrap

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


def test_the_real_sheet_plant_iou_is_reported(bootstrapped: Bootstrapped, samples_dir: Path) -> None:
    report = bootstrapped.report
    assert report.real_samples_dir == (samples_dir / "plant-masks").resolve()
    assert report.real_sheets == 10
    assert report.real_plant_iou is not None
    assert 0.0 <= report.real_plant_iou <= 1.0
    assert report.model("plant-segmenter").metrics[REAL_IOU_METRIC] == report.real_plant_iou


def test_unknown_profile_and_empty_real_samples_are_refused(tmp_path: Path) -> None:
    with Catalog.open(home=tmp_path) as catalog:
        with pytest.raises(BootstrapError, match="profile"):
            bootstrap_default_models(catalog, tmp_path / "work", profile="huge")
        with pytest.raises(BootstrapError, match="real samples"):
            bootstrap_default_models(catalog, tmp_path / "work", profile="quick", real_samples_dir=tmp_path)


def test_plant_iou() -> None:
    import numpy as np

    a = np.zeros((4, 4), dtype=bool)
    b = np.zeros((4, 4), dtype=bool)
    assert plant_iou(a, b) == 1.0
    a[:2] = True
    b[1:3] = True
    assert plant_iou(a, b) == pytest.approx(4 / 12)
