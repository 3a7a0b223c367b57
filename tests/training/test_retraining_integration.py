"""The whole loop with a real Label Studio, a real backend and FiftyOne's delegated operations.

Predictions from version 1 -> expert corrections through the SDK -> Label Studio's "Start training"
(the START_TRAINING webhook) -> a queued delegated operation -> a worker trains, evaluates and
promotes version 2 -> new predictions carry version 2 -> FiftyOne shows both versions and their agreement.
"""

from __future__ import annotations

import textwrap
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import requests

from catalog.registry import Catalog
from connectors.label_config import review_config
from herbarium.labels.labelstudio import as_labelstudio
from local_services.labelstudio import LocalLabelStudio
from ml_backends.connect import connect_backend, predict_all_tasks
from tests.training.retraining_helpers import (
    FAST,
    MODEL,
    SEED_BASE,
    VALIDATED_SHEET,
    catalog_with_version_1,
    shuffled_classes,
    write_sheets,
)
from training.retrain_queue import OPERATOR_URI, configure_project, handle_event, queued_jobs

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
SHEETS = 24
V1, V2 = f"{MODEL}@1.0.0", f"{MODEL}@1.1.0"


@pytest.fixture
def retrain_plugin(tmp_path: Path) -> Any:
    """FiftyOne's plugin dir with a plugin registering the retraining operator (as the herbarium plugin does)."""
    import fiftyone as fo

    plugin = tmp_path / "plugins" / "plantai-herbarium"
    plugin.mkdir(parents=True)
    (plugin / "fiftyone.yml").write_text(
        'name: "@plantai/herbarium"\ntype: plugin\noperators:\n  - retrain_model\n', encoding="utf-8"
    )
    (plugin / "__init__.py").write_text(
        textwrap.dedent(
            """
            from fiftyone_plugins.herbarium.retrain import RetrainModel

            def register(p):
                p.register(RetrainModel)
            """
        ),
        encoding="utf-8",
    )
    previous = fo.config.plugins_dir
    fo.config.plugins_dir = str(tmp_path / "plugins")
    yield plugin
    fo.config.plugins_dir = previous


def _queued_for(home: Path) -> list[Any]:
    return [op for op in queued_jobs() if op.context.request_params["params"]["plantai_home"] == str(home)]


