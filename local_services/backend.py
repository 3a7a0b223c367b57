"""A local PlantAI backend: ``plantai serve KIND`` on a free loopback port, stopped by PID."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from local_services.process import LocalProcess, LocalService, free_loopback_port

# Settings that decide what a backend serves and to whom: the child gets those it is given, never this
# process's (PLANTAI_HOME aside: without a home given, the child shares this process's).
_NOT_INHERITED = (
    "PLANTAI_CATALOG_URL",
    "LOCAL_FILES_DOCUMENT_ROOT",
    "LABEL_STUDIO_URL",
    "LABEL_STUDIO_API_KEY",
    "BASIC_AUTH_USER",
    "BASIC_AUTH_PASS",
)


class LocalBackend(LocalService):
    """``plantai serve`` over the catalog in ``home``; ``url`` answers ``/health`` once started.

    ``home=None`` keeps this process's ``PLANTAI_HOME``; the other settings above that the caller
    does not pass are not inherited, so a test never serves a stray catalog.
    """

    start_timeout = 120.0

    def __init__(
        self,
        workdir: Path,
        *,
        kind: str = "all",
        home: Path | None = None,
        document_root: Path | None = None,
        label_studio_url: str | None = None,
        api_key: str | None = None,
        threads: int | None = None,
        workers: int | None = None,
        basic_auth: tuple[str, str] | None = None,
        port: int | None = None,
        name: str = "plantai serve",
    ) -> None:
        super().__init__()
        self.workdir = workdir
        self.kind = kind
        self.port = port or free_loopback_port()
        self.name = name
        self.threads = threads
        self.workers = workers
        given = {
            "PLANTAI_HOME": home,
            "LOCAL_FILES_DOCUMENT_ROOT": document_root,
            "LABEL_STUDIO_URL": label_studio_url,
            "LABEL_STUDIO_API_KEY": api_key,
            "BASIC_AUTH_USER": basic_auth[0] if basic_auth else None,
            "BASIC_AUTH_PASS": basic_auth[1] if basic_auth else None,
        }
        self.given_settings = {key: str(value) for key, value in given.items() if value is not None}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"backend-{self.port}.log"

    def environment(self) -> dict[str, str]:
        inherited = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
        return {**inherited, **self.given_settings}

    def launch(self) -> LocalProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "plantai", "serve", self.kind, "--port", str(self.port)]
        if self.threads is not None:
            argv += ["--threads", str(self.threads)]
        if self.workers is not None:
            argv += ["--workers", str(self.workers)]
        return LocalProcess(self.name, argv, self.environment(), self.log_path, cwd=self.workdir)

    def ready(self) -> bool:
        return requests.get(f"{self.url}/health", timeout=2).status_code == 200

    def readiness(self) -> str:
        return "answering /health"
