"""A real Label Studio gets PlantAI predictions from a real backend serving catalog models."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from catalog.registry import Catalog
from connectors.label_config import review_config
from herbarium.synth import generate_sheet
from local_services.labelstudio import LocalLabelStudio
from ml_backends.connect import connect_backend, predict_all_tasks

pytestmark = pytest.mark.integration

MODELS = {
    "nonvegetal-detector": ("detect-nonvegetal", "detect"),
    "plant-segmenter": ("segment-plant", "segment"),
    "phenology-classifier": ("phenology", "classify"),
}
VERSION_1 = "nonvegetal-detector@1.0.0+phenology-classifier@1.0.0+plant-segmenter@1.0.0"


@dataclass
class Served:
    catalog: Catalog
    backend: Any
    project: int
    folder: Path
    storage: int
    trained: Any


def _write_sheets(folder: Path, trained: Any, seeds: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        generate_sheet(seed, trained.width, trained.height).image.save(folder / f"sheet-{seed}.jpg", quality=92)


def _predictions(client: Any, task_id: int) -> list[Any]:
    return list(client.predictions.list(task=task_id))


@pytest.fixture(scope="module")
def served(
    label_studio: LocalLabelStudio, ls_client: Any, trained_models: Any, start_backend: Any, tmp_path_factory: Any
) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("backend-home")
    catalog = Catalog.open(home=home)
    for name, (task, weights) in MODELS.items():
        catalog.register(name, task=task, weights=getattr(trained_models, weights), promote=True)
    backend = start_backend(
        home,
        document_root=label_studio.server.document_root,
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
    )
    folder = label_studio.server.document_root / "backend-integration"
    _write_sheets(folder, trained_models, list(trained_models.val_seeds[:4]))
    project = ls_client.projects.create(title="PlantAI pre-annotation", label_config=review_config())
    storage = ls_client.import_storage.local.create(
        project=project.id, path=str(folder), regex_filter=r".*\.jpg", use_blob_urls=True
    )
    ls_client.import_storage.local.sync(id=storage.id)
    connect_backend(ls_client, project.id, backend.url, extra_params={"conf": 0.05})
    yield Served(catalog, backend, project.id, folder, storage.id, trained_models)
    backend.stop()


def test_every_task_gets_predictions_from_every_model_with_the_catalog_version(served: Served, ls_client: Any) -> None:
    predict_all_tasks(ls_client, served.project)
    tasks = list(ls_client.tasks.list(project=served.project))
    assert len(tasks) == 4
    kinds_seen: set[str] = set()
    for task in tasks:
        [prediction] = _predictions(ls_client, task.id)
        assert prediction.model_version == VERSION_1
        kinds_seen |= {(item["from_name"], item["type"]) for item in prediction.result}
        for item in prediction.result:
            assert item["to_name"] == "image"
            if item["type"] != "choices":
                assert (item["original_width"], item["original_height"]) == (
                    served.trained.width,
                    served.trained.height,
                )
    assert ("phenology", "choices") in kinds_seen  # the classifier answers for every sheet
    assert ("nonvegetal", "rectanglelabels") in kinds_seen  # the detector finds elements on some sheet


def test_opening_tasks_again_adds_no_duplicate_predictions(
    served: Served, ls_client: Any, label_studio: LocalLabelStudio
) -> None:
    predict_all_tasks(ls_client, served.project)
    tasks = list(ls_client.tasks.list(project=served.project))
    headers = {"Authorization": f"Token {label_studio.token}"}
    for _ in range(2):
        predict_all_tasks(ls_client, served.project)
        for task in tasks:
            ls_client.tasks.get(id=task.id)
        requests.get(f"{label_studio.url}/api/projects/{served.project}/next", headers=headers, timeout=30)
    for task in tasks:
        assert len(_predictions(ls_client, task.id)) == 1


def test_label_studio_registered_exactly_one_webhook_for_the_backend(served: Served, ls_client: Any) -> None:
    hooks = [h for h in ls_client.webhooks.list(project=served.project) if served.backend.url in str(h.url)]
    assert len(hooks) == 1


def test_webhook_answers_within_label_studios_one_second(served: Served) -> None:
    response = requests.post(
        f"{served.backend.url}/webhook", json={"action": "START_TRAINING", "project": {"id": served.project}}, timeout=1
    )
    assert response.status_code == 201
    assert response.json()["action"] == "START_TRAINING"


def test_promotion_reaches_new_predictions_without_restart(served: Served, ls_client: Any) -> None:
    served.catalog.register(
        "nonvegetal-detector", task="detect-nonvegetal", weights=served.trained.detect, version="1.1.0", promote=True
    )
    expected = VERSION_1.replace("nonvegetal-detector@1.0.0", "nonvegetal-detector@1.1.0")
    schema = {"project": f"{served.project}.0", "schema": review_config()}
    deadline = time.monotonic() + 15
    while requests.post(f"{served.backend.url}/setup", json=schema, timeout=5).json()["model_version"] != expected:
        assert time.monotonic() < deadline, "the backend did not see the promotion within 15 s"
        time.sleep(0.5)

    _write_sheets(served.folder, served.trained, [served.trained.val_seeds[4]])
    ls_client.import_storage.local.sync(id=served.storage)
    predict_all_tasks(ls_client, served.project)
    versions = {
        p.model_version for t in ls_client.tasks.list(project=served.project) for p in _predictions(ls_client, t.id)
    }
    assert expected in versions
    new_task = max(ls_client.tasks.list(project=served.project), key=lambda t: t.id)
    assert [p.model_version for p in _predictions(ls_client, new_task.id)] == [expected]
