"""The lifecycle every local service shares: a failed start leaves nothing running."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from local_services.backend import LocalBackend
from local_services.process import LocalProcess, LocalService, ServiceStartError


class Sleeper(LocalService):
    """A child that never answers, or answers and then fails ``after_ready``."""

    def __init__(self, workdir: Path, answers: bool = False, ours: bool = True) -> None:
        super().__init__()
        self.workdir = workdir
        self.answers = answers
        self.ours = ours
        self.events: list[str] = []

    def launch(self) -> LocalProcess:
        argv = [sys.executable, "-c", "import time; time.sleep(60)"]
        return LocalProcess("sleeper", argv, {}, self.workdir / "sleeper.log", cwd=self.workdir)

    def ready(self) -> bool:
        return self.answers

    def after_ready(self) -> None:
        if not self.ours:
            raise ServiceStartError("not ours")

    def before_stop(self) -> None:
        self.events.append("before_stop")

    def after_stop(self) -> None:
        self.events.append("after_stop")


def test_a_service_that_never_answers_is_stopped_and_reported(tmp_path: Path) -> None:
    service = Sleeper(tmp_path)
    with pytest.raises(ServiceStartError, match="not ready"):
        service.start(timeout=1)
    assert service.pid is None
    assert not service.running


def test_a_service_that_answers_but_is_not_ours_is_stopped(tmp_path: Path) -> None:
    service = Sleeper(tmp_path, answers=True, ours=False)
    with pytest.raises(ServiceStartError, match="not ours"):
        service.start(timeout=5)
    assert service.pid is None
    assert service.events == ["before_stop", "after_stop"]


def test_a_started_service_stops_by_pid_with_its_hooks(tmp_path: Path) -> None:
    with Sleeper(tmp_path, answers=True) as service:
        pid = service.pid
        assert pid is not None
        assert psutil.pid_exists(pid)
        assert service.running
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert service.events == ["before_stop", "after_stop"]


def test_a_backend_gets_only_the_settings_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "stray-key")
    monkeypatch.setenv("PLANTAI_CATALOG_URL", "postgresql://stray")
    monkeypatch.setenv("PLANTAI_HOME", "/stray/home")
    env = LocalBackend(tmp_path, home=tmp_path / "home", document_root=tmp_path).environment()
    assert env["PLANTAI_HOME"] == str(tmp_path / "home")
    assert env["LOCAL_FILES_DOCUMENT_ROOT"] == str(tmp_path)
    assert "LABEL_STUDIO_API_KEY" not in env
    assert "PLANTAI_CATALOG_URL" not in env
    assert LocalBackend(tmp_path).environment()["PLANTAI_HOME"] == "/stray/home"  # no home given: inherited
