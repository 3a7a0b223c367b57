"""The retraining job queue: FiftyOne delegated operations of ``@plantai/herbarium/retrain_model``.

Every trigger lands here: Label Studio's "Start training" button and every N validated annotations
(both through the backend's ``/webhook``: :func:`on_label_studio_event`), the FiftyOne operator
(scheduled as a delegated operation by the App) and ``plantai retrain``. A job is a queued
delegated operation whose params say which models and projects; a worker runs it:
``fiftyone delegated launch`` (needs ``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true`` and the plugin on
``FIFTYONE_PLUGINS_DIR``) or :func:`run_queued_jobs` (``plantai retrain --run-queued``), both through
FiftyOne's own ``DelegatedOperationService``; the operator's ``execute`` calls :func:`run_job`.

Jobs carry no secrets: the worker reaches Label Studio with its own ``LABEL_STUDIO_URL`` and
``LABEL_STUDIO_API_KEY`` and reads images under ``LOCAL_FILES_DOCUMENT_ROOT``.

Per-project triggers live in ``$PLANTAI_HOME/retraining.json``::

    {"projects": {"12": {"every": 50, "models": ["nonvegetal-detector"]}}}

``every``: queue a job after that many new validated annotations (0 or absent: never;
``PLANTAI_RETRAIN_EVERY`` gives the default); ``models``: what to retrain (absent: every catalog
model whose predictions the project holds).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from catalog.registry import Catalog
from connectors.labelstudio_client import LabelStudioNotConfiguredError, label_studio_client
from connectors.review import model_sources, reviewed_sheet
from herbarium.labels.labelstudio_events import ANNOTATION_ACTIONS, TRAINING_ACTIONS, event_project
from herbarium.settings import plantai_home, retrain_every
from training.retraining import RetrainingError, RetrainSettings, retrain

log = logging.getLogger(__name__)

OPERATOR_URI = "@plantai/herbarium/retrain_model"
SETTINGS_FILE = "retraining.json"
COUNTS_FILE = "retraining-counts.json"
_SETTING_KEYS = ("epochs", "imgsz", "batch", "max_side", "val_fraction", "seed", "margin", "options")

Progress = Callable[[str, float], None]


# ---------------------------------------------------------------------------------------------
# Queueing


def queue_retraining(
    projects: Sequence[int],
    models: Sequence[str] | None = None,
    *,
    trigger: str = "cli",
    settings: Mapping[str, Any] | None = None,
    home: Path | None = None,
) -> str | None:
    """Queue one retraining job; returns its delegated operation id, or None when the same job is already queued."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionContext

    params: dict[str, Any] = {
        "projects": sorted(int(p) for p in projects),
        "models": sorted(models) if models else None,
        "trigger": trigger,
        "plantai_home": str(home or plantai_home()),
        **{k: v for k, v in dict(settings or {}).items() if k in _SETTING_KEYS and v is not None},
    }
    service = DelegatedOperationService()
    for op in service.get_queued_operations(operator=OPERATOR_URI):
        queued = dict((op.context.request_params or {}).get("params") or {}) if op.context else {}
        if {k: queued.get(k) for k in ("projects", "models", "plantai_home")} == {
            k: params[k] for k in ("projects", "models", "plantai_home")
        }:
            return None
    label = f"PlantAI retrain {','.join(params['models'] or ['project models'])} from projects {params['projects']}"
    context = ExecutionContext(request_params={"params": params})
    op = service.queue_operation(operator=OPERATOR_URI, label=label, context=context)
    log.info("queued %s (%s, trigger %s)", op.id, label, trigger)
    return str(op.id)


def queued_jobs() -> list[Any]:
    """The queued and running retraining operations (FiftyOne's DelegatedOperationDocument)."""
    from fiftyone.operators.delegated import DelegatedOperationService

    service = DelegatedOperationService()
    queued = service.get_queued_operations(operator=OPERATOR_URI)
    return [*queued, *service.get_running_operations(operator=OPERATOR_URI)]


def run_queued_jobs(limit: int | None = None) -> list[Any]:
    """Run the queued retraining jobs here, through FiftyOne's delegated-operation service (the operator must be
    registered: the plugin on ``FIFTYONE_PLUGINS_DIR``). Returns FiftyOne's ExecutionResult per job."""
    from fiftyone.operators.delegated import DelegatedOperationService

    return list(DelegatedOperationService().execute_queued_operations(operator=OPERATOR_URI, limit=limit))


# ---------------------------------------------------------------------------------------------
# Running a job (what the operator executes)


def project_models(client: Any, catalog: Catalog, project: int) -> list[str]:
    """The catalog models whose predictions ``project`` holds (Label Studio counts them per model_version)."""
    response = client._client_wrapper.httpx_client.request(f"api/projects/{project}/model-versions", method="GET")
    response.raise_for_status()
    known = {m.name for m in catalog.list_models()}
    names = {ref.partition("@")[0] for version in response.json() for ref in model_sources(str(version))}
    return sorted(names & known)


def settings_from(params: Mapping[str, Any]) -> RetrainSettings:
    values = {k: params[k] for k in _SETTING_KEYS if params.get(k) is not None}
    defaults = RetrainSettings()
    if "options" in values:  # Ultralytics options given for a job are added to the default recipe
        values["options"] = {**defaults.options, **dict(values["options"])}
    return replace(defaults, **values)