@pytest.fixture(scope="module")
def mislabelling_version_1(trained_models: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 as experts meet it: a detector that puts the wrong class on elements it finds.

    It is the test detector fine-tuned on sheets whose classes are shifted by one, so the experts'
    corrections have something systematic to fix; fine-tuning a merely undertrained detector on a
    few sheets moves its score by less than run-to-run noise.
    """
    from herbarium.labels.yolo_dataset import export_detection
    from training.yolo_trainer import train_yolo

    root = tmp_path_factory.mktemp("version-1")
    seeds = list(range(SEED_BASE + 500, SEED_BASE + 512))
    sheets = write_sheets(root / "sheets", seeds, trained_models.width, trained_models.height)
    dataset = export_detection(
        [(path, shuffled_classes(labels)) for path, labels in sheets], root / "data", max_side=416
    )
    options = {"mosaic": 0.0, "warmup_epochs": 1, "val": False, "optimizer": "AdamW", "lr0": 0.003}
    trained = train_yolo(
        dataset, "detect", root / "train", epochs=10, imgsz=320, batch=4, base=trained_models.detect, **options
    )
    return trained.path


def test_corrections_retrain_promote_and_serve_version_2(
    mislabelling_version_1: Path,
    label_studio: LocalLabelStudio,
    ls_client: Any,
    fiftyone_db: Any,
    trained_models: Any,
    start_backend: Any,
    retrain_plugin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = time.perf_counter()
    home = tmp_path / "home"
    catalog = catalog_with_version_1(home, mislabelling_version_1)
    document_root = label_studio.server.document_root
    folder = document_root / "retraining-loop"
    seeds = list(range(SEED_BASE, SEED_BASE + SHEETS))
    written = write_sheets(folder, seeds, trained_models.width, trained_models.height)
    truth = {path.name: labels for path, labels in written}
    backend = start_backend(
        home, document_root=document_root, label_studio_url=label_studio.url, api_key=label_studio.token
    )
    project = ls_client.projects.create(title="Retraining loop", label_config=review_config(["detect-nonvegetal"]))
    storage = ls_client.import_storage.local.create(
        project=project.id, path=str(folder), regex_filter=r".*\.jpg", use_blob_urls=True
    )
    ls_client.import_storage.local.sync(id=storage.id)
    connection = connect_backend(ls_client, project.id, backend.url, extra_params={"conf": 0.05})

    # 1. Version 1 pre-annotates every task.
    predict_all_tasks(ls_client, project.id)
    tasks = list(ls_client.tasks.list(project=project.id))
    assert len(tasks) == SHEETS
    for task in tasks:
        assert [p.model_version for p in ls_client.predictions.list(task=task.id)] == [V1]

    # 2. Experts correct every sheet (the exact truth) and validate it, through the SDK.
    for task in tasks:
        name = str(task.data["image"]).rsplit("/", 1)[-1]
        result = as_labelstudio(truth[name], to_name="image")
        result.append(VALIDATED_SHEET)
        ls_client.annotations.create(id=task.id, result=result)

    # 3. Label Studio's "Start training" button: LS posts START_TRAINING to the backend's /webhook.
    ls_client.ml.train(id=connection.backend_id)  # Label Studio's "Start training"
    deadline = time.monotonic() + 60
    while not _queued_for(home):
        assert time.monotonic() < deadline, f"no job queued; backend log:\n{backend.log_path.read_text()[-3000:]}"
        time.sleep(0.5)
    [op] = _queued_for(home)
    assert op.operator == OPERATOR_URI
    assert op.context.request_params["params"]["projects"] == [project.id]
    assert handle_event({"action": "START_TRAINING", "project": {"id": project.id}}, home=home) is None  # no duplicate

    # 4. A worker runs the queued job through FiftyOne's delegated-operation service.
    from fiftyone.operators.delegated import DelegatedOperationService

    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    monkeypatch.setenv("LOCAL_FILES_DOCUMENT_ROOT", str(document_root))
    params = op.context.request_params["params"]
    params.update({k: v for k, v in asdict(FAST).items() if k in ("epochs", "batch", "max_side", "val_fraction")})
    # Relearning the classes takes the learning rate version 1 was mistrained with.
    params.update({"epochs": 20, "options": {"lr0": 0.003}})
    service = DelegatedOperationService()
    service._repo._collection.update_one({"_id": op.id}, {"$set": {"context.request_params.params": params}})
    train_started = time.perf_counter()
    # Only this job: other tests' Start training events may have queued theirs in the shared database.
    outcome = service.execute_operation(service.get(op.id))
    train_seconds = time.perf_counter() - train_started
    assert outcome.error is None, outcome.error
    [job] = outcome.result["jobs"]
    print(
        f"v1 {job['production_score']:.4f} v2 {job['candidate_score']:.4f} ({job['metric']}); job {train_seconds:.1f}s"
    )
    assert service.get(op.id).run_state == "completed"
    assert job["status"] == "promoted"
    assert job["candidate"] == V2
    assert job["production"] == V1

    # The catalog holds both, measured on the same held-out split; version 2 is better and in production.
    v2 = catalog.version(MODEL, "1.1.0")
    assert v2.stage == "production"
    assert v2.parent == "1.0.0"
    assert v2.metrics["mAP50-95"] > v2.metrics["production_mAP50-95"]
    assert catalog.version(MODEL, "1.0.0").stage == "staging"
    run = catalog.training_run(int(str(v2.training_run_id)))
    assert run.status == "succeeded"
    assert run.dataset_snapshot == v2.metrics_dataset
    assert run.parameters["production_metrics"]["mAP50-95"] == v2.metrics["production_mAP50-95"]
    # Each version's own record holds its figure on that held-out snapshot.
    snapshot = str(run.dataset_snapshot)
    assert v2.metrics_on(snapshot)["mAP50-95"] == job["candidate_score"]
    assert catalog.version(MODEL, "1.0.0").metrics_on(snapshot)["mAP50-95"] == job["production_score"]
    assert Path(str(run.log_path)).is_file()
    assert "epoch" in Path(str(run.log_path)).read_text()

    # 5. The running backend sees the promotion; new tasks get version 2's predictions.
    setup = {"project": f"{project.id}.0", "schema": review_config(["detect-nonvegetal"])}
    deadline = time.monotonic() + 20
    while requests.post(f"{backend.url}/setup", json=setup, timeout=5).json()["model_version"] != V2:
        assert time.monotonic() < deadline, "the backend did not pick up version 2"
        time.sleep(0.5)
    write_sheets(folder, [SEED_BASE + 100], trained_models.width, trained_models.height)
    ls_client.import_storage.local.sync(id=storage.id)
    predict_all_tasks(ls_client, project.id)
    new_task = max(ls_client.tasks.list(project=project.id), key=lambda t: t.id)
    assert [p.model_version for p in ls_client.predictions.list(task=new_task.id)] == [V2]

    # 6. FiftyOne: the project's dataset with both versions' predictions and their agreement.
    from connectors.sync import sync_project
    from training.version_comparison import AGREEMENT_INFO_KEY, compare_versions, version_field

    sync_project(ls_client, project.id, dataset_name=f"retrain-loop-{project.id}", document_root=document_root)
    import fiftyone as fo

    dataset = fo.load_dataset(f"retrain-loop-{project.id}")
    summary = compare_versions(dataset, catalog, MODEL, "1.0.0", "1.1.0", conf=0.05)
    assert set(dataset.get_field_schema()) >= {version_field(V1), version_field(V2), f"{summary['eval_key']}_tp"}
    assert 0.0 <= summary["agreement"] <= 1.0
    assert fo.load_dataset(dataset.name).info[AGREEMENT_INFO_KEY][summary["eval_key"]]["versions"] == [V1, V2]
    print(f"agreement v1/v2 {summary['agreement']:.3f}; whole test {time.perf_counter() - started:.1f}s")


def test_every_n_validated_annotations_queues_one_job(fiftyone_db: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    Catalog.open(home=home).close()
    configure_project(41, every=3, models=[MODEL], home=home)

    def event(annotation_id: int, review: str) -> dict[str, Any]:
        result = [{"from_name": "review", "to_name": "image", "type": "choices", "value": {"choices": [review]}}]
        annotation = {"id": annotation_id, "result": result, "completed_by": 1}
        return {"action": "ANNOTATION_CREATED", "project": {"id": 41}, "annotation": annotation}

    assert handle_event(event(1, "validated"), home=home) is None
    assert handle_event(event(1, "validated"), home=home) is None  # the same annotation counts once
    assert handle_event(event(2, "needs work"), home=home) is None
    assert handle_event(event(3, "validated"), home=home) is None
    job = handle_event(event(4, "validated"), home=home)
    assert job is not None
    [op] = _queued_for(home)
    assert op.context.request_params["params"]["models"] == [MODEL]
    assert op.context.request_params["params"]["trigger"] == "every-3-validated"
    assert handle_event(event(5, "validated"), home=home) is None  # counting starts again


def test_the_webhook_hook_returns_at_once() -> None:
    from training.retrain_queue import on_label_studio_event

    start = time.perf_counter()
    on_label_studio_event({"action": "PROJECT_UPDATED", "project": {"id": 1}})
    on_label_studio_event({"action": "ANNOTATION_CREATED", "project": {"id": 1}, "annotation": {"result": []}})
    assert time.perf_counter() - start < 0.1
