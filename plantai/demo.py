"""``plantai demo``: the whole platform on one machine, from embedded defaults.

A local Label Studio (from a migrated template, with a printed login), the default models
trained on generated sheets and promoted in a SQLite catalog, a PlantAI backend, generated
specimens (and the user's own images), a review project with pre-annotations, and the synced
FiftyOne dataset in the App. Everything lives under ``$PLANTAI_HOME/demo`` and a rerun reuses it;
every process started here is stopped by PID.

With ``simulate_experts`` the correction loop runs once, visibly: a new batch of generated sheets
is pre-annotated by version 1, "experts" submit the generated ground truth as validated
annotations, one model is retrained from those corrections and gated against production on the
same held-out sheets, and when promoted every task is predicted again by version 2; FiftyOne then
holds both versions' predictions and how far they agree.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from local_services.backend import LocalBackend
from local_services.fiftyone_db import LocalFiftyOneDatabase
from local_services.labelstudio import LABEL_STUDIO_VERSION, LabelStudioServer, LocalLabelStudio
from local_services.process import ServiceStartError, free_loopback_port

DEMO_PROJECT_TITLE = "PlantAI demo"
GENERATED_SEED = 1000
EXPERT_ROUND_SEED = 5000  # the simulated experts' batch: other sheets than the demo's own
EXPERT_ROUND_FILE = "expert-round.json"
DASHBOARD_PANEL = "herbarium_dashboard"  # fiftyone_plugins/herbarium's panel, opened beside the samples
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")

Say = Callable[[str], None]


@dataclass
class DemoSettings:
    home: Path
    user_images: Path | None = None
    sheets: int = 12
    sheet_size: int = 1024
    profile: str = "demo"
    real_samples: Path | None = None
    label_studio_port: int = 8080
    backend_port: int = 9090
    app_port: int = 5151
    launch_app: bool = True
    simulate_experts: bool = False
    expert_sheets: int = 36  # the new batch the simulated experts correct (besides the demo's sheets)
    retrain_model: str = "nonvegetal-detector"
    retrain_epochs: int = 30


@dataclass
class DemoState:
    label_studio_url: str = ""
    backend_url: str = ""
    app_url: str | None = None
    project_id: int | None = None
    dataset: str | None = None
    tasks: int = 0
    predicted: int = 0
    models: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    expert_round: dict[str, Any] | None = None  # the simulated experts' round, when asked for
    app_plugins: list[str] = field(default_factory=list)  # FiftyOne plugins the App was launched with


def _port(preferred: int) -> int:
    """The preferred port when free (stable URLs across runs), else any free one."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_loopback_port()


def _specimen_tasks(manifest: Any) -> list[Any]:
    from connectors.projects import SpecimenTask

    return [
        SpecimenTask(sheet.catalog_number, manifest.root / sheet.image, dict(sheet.darwin_core))
        for sheet in manifest.sheets
    ]


def submit_ground_truth(client: Any, project: int, manifests: list[Any]) -> int:
    """Validated expert annotations, from the generated ground truth, on tasks no expert has annotated yet.

    Tasks are matched to generated sheets by catalog number; other tasks (the user's own images)
    are left for real experts. Returns how many annotations were submitted.
    """
    from connectors.label_config import IMAGE_NAME, REVIEW_CONTROL
    from connectors.projects import CATALOG_NUMBER_KEY
    from herbarium.labels.labelstudio import as_labelstudio

    records = {sheet.catalog_number: (manifest.root, sheet) for manifest in manifests for sheet in manifest.sheets}
    validated = {
        "from_name": REVIEW_CONTROL,
        "to_name": IMAGE_NAME,
        "type": "choices",
        "value": {"choices": ["validated"]},
    }
    submitted = 0
    for task in client.tasks.list(project=project, fields="all"):
        found = records.get(str((task.data or {}).get(CATALOG_NUMBER_KEY)))
        if found is None or task.total_annotations:
            continue
        root, sheet = found
        result = as_labelstudio(sheet.specimen_labels(root), to_name=IMAGE_NAME)
        client.annotations.create(id=task.id, result=[*result, validated])
        submitted += 1
    return submitted


def expert_round_training(epochs: int) -> Any:
    """The round's recipe: more epochs at 320 px and the bootstrap's learning rate, so that a few dozen
    corrected sheets visibly move a quickly bootstrapped model (the retraining defaults fine-tune gently)."""
    from training.retraining import RetrainSettings

    options = {"mosaic": 0.0, "warmup_epochs": 1, "val": False, "optimizer": "AdamW", "lr0": 0.003}
    return RetrainSettings(epochs=epochs, imgsz=320, options=options)