def run_job(params: Mapping[str, Any], progress: Progress | None = None, client: Any = None) -> dict[str, Any]:
    """Run one job: retrain each model (in turn) from the projects' corrections. Returns a report per model.

    A model that fails is reported failed (its run says why); the job raises only when every model failed.
    """
    projects = [int(p) for p in params.get("projects") or []]
    if not projects:
        raise RetrainingError("a retraining job needs at least one project")
    home = Path(params["plantai_home"]) if params.get("plantai_home") else None
    if client is None:
        try:
            client = label_studio_client(params.get("label_studio_url"))
        except LabelStudioNotConfiguredError as error:
            raise RetrainingError(f"{error} where retraining jobs run") from error
    settings = settings_from(params)
    reports: list[dict[str, Any]] = []
    with Catalog.open(home=home) as catalog:
        models = list(params.get("models") or [])
        if not models:
            found = [_configured_models(p, home) or project_models(client, catalog, p) for p in projects]
            models = sorted({name for names in found for name in names})
        if not models:
            raise RetrainingError(f"projects {projects} hold no predictions of a catalog model: name the model")
        for i, model in enumerate(models):

            def step(message: str, fraction: float, i: int = i, model: str = model) -> None:
                if progress is not None:
                    progress(f"{model}: {message}", (i + fraction) / len(models))

            try:
                trigger = str(params.get("trigger") or "queue")
                result = retrain(catalog, model, client, projects, settings=settings, progress=step, trigger=trigger)
                reports.append(result.to_dict())
            except Exception as error:
                log.exception("retraining %s failed", model)
                reports.append({"model": model, "status": "failed", "reason": f"{type(error).__name__}: {error}"})
    if all(r["status"] == "failed" for r in reports):
        raise RetrainingError("; ".join(f"{r['model']}: {r['reason']}" for r in reports))
    return {"jobs": reports}


# ---------------------------------------------------------------------------------------------
# Triggers from Label Studio's webhook


@contextlib.contextmanager
def _locked_json(path: Path) -> Iterator[dict[str, Any]]:
    """Read-modify-write a small JSON file under an exclusive lock (processes and threads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        yield data
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(path)


def _project_settings(project: int, home: Path | None) -> dict[str, Any]:
    path = (home or plantai_home()) / SETTINGS_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return dict((data.get("projects") or {}).get(str(project)) or {})


def _configured_models(project: int, home: Path | None) -> list[str]:
    return list(_project_settings(project, home).get("models") or [])


def configure_project(
    project: int, every: int | None = None, models: Sequence[str] | None = None, home: Path | None = None
) -> dict[str, Any]:
    """Set a project's trigger: retrain after ``every`` new validated annotations (0: never), which ``models``."""
    with _locked_json((home or plantai_home()) / SETTINGS_FILE) as data:
        entry = dict((data.setdefault("projects", {})).get(str(project)) or {})
        if every is not None:
            if every < 0:
                raise ValueError(f"every: expected 0 or more, got {every}")
            entry["every"] = every
        if models is not None:
            entry["models"] = sorted(models)
        data["projects"][str(project)] = entry
        return entry


def _every(project: int, home: Path | None) -> int:
    configured = _project_settings(project, home).get("every")
    if isinstance(configured, int):
        return configured
    return retrain_every()


def handle_event(event: Mapping[str, Any], home: Path | None = None) -> str | None:
    """Act on one Label Studio webhook event; returns the queued job's id, if one was queued."""
    action = str(event.get("action") or "")
    project = event_project(event)
    if project is None:
        return None
    models = _configured_models(project, home) or None
    if action in TRAINING_ACTIONS:
        return queue_retraining([project], models, trigger="label-studio-start-training", home=home)
    if action not in ANNOTATION_ACTIONS:
        return None
    annotation = event.get("annotation")
    if not isinstance(annotation, Mapping) or _review(annotation) != "validated":
        return None
    every = _every(project, home)
    if every <= 0:
        return None
    with _locked_json((home or plantai_home()) / COUNTS_FILE) as counts:
        seen = set(counts.get(str(project)) or [])
        seen.add(int(annotation.get("id") or 0))
        due = len(seen) >= every
        counts[str(project)] = [] if due else sorted(seen)
    if due:
        return queue_retraining([project], models, trigger=f"every-{every}-validated", home=home)
    return None


def _review(annotation: Mapping[str, Any]) -> str | None:
    from herbarium.labels.labelstudio import task_image_size

    width, height = task_image_size({"annotations": [annotation]}) or (1, 1)  # no region: any size reads the choices
    return reviewed_sheet(annotation, width, height).review


_events = threading.Semaphore(1)


def on_label_studio_event(event: dict[str, Any]) -> None:
    """The backend's webhook hook: returns at once; the event is handled (and a job maybe queued) in a thread."""
    if str(event.get("action") or "") not in TRAINING_ACTIONS | ANNOTATION_ACTIONS:
        return

    def work() -> None:
        with _events:  # one at a time: counters and duplicate checks stay consistent
            try:
                handle_event(event)
            except Exception:
                log.exception("retraining trigger for %s failed", event.get("action"))

    threading.Thread(target=work, name="plantai-retrain-trigger", daemon=True).start()


__all__ = [
    "OPERATOR_URI",
    "configure_project",
    "handle_event",
    "on_label_studio_event",
    "project_models",
    "queue_retraining",
    "queued_jobs",
    "run_job",
    "run_queued_jobs",
]
