"""A new trait end to end, with a real Label Studio and a real backend.

Experts choose a trait no catalog model knows (how many plants a sheet holds) in a project's
Choices tag -> ``plantai train --trait`` makes a classifier of it, registered and promoted ->
a backend serving every model fills that tag on the project's tasks, better than a constant guess.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from catalog.registry import Catalog
from connectors.label_config import IMAGE_KEY, IMAGE_NAME, REVIEW_CONTROL, REVIEW_STATES
from herbarium.labels import MaskLabel
from local_services.labelstudio import LocalLabelStudio
from ml_backends.connect import connect_backend, predict_all_tasks
from plantai.cli import cli
from tests.training.retraining_helpers import VALIDATED_SHEET, write_sheets
from training.retraining import SNAPSHOT_FILE

pytestmark = pytest.mark.integration

TRAIT = "plant_count"  # not in the taxonomy, and no default model fills it
ONE, SEVERAL = "One plant", "Several plants"  # as the config spells them; the classes are normalised
NAME = "plant-count-classifier"
REF = f"{NAME}@1.0.0"
SHEETS = 40
SEED_BASE = 8000  # away from the other tests' sheets
WIDTH, HEIGHT = 448, 640

CONFIG = (
    f'<View><Image name="{IMAGE_NAME}" value="${IMAGE_KEY}"/>'
    f'<Header value="Plants on the sheet"/>'
    f'<Choices name="{TRAIT}" toName="{IMAGE_NAME}" choice="single">'
    f'<Choice value="{ONE}"/><Choice value="{SEVERAL}"/></Choices>'
    f'<Choices name="{REVIEW_CONTROL}" toName="{IMAGE_NAME}" choice="single">'
    + "".join(f'<Choice value="{state}"/>' for state in REVIEW_STATES)
    + "</Choices></View>"
)


def _choice(value: str) -> dict[str, Any]:
    return {"from_name": TRAIT, "to_name": IMAGE_NAME, "type": "choices", "value": {"choices": [value]}}


def test_a_new_trait_is_trained_from_choices_and_served_to_its_project(
    label_studio: LocalLabelStudio,
    ls_client: Any,
    start_backend: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = time.perf_counter()
    home = tmp_path / "home"
    monkeypatch.setenv("PLANTAI_HOME", str(home))
    monkeypatch.delenv("PLANTAI_CATALOG_URL", raising=False)
    document_root = label_studio.server.document_root
    folder = document_root / "new-trait"
    written = write_sheets(folder, list(range(SEED_BASE, SEED_BASE + SHEETS)), WIDTH, HEIGHT)
    # The generator's exact truth: one mask per plant.
    truth = {
        path.name: ONE if sum(isinstance(label, MaskLabel) for label in labels.labels) == 1 else SEVERAL
        for path, labels in written
    }
    counts = Counter(truth.values())
    assert set(counts) == {ONE, SEVERAL}, counts

    project = ls_client.projects.create(title="New trait: plant count", label_config=CONFIG)
    storage = ls_client.import_storage.local.create(
        project=project.id, path=str(folder), regex_filter=r".*\.jpg", use_blob_urls=True
    )
    ls_client.import_storage.local.sync(id=storage.id)
    tasks = list(ls_client.tasks.list(project=project.id))
    assert len(tasks) == SHEETS
    names = {task.id: str(task.data[IMAGE_KEY]).rsplit("/", 1)[-1] for task in tasks}

    # Experts choose the trait's value on every sheet and validate it, through the SDK.
    for task in tasks:
        ls_client.annotations.create(id=task.id, result=[_choice(truth[names[task.id]]), VALIDATED_SHEET])

    argv = ["train", "--trait", TRAIT, "--project", str(project.id), "--json"]
    argv += ["--label-studio-url", label_studio.url, "--api-key", label_studio.token]
    argv += ["--document-root", str(document_root)]
    train_started = time.perf_counter()
    result = CliRunner().invoke(cli, argv)
    train_seconds = time.perf_counter() - train_started
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["model"], report["status"], report["candidate"]) == (NAME, "promoted", REF)
    assert report["production"] is None
    assert report["metric"] == "top1"

    # Registered and promoted, with the experts' values (normalised, sorted) as its classes.
    with Catalog.open(home=home) as catalog:
        model = catalog.get(NAME)
        version = catalog.version(NAME)
        run = catalog.training_run(report["run_id"])
    assert (model.task, model.kind, model.labels) == (TRAIT, "classify-trait", ("one_plant", "several_plants"))
    assert (version.version, version.stage) == ("1.0.0", "production")
    assert version.metrics["top1"] == report["candidate_score"]
    assert 0.0 <= version.metrics["top1"] <= 1.0
    assert version.metrics_dataset == report["snapshot"] == run.dataset_snapshot
    assert version.training_run_id == run.id
    assert (run.status, run.parameters["trigger"], run.parameters["trait"]) == ("succeeded", "new-trait", TRAIT)
    split_counts = run.parameters["snapshot"]["counts"]
    assert split_counts["train"]["images"] + split_counts["val"]["images"] == SHEETS
    trained_on = {value: split_counts["train"][value] + split_counts["val"][value] for value in model.labels}
    assert trained_on == {"one_plant": counts[ONE], "several_plants": counts[SEVERAL]}

    # A backend serving every catalog model fills the project's trait tag.
    backend = start_backend(
        home, kind="all", document_root=document_root, label_studio_url=label_studio.url, api_key=label_studio.token
    )
    setup = {"project": f"{project.id}.0", "schema": CONFIG}
    assert requests.post(f"{backend.url}/setup", json=setup, timeout=10).json()["model_version"] == REF
    connect_backend(ls_client, project.id, backend.url)
    predict_all_tasks(ls_client, project.id)
    predicted: dict[str, str] = {}
    for task in tasks:
        [prediction] = ls_client.predictions.list(task=task.id)
        assert prediction.model_version == REF
        [choice] = prediction.result
        assert (choice["from_name"], choice["to_name"], choice["type"]) == (TRAIT, IMAGE_NAME, "choices")
        [value] = choice["value"]["choices"]
        assert value in (ONE, SEVERAL)  # the config's spelling, not the model's class name
        predicted[names[task.id]] = value

    # It learnt its training sheets: at most half the mistakes of always guessing their commoner value
    # (trained on whole sheets squeezed square, it made 11 of 30). The held-out few are too few to judge by.
    splits = json.loads((Path(str(run.log_path)).parent / SNAPSHOT_FILE).read_text(encoding="utf-8"))["splits"]
    trained = [f"{stem}.jpg" for stem in splits["train"]]
    right = sum(predicted[name] == truth[name] for name in trained)
    majority = max(Counter(truth[name] for name in trained).values())
    mistakes, constant_mistakes = len(trained) - right, len(trained) - majority
    print(
        f"{TRAIT}: {mistakes} mistakes on {len(trained)} training sheets, a constant guess {constant_mistakes}, "
        f"predicted {dict(Counter(predicted.values()))}; top1 on held-out {version.metrics['top1']:.3f}; "
        f"train command {train_seconds:.1f}s, whole test {time.perf_counter() - started:.1f}s"
    )
    assert mistakes <= constant_mistakes / 2