def _round_summary(done: dict[str, Any]) -> str:
    old, new = done.get("production_score"), done.get("candidate_score")
    scores = f"{done.get('metric')} {old:.3f} -> {new:.3f}" if old is not None and new is not None else ""
    why = "" if done.get("status") == "promoted" else f"; {done.get('reason')}"
    versions = f"{done.get('production')} -> {done.get('candidate')}"
    return f"{versions}: {done.get('status')} ({scores} on the same held-out sheets{why})"


def plugins_dir() -> Path:
    """Where FiftyOne finds PlantAI's plugins: the installed ``fiftyone_plugins`` package, found, not imported."""
    spec = importlib.util.find_spec("fiftyone_plugins")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceStartError("the fiftyone_plugins package is not installed: pip install -e . (make install)")
    return Path(next(iter(spec.submodule_search_locations)))


class Demo:
    def __init__(self, settings: DemoSettings, say: Say = print) -> None:
        self.settings = settings
        self.say = say
        self.root = settings.home / "demo"
        self.files = self.root / "files"  # Label Studio's document root
        self.specimens = self.files / "specimens"  # the project's storage (Label Studio refuses the root itself)
        self.state = DemoState()
        self._label_studio: LocalLabelStudio | None = None
        self._database: LocalFiftyOneDatabase | None = None
        self._backend: LocalBackend | None = None
        self._app: Any = None
        self._demo_sheets: Any = None  # the generated sheets' manifest, once written or found

    # -- the steps --------------------------------------------------------------------
    def run(self) -> DemoState:
        self.specimens.mkdir(parents=True, exist_ok=True)
        self._timed("database", self._start_database)
        self._timed("label_studio", self._start_label_studio)
        self._timed("models", self._bootstrap_models)
        self._timed("backend", self._start_backend)
        specimens = self._timed("specimens", self._specimens)
        client = self._client()
        self._timed("project", lambda: self._project(client, specimens))
        self._timed("pre_annotation", lambda: self._pre_annotate(client))
        if self.settings.simulate_experts:
            self._timed("expert_round", lambda: self._expert_round(client))
        self._timed("sync", lambda: self._sync(client))
        if self.state.expert_round and self.state.expert_round.get("status") == "promoted":
            self._timed("versions", self._compare_versions)
        if self.settings.launch_app:
            self._timed("app", self._launch_app)
        return self.state

    def _timed(self, step: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = action()
        self.state.seconds[step] = round(time.perf_counter() - started, 1)
        return result

    def _start_database(self) -> None:
        database = LocalFiftyOneDatabase(self.root / "fiftyone-db", port=free_loopback_port())
        # FiftyOne reads its settings when first imported, and finding mongod imports it: set them first,
        # or FiftyOne would start a database of its own and the App would miss the PlantAI plugin.
        os.environ["FIFTYONE_DATABASE_URI"] = database.uri
        os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
        os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
        os.environ.setdefault("FIFTYONE_PLUGINS_DIR", str(plugins_dir()))  # the App's PlantAI operators and dashboard
        self._database = database.start()

    def _start_label_studio(self) -> None:
        server = LabelStudioServer(
            data_dir=self.root / "label-studio",
            document_root=self.files,
            port=_port(self.settings.label_studio_port),
        )
        template = self.settings.home / f"label-studio-template-{LABEL_STUDIO_VERSION}"
        if not template.exists():
            self.say("Preparing Label Studio's database (first run only, about 40 s)")
        self._label_studio = LocalLabelStudio(server, template).start()
        self.state.label_studio_url = server.url
        self.say(f"Label Studio is up: {server.url}  (login {server.account.email} / {server.account.password})")

    def _bootstrap_models(self) -> None:
        from catalog.registry import Catalog
        from training.bootstrap import bootstrap_default_models

        where = "real sheets, composites and generated sheets" if self.settings.real_samples else "generated sheets"
        self.say(f"Default models ({self.settings.profile} profile): trained on {where} the first time")
        report = bootstrap_default_models(
            Catalog.open(home=self.settings.home),
            self.root / "bootstrap",
            profile=self.settings.profile,
            real_samples_dir=self.settings.real_samples,
        )
        self.state.models = {m.name: m.version for m in report.models}
        if report.real_plant_iou is not None:
            self.say(f"  on {report.real_sheets} held-out real sheets: plant-mask IoU {report.real_plant_iou:.3f}")
        for model in report.models:
            how = "cached" if model.cached else f"trained in {model.seconds:.0f} s"
            self.say(f"  {model.name}@{model.version} ({how})")

    def _start_backend(self) -> None:
        assert self._label_studio is not None
        backend = LocalBackend(
            self.root,
            home=self.settings.home,
            document_root=self.files,
            label_studio_url=self._label_studio.url,
            api_key=self._label_studio.token,
            port=_port(self.settings.backend_port),
        )
        self._backend = backend.start()
        self.state.backend_url = backend.url
        self.say(f"PlantAI backend is up: {backend.url}")

    def _backend_log(self) -> Path:
        return self._backend.log_path if self._backend else self.root

    def _generated(self, folder: str, n: int, seed: int) -> Any:
        """A manifest of ``n`` generated sheets under the project's storage, reused when already there."""
        from herbarium.synth import load_manifest, write_sheets

        out = self.specimens / folder
        try:
            manifest = load_manifest(out)
            if len(manifest.sheets) == n and manifest.seed == seed:
                return manifest
        except Exception:  # missing or from an older run: write it again
            pass
        self.say(f"Generating {n} herbarium sheets ({folder})")
        return write_sheets(out, n=n, size=self.settings.sheet_size, seed=seed)

    def _specimens(self) -> list[Any]:
        manifest = self._demo_sheets = self._generated("generated", self.settings.sheets, GENERATED_SEED)
        specimens = _specimen_tasks(manifest)
        if self.settings.user_images is not None:
            linked = self.specimens / "your-images"
            if not linked.exists():
                linked.symlink_to(self.settings.user_images.resolve(), target_is_directory=True)
            from connectors.projects import SpecimenTask

            images = sorted(p for p in linked.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            specimens += [SpecimenTask(p.stem, p, {}) for p in images]
            self.say(f"Adding {len(images)} of your images from {self.settings.user_images}")
        return specimens

    def _client(self) -> Any:
        from connectors.labelstudio_client import label_studio_client

        assert self._label_studio is not None
        return label_studio_client(self._label_studio.url, self._label_studio.token)

    def _project(self, client: Any, specimens: list[Any]) -> None:
        from connectors.projects import create_project, import_specimens

        existing = [p for p in client.projects.list() if p.title == DEMO_PROJECT_TITLE]
        project = existing[0] if existing else create_project(client, DEMO_PROJECT_TITLE, self.specimens, self.files)
        new, _ = import_specimens(client, project.id, specimens, self.files)
        self.state.project_id = int(project.id)
        self.say(f"Project '{DEMO_PROJECT_TITLE}': {len(new)} new tasks")

    def _pre_annotate(self, client: Any) -> None:
        from ml_backends.connect import connect_backend, predict_all_tasks

        assert self.state.project_id is not None
        connect_backend(client, self.state.project_id, self.state.backend_url)
        self.say("Pre-annotating every task with the four default models")
        predict_all_tasks(client, self.state.project_id)
        self._wait_for_predictions(client)

    def _wait_for_predictions(self, client: Any, model_ref: str | None = None, timeout: float = 600) -> None:
        """Until every task has a prediction (whose version names ``model_ref``, when given)."""
        assert self.state.project_id is not None
        project = self.state.project_id
        deadline = time.monotonic() + timeout
        while True:
            tasks = {int(t.id) for t in client.tasks.list(project=project, fields="task_only")}
            predicted = {
                int(p.task)
                for p in client.predictions.list(project=project)
                if model_ref is None or model_ref in str(p.model_version).split("+")
            }
            done = len(tasks & predicted)
            if done == len(tasks) or time.monotonic() > deadline:
                break
            time.sleep(1)
        self.state.tasks, self.state.predicted = len(tasks), done
        if done < len(tasks):
            by = f" by {model_ref}" if model_ref else ""
            raise ServiceStartError(f"only {done} of {len(tasks)} tasks got predictions{by}; see {self._backend_log()}")

    # -- the simulated experts' round -------------------------------------------------------
    def _expert_round(self, client: Any) -> None:
        from catalog.registry import Catalog
        from connectors.projects import import_specimens
        from ml_backends.connect import predict_all_tasks
        from training.retraining import retrain

        assert self.state.project_id is not None
        project = self.state.project_id
        settings = self.settings
        catalog = Catalog.open(home=settings.home)
        record_path = self.root / EXPERT_ROUND_FILE
        if record_path.is_file():
            done = json.loads(record_path.read_text(encoding="utf-8"))
            candidate = str(done.get("candidate") or "@")
            if catalog.get(settings.retrain_model).production == candidate.split("@")[1]:
                self.state.expert_round = done
                self.state.models[settings.retrain_model] = candidate.split("@")[1]
                self.say(f"Simulated experts' round already done: {_round_summary(done)}")
                return

        batch = self._generated("expert-round", settings.expert_sheets, EXPERT_ROUND_SEED)
        new, _ = import_specimens(client, project, _specimen_tasks(batch), self.files)
        if new:
            self.say(f"A new batch of {len(new)} specimens arrives; version 1 pre-annotates it")
            predict_all_tasks(client, project)
            self._wait_for_predictions(client)

        manifests = [self._demo_sheets, batch]
        submitted = submit_ground_truth(client, project, manifests)
        self.say(f"Simulated experts corrected and validated {submitted} sheets (the generated ground truth)")

        self.say(f"Retraining {settings.retrain_model} from their corrections ({settings.retrain_epochs} epochs)")
        last = [""]

        def progress(message: str, fraction: float) -> None:
            step = message.split(" epoch")[0]
            if step != last[0]:
                last[0] = step
                self.say(f"  {message}")

        result = retrain(
            catalog,
            settings.retrain_model,
            client,
            [project],
            settings=expert_round_training(settings.retrain_epochs),
            document_root=self.files,
            progress=progress,
            trigger="demo-simulated-experts",
        )
        done = {**result.to_dict(), "corrected_sheets": submitted}
        self.state.expert_round = done
        self.say(_round_summary(done))
        if result.status == "promoted" and result.candidate:
            self.state.models[settings.retrain_model] = result.candidate.split("@")[1]
            self._repredict(client, result.candidate)
        self._save_round()

    def _save_round(self) -> None:
        """What the round did, beside the demo's state: a rerun reuses it instead of training again."""
        (self.root / EXPERT_ROUND_FILE).write_text(json.dumps(self.state.expert_round, indent=2), encoding="utf-8")

    def _repredict(self, client: Any, candidate: str) -> None:
        """Every task predicted again, once the running backend serves the promoted ``candidate``."""
        from ml_backends.connect import predict_all_tasks

        assert self.state.project_id is not None
        config = client.projects.get(id=self.state.project_id).label_config
        setup = {"project": f"{self.state.project_id}.0", "schema": config}
        deadline = time.monotonic() + 60
        while candidate not in str(requests.post(f"{self.state.backend_url}/setup", json=setup, timeout=10).json()):
            if time.monotonic() > deadline:
                raise ServiceStartError(f"the backend did not pick up {candidate}; see {self._backend_log()}")
            time.sleep(0.5)
        self.say(f"The backend now serves {candidate} (no restart); predicting every task again")
        predict_all_tasks(client, self.state.project_id)
        self._wait_for_predictions(client, candidate)

    def _compare_versions(self) -> None:
        import fiftyone as fo

        from catalog.registry import Catalog
        from training.version_comparison import compare_versions

        done = self.state.expert_round or {}
        model, old = str(done["production"]).split("@")
        new = str(done["candidate"]).split("@")[1]
        dataset = fo.load_dataset(self.state.dataset)
        summary = compare_versions(dataset, Catalog.open(home=self.settings.home), model, old, new, conf=0.25)
        done["agreement"] = summary["agreement"]
        self._save_round()
        self.say(
            f"FiftyOne: fields {' and '.join(summary['fields'])} hold both versions' predictions; "
            f"agreement {summary['agreement']:.2f} ({summary['measure']})"
        )

    def _sync(self, client: Any) -> None:
        from connectors.sync import sync_project

        assert self.state.project_id is not None
        report = sync_project(client, self.state.project_id, document_root=self.files)
        self.state.dataset = report.dataset
        self.say(f"FiftyOne dataset '{report.dataset}': {report.added} added, {report.updated} updated")

    def _launch_app(self) -> None:
        import fiftyone as fo
        import fiftyone.plugins as fop

        from connectors.search import prepare

        port = _port(self.settings.app_port)
        dataset = fo.load_dataset(self.state.dataset)
        prepare(dataset)  # search indexes and the saved views (not yet reviewed, disagreements, ...)
        self.state.app_plugins = sorted(plugin.name for plugin in fop.list_plugins())
        spaces = fo.Space(
            children=[fo.Panel(type="Samples", pinned=True), fo.Panel(type=DASHBOARD_PANEL)],
            orientation="horizontal",
        )
        self._app = fo.launch_app(dataset, spaces=spaces, remote=True, address="127.0.0.1", port=port, auto=False)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise ServiceStartError(f"the FiftyOne App did not answer on {url}")
        self.state.app_url = url

    # -- the end ----------------------------------------------------------------------
    def stop(self) -> None:
        if self._app is not None:
            with contextlib.suppress(Exception):  # the App's shutdown errors must not keep the others running
                self._app.close()
        for service in (self._backend, self._label_studio, self._database):
            if service is not None:
                service.stop()
