"""Real PlantAI backends (``plantai serve`` under gunicorn) as HTTP servers, stopped by PID."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from local_services.process import LocalProcess, free_loopback_port


@dataclass
class RunningBackend:
    url: str
    process: LocalProcess
    log_path: Path

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop()


StartBackend = Callable[..., RunningBackend]


@pytest.fixture(scope="session")
def start_backend(session_root: Path) -> Iterator[StartBackend]:
    """Start ``plantai serve KIND`` on a free port over the catalog in ``plantai_home``."""
    started: list[RunningBackend] = []

    def start(
        plantai_home: Path,
        kind: str = "all",
        document_root: Path | None = None,
        label_studio_url: str | None = None,
        api_key: str | None = None,
        threads: int = 4,
    ) -> RunningBackend:
        port = free_loopback_port()
        env = {k: v for k, v in os.environ.items() if k not in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")}
        env["PLANTAI_HOME"] = str(plantai_home)
        env.pop("PLANTAI_CATALOG_URL", None)
        env.pop("LOCAL_FILES_DOCUMENT_ROOT", None)
        if document_root is not None:
            env["LOCAL_FILES_DOCUMENT_ROOT"] = str(document_root)
        if label_studio_url is not None:
            env["LABEL_STUDIO_URL"] = label_studio_url
        if api_key is not None:
            env["LABEL_STUDIO_API_KEY"] = api_key
        log_path = session_root / f"backend-{port}.log"
        argv = [sys.executable, "-m", "plantai", "serve", kind, "--port", str(port), "--threads", str(threads)]
        process = LocalProcess("plantai serve", argv, env, log_path, cwd=session_root)
        process.start()
        url = f"http://127.0.0.1:{port}"
        process.wait_until(
            lambda: requests.get(f"{url}/health", timeout=2).status_code == 200, 120, "answering /health"
        )
        backend = RunningBackend(url, process, log_path)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()
