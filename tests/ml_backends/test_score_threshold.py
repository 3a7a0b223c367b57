"""A version's calibrated score threshold (catalog metric) is what backends filter by, unless a project says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog.predictors import DEFAULT_SCORE_THRESHOLD, SCORE_THRESHOLD_METRIC, clear_cache, load_model
from catalog.registry import Catalog
from connectors.label_config import review_config
from herbarium.synth import generate_sheet
from ml_backends.server import create_app
from ml_backends.service import PredictionService
from ml_backends.task_images import TaskImages

CONFIG = review_config(["detect-nonvegetal"])


@pytest.fixture(scope="module")
def document_root(trained_models: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("threshold-files")
    for seed in trained_models.val_seeds[:2]:
        generate_sheet(seed, trained_models.width, trained_models.height).image.save(root / f"{seed}.jpg")
    return root


def _catalog(home: Path, weights: Path, metrics: dict[str, Any]) -> Catalog:
    catalog = Catalog.open(home=home)
    catalog.register(
        "nonvegetal-detector", "detect-nonvegetal", weights, metrics={"dataset": "held-out", **metrics}, promote=True
    )
    return catalog


def _scores(catalog: Catalog, root: Path, extra: dict[str, Any] | None = None) -> list[float]:
    client = create_app(PredictionService(catalog, TaskImages(root, None), refresh_s=0.0)).test_client()
    tasks = [
        {"id": i, "data": {"image": f"/data/local-files/?d={p.name}"}} for i, p in enumerate(sorted(root.iterdir()))
    ]
    body = {"tasks": tasks, "label_config": CONFIG, "params": {"extra_params": extra or {}}}
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    return [region["score"] for result in response.get_json()["results"] for region in result["result"]]


def test_backends_filter_by_the_versions_threshold_unless_the_project_sets_conf(
    trained_models: Any, document_root: Path, tmp_path: Path
) -> None:
    clear_cache()
    calibrated = _catalog(tmp_path / "calibrated", trained_models.detect, {SCORE_THRESHOLD_METRIC: 0.05})
    plain = _catalog(tmp_path / "plain", trained_models.detect, {"mAP50": 0.5})
    assert load_model("nonvegetal-detector", catalog=calibrated).score_threshold == 0.05
    assert load_model("nonvegetal-detector", catalog=plain).score_threshold == DEFAULT_SCORE_THRESHOLD

    low = _scores(calibrated, document_root)
    default = _scores(plain, document_root)
    assert min(low) >= 0.05
    assert min(default) >= DEFAULT_SCORE_THRESHOLD
    # The tiny test detector has boxes scored between the two thresholds: the calibrated one keeps them.
    assert len(low) > len(default)
    assert sorted(_scores(plain, document_root, {"conf": 0.05})) == pytest.approx(sorted(low))
    assert len(_scores(calibrated, document_root, {"conf": DEFAULT_SCORE_THRESHOLD})) == len(default)


@pytest.mark.parametrize("value", [0, 1.5, -0.2])  # the catalog itself refuses what is not a number
def test_a_threshold_out_of_range_falls_back_to_the_default(trained_models: Any, tmp_path: Path, value: Any) -> None:
    catalog = _catalog(tmp_path, trained_models.detect, {SCORE_THRESHOLD_METRIC: value})
    assert load_model("nonvegetal-detector", catalog=catalog).score_threshold == DEFAULT_SCORE_THRESHOLD
