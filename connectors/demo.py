"""``plantai demo``: the whole platform on one machine, from embedded defaults.

A local Label Studio (from a migrated template, with a printed login), the default models
trained on generated sheets and promoted in a SQLite catalog, a PlantAI backend, generated
specimens (and the user's own images), a review project with pre-annotations, and the synced
FiftyOne dataset in the App. Everything lives under ``$PLANTAI_HOME/demo`` and a rerun reuses it;
every process started here is stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from connectors.local_fiftyone_db import LocalFiftyOneDatabase
from connectors.local_labelstudio import LABEL_STUDIO_VERSION, LabelStudioServer, LocalLabelStudio
from connectors.local_process import LocalProcess, ServiceStartError, free_loopback_port

DEMO_PROJECT_TITLE = "PlantAI demo"
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


def _port(preferred: int) -> int:
    """The preferred port when free (stable URLs across runs), else any free one."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_loopback_port()


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
        self._backend: LocalProcess | None = None
        self._app: Any = None

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
        self._timed("sync", lambda: self._sync(client))
        if self.settings.launch_app:
            self._timed("app", self._launch_app)
        return self.state

    def _timed(self, step: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = action()
        self.state.seconds[step] = round(time.perf_counter() - started, 1)
        return result

    def _start_database(self) -> None:
        self._database = LocalFiftyOneDatabase(self.root / "fiftyone-db", port=free_loopback_port()).start()
        # FiftyOne reads its settings when first imported: point it at our database first.
        os.environ["FIFTYONE_DATABASE_URI"] = self._database.uri
        os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
        os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

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
        from connectors.bootstrap import bootstrap_default_models

        self.say(f"Default models ({self.settings.profile} profile): trained on generated sheets the first time")
        report = bootstrap_default_models(
            Catalog.open(home=self.settings.home),
            self.root / "bootstrap",
            profile=self.settings.profile,
            real_samples_dir=self.settings.real_samples,
        )
        self.state.models = {m.name: m.version for m in report.models}
        if report.real_plant_iou is not None:
            self.say(f"  plant-mask IoU on the real sample sheets: {report.real_plant_iou:.3f}")
        for model in report.models:
            how = "cached" if model.cached else f"trained in {model.seconds:.0f} s"
            self.say(f"  {model.name}@{model.version} ({how})")

    def _start_backend(self) -> None:
        assert self._label_studio is not None
        port = _port(self.settings.backend_port)
        env = {
            **os.environ,
            "PLANTAI_HOME": str(self.settings.home),
            "LOCAL_FILES_DOCUMENT_ROOT": str(self.files),
            "LABEL_STUDIO_URL": self._label_studio.url,
            "LABEL_STUDIO_API_KEY": self._label_studio.token,
        }
        env.pop("PLANTAI_CATALOG_URL", None)
        argv = [sys.executable, "-m", "plantai", "serve", "all", "--port", str(port)]
        self._backend = LocalProcess("plantai serve", argv, env, self.root / "backend.log", cwd=self.root)
        self._backend.start()
        url = f"http://127.0.0.1:{port}"
        self._backend.wait_until(lambda: requests.get(f"{url}/health", timeout=2).ok, 120, "answering /health")
        self.state.backend_url = url
        self.say(f"PlantAI backend is up: {url}")

    def _specimens(self) -> list[Any]:
        from connectors.projects import SpecimenTask
        from herbarium.synth import load_manifest, write_sheets

        generated = self.specimens / "generated"
        try:
            manifest = load_manifest(generated)
            if len(manifest.sheets) != self.settings.sheets:
                raise ValueError("another size")
        except Exception:
            self.say(f"Generating {self.settings.sheets} herbarium sheets")
            manifest = write_sheets(generated, n=self.settings.sheets, size=self.settings.sheet_size, seed=1000)
        specimens = [
            SpecimenTask(sheet.catalog_number, manifest.root / sheet.image, dict(sheet.darwin_core))
            for sheet in manifest.sheets
        ]
        if self.settings.user_images is not None:
            linked = self.specimens / "your-images"
            if not linked.exists():
                linked.symlink_to(self.settings.user_images.resolve(), target_is_directory=True)
            images = sorted(p for p in linked.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            specimens += [SpecimenTask(p.stem, p, {}) for p in images]
            self.say(f"Adding {len(images)} of your images from {self.settings.user_images}")
        return specimens

    def _client(self) -> Any:
        from label_studio_sdk import LabelStudio

        assert self._label_studio is not None
        return LabelStudio(base_url=self._label_studio.url, api_key=self._label_studio.token)  # type: ignore[no-untyped-call]

    def _project(self, client: Any, specimens: list[Any]) -> None:
        from connectors.projects import create_project, import_specimens

        existing = [p for p in client.projects.list() if p.title == DEMO_PROJECT_TITLE]
        project = existing[0] if existing else create_project(client, DEMO_PROJECT_TITLE, self.specimens, self.files)
        new, _ = import_specimens(client, project.id, specimens, self.files)
        self.state.project_id = int(project.id)
        self.say(f"Project '{DEMO_PROJECT_TITLE}': {len(new)} new tasks")

    def _pre_annotate(self, client: Any, timeout: float = 600) -> None:
        from ml_backends.connect import connect_backend, predict_all_tasks

        assert self.state.project_id is not None
        project = self.state.project_id
        connect_backend(client, project, self.state.backend_url)
        self.say("Pre-annotating every task with the four default models")
        predict_all_tasks(client, project)
        deadline = time.monotonic() + timeout
        while True:
            tasks = list(client.tasks.list(project=project, fields="task_only"))
            predicted = sum(1 for t in tasks if t.total_predictions)
            if predicted == len(tasks) or time.monotonic() > deadline:
                break
            time.sleep(1)
        self.state.tasks, self.state.predicted = len(tasks), predicted
        if predicted < len(tasks):
            raise ServiceStartError(
                f"only {predicted} of {len(tasks)} tasks got predictions; see {self.root}/backend.log"
            )

    def _sync(self, client: Any) -> None:
        from connectors.sync import sync_project

        assert self.state.project_id is not None
        report = sync_project(client, self.state.project_id, document_root=self.files)
        self.state.dataset = report.dataset
        self.say(f"FiftyOne dataset '{report.dataset}': {report.added} added, {report.updated} updated")

    def _launch_app(self) -> None:
        import fiftyone as fo

        port = _port(self.settings.app_port)
        dataset = fo.load_dataset(self.state.dataset)
        self._app = fo.launch_app(dataset, remote=True, address="127.0.0.1", port=port, auto=False)
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
