"""A IIIF manifest of 20 canvases into a real Label Studio, predicted by a real backend from derivatives.

The sheets are served by the IIIF Image API reference implementation (PyPI ``iiif``) on loopback, the
manifest by a static server; Label Studio keeps the images remote and the backend asks the reference
server for the size its model decodes, never the master.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from catalog.registry import Catalog
from connectors.label_config import review_config
from herbarium.synth import generate_sheet
from local_services.labelstudio import LocalLabelStudio
from ml_backends.connect import connect_backend, predict_all_tasks
from plantai.cli import cli
from tests.fixtures.iiif_manifests import p3_manifest
from tests.fixtures.iiif_reference import IIIFService
from tests.fixtures.static_files import StaticServer

pytestmark = pytest.mark.integration

CANVASES = 20
MASTER = (1500, 2100)  # what the reference server holds; the detector decodes at 320 (its imgsz)


def test_a_manifest_of_20_canvases_becomes_20_tasks_each_predicted_from_a_derivative(
    label_studio: LocalLabelStudio,
    ls_client: Any,
    trained_models: Any,
    start_backend: Any,
    iiif_service: Callable[[Path], IIIFService],
    static_server: Callable[[Path], StaticServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    masters = tmp_path / "masters"
    masters.mkdir()
    for i in range(CANVASES):
        generate_sheet(500 + i, *MASTER).image.save(masters / f"batch-{i}.jpg", quality=90)
    images = iiif_service(masters)
    documents = tmp_path / "documents"
    (documents / "iiif").mkdir(parents=True)
    manifest = p3_manifest("", "batch", CANVASES, per_canvas_numbers=True)
    text = json.dumps(manifest).replace('"/iiif/img/', f'"{images.url}/')  # the canvases' services
    (documents / "iiif" / "batch.json").write_text(text, encoding="utf-8")
    host = static_server(documents)
    monkeypatch.setenv("PLANTAI_REMOTE_HOSTS", "127.0.0.1")  # the command's and the backend's allow-list

    project = ls_client.projects.create(title="IIIF batch", label_config=review_config(("detect-nonvegetal",)))
    args = ["specimens", "import", f"{host.url}/iiif/batch.json", "--project", str(project.id)]
    args += ["--label-studio-url", label_studio.url, "--api-key", label_studio.token, "--json"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["imported"] == CANVASES
    again = CliRunner().invoke(cli, args)
    assert json.loads(again.output)["imported"] == 0  # a rerun imports nothing new
    tasks = list(ls_client.tasks.list(project=project.id, fields="all"))
    assert sorted(t.data["image"] for t in tasks) == sorted(
        f"{images.url}/batch-{i}/full/max/0/default.jpg" for i in range(CANVASES)
    )
    assert images.asked == []  # importing fetched no image

    home = tmp_path / "backend-home"
    Catalog.open(home=home).register("nonvegetal-detector", "detect-nonvegetal", trained_models.detect, promote=True)
    backend = start_backend(home, kind="nonvegetal", label_studio_url=label_studio.url, api_key=label_studio.token)
    connect_backend(ls_client, project.id, backend.url)
    predict_all_tasks(ls_client, project.id)

    for task in tasks:
        [prediction] = list(ls_client.predictions.list(task=task.id))
        assert prediction.model_version.startswith("nonvegetal-detector@")
    derivatives = [p for p in images.asked if not p.endswith("/info.json")]
    assert len(derivatives) == CANVASES  # one derivative per canvas...
    assert all("/full/!" in p for p in derivatives)  # ...asked at the detector's size, not the master
    master_bytes = sum(f.stat().st_size for f in masters.iterdir())
    assert images.sent_bytes < master_bytes / 4
