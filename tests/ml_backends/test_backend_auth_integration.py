"""A backend started with basic auth: refused without it, and a real Label Studio that has it connects,
predicts and sends webhooks."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from catalog.registry import Catalog
from connectors.label_config import review_config
from herbarium.synth import generate_sheet
from local_services.labelstudio import LocalLabelStudio
from ml_backends.admission import BasicAuth
from ml_backends.connect import connect_backend, predict_all_tasks

pytestmark = pytest.mark.integration

AUTH = BasicAuth("label-studio", "a-long-backend-password")


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


def test_label_studio_with_the_credentials_connects_predicts_and_sends_webhooks(
    label_studio: LocalLabelStudio, ls_client: Any, trained_models: Any, start_backend: Any, tmp_path_factory: Any
) -> None:
    home = tmp_path_factory.mktemp("auth-backend-home")
    Catalog.open(home=home).register("nonvegetal-detector", "detect-nonvegetal", trained_models.detect, promote=True)
    backend = start_backend(
        home,
        kind="nonvegetal",
        document_root=label_studio.server.document_root,
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        basic_auth=(AUTH.user, AUTH.password),
    )

    def start_trainings() -> float:
        text = requests.get(f"{backend.url}/metrics", auth=(AUTH.user, AUTH.password), timeout=10).text
        return _metric(text, "plantai_backend_webhook_start_training_total")

    # Without the credentials every door but /health is shut.
    assert requests.get(f"{backend.url}/health", timeout=10).status_code == 200
    assert requests.post(f"{backend.url}/predict", json={"tasks": []}, timeout=10).status_code == 401
    start = {"action": "START_TRAINING", "project": {"id": 1}}
    assert requests.post(f"{backend.url}/webhook", json=start, timeout=10).status_code == 401
    assert requests.get(f"{backend.url}/metrics", auth=(AUTH.user, "wrong"), timeout=10).status_code == 401

    folder = label_studio.server.document_root / "auth-backend"
    folder.mkdir(parents=True, exist_ok=True)
    for seed in trained_models.val_seeds[:2]:
        generate_sheet(seed, trained_models.width, trained_models.height).image.save(folder / f"s-{seed}.jpg")
    project = ls_client.projects.create(title="PlantAI behind basic auth", label_config=review_config())
    storage = ls_client.import_storage.local.create(
        project=project.id, path=str(folder), regex_filter=r".*\.jpg", use_blob_urls=True
    )
    ls_client.import_storage.local.sync(id=storage.id)

    # Label Studio, told the credentials, connects (it calls /health and /setup) and predicts.
    connection = connect_backend(ls_client, project.id, backend.url, extra_params={"conf": 0.05}, basic_auth=AUTH)
    predict_all_tasks(ls_client, project.id)
    tasks = list(ls_client.tasks.list(project=project.id))
    deadline = time.monotonic() + 120
    while not all(list(ls_client.predictions.list(task=task.id)) for task in tasks):
        assert time.monotonic() < deadline, backend.log_path.read_text()[-3000:]
        time.sleep(1)

    # ... and its "Start training" reaches /webhook through the same door.
    before = start_trainings()
    ls_client.ml.train(id=connection.backend_id)  # Label Studio's "Start training"
    deadline = time.monotonic() + 60
    while start_trainings() <= before:
        assert time.monotonic() < deadline, "Label Studio's Start training never reached /webhook"
        time.sleep(0.5)
    refused = [line for line in backend.log_path.read_text().splitlines() if '" 401 ' in line]
    assert len(refused) == 3, "\n".join(refused)  # ours above; none of Label Studio's
