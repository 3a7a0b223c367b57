"""Start, watch and stop a local server by PID: the one lifecycle every local service shares."""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

import psutil


class ServiceStartError(RuntimeError):
    """A local service did not come up; the message carries the end of its log."""


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_ports(pid: int) -> set[int]:
    """TCP ports that ``pid`` or any of its children listen on."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return set()
    ports: set[int] = set()
    for process in processes:
        try:
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr:
                    ports.add(int(conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return ports


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its children (pages shared after a fork count once per process)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalProcess:
    """One server process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopping it stops its children too
            )

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until true; fail early if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServiceStartError(
                    f"{self.name} exited (code {code}) before {what}; log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise ServiceStartError(
            f"{self.name} not ready ({what}) after {timeout:.0f} s; log {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``grace`` seconds."""
        if self.process is None:
            return
        pid = self.process.pid
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # children that ignored SIGTERM
        if self.process.poll() is None:
            self.process.wait(timeout=grace)
        self.process = None


class LocalService(abc.ABC):
    """A local server's lifecycle: prepare, launch, wait until it answers, stop by PID.

    A subclass says how to launch (``launch``) and when it is ready (``ready``); it may check
    what answered (``after_ready``), shut down gracefully first (``before_stop``) and clean up
    (``after_stop``). A failed start stops what it started and raises ``ServiceStartError``.
    """

    start_timeout: float = 60.0

    def __init__(self) -> None:
        self._process: LocalProcess | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        process = self._process.process if self._process else None
        return process is not None and process.poll() is None

    @abc.abstractmethod
    def launch(self) -> LocalProcess:
        """Prepare what the server needs and return its (not yet started) process."""

    @abc.abstractmethod
    def ready(self) -> bool:
        """Whether the server answers; an ``OSError`` counts as not yet."""

    def readiness(self) -> str:
        """What ``ready`` waits for, for error messages."""
        return "ready"

    def after_ready(self) -> None:  # noqa: B027 (an optional hook)
        """Check what answered (raise ``ServiceStartError`` if it is not ours)."""

    def before_stop(self) -> None:  # noqa: B027 (an optional hook)
        """Ask the running server to shut down on its own, before its process group is signalled."""

    def after_stop(self) -> None:  # noqa: B027 (an optional hook)
        """Remove what only this run needed."""

    def start(self, timeout: float | None = None) -> Self:
        if self.running:
            raise ServiceStartError(f"{type(self).__name__} is already running (pid {self.pid})")
        try:
            self._process = self.launch()
            self._process.start()
            self._process.wait_until(self.ready, self.start_timeout if timeout is None else timeout, self.readiness())
            self.after_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            if self._process is not None:
                try:
                    if self.running:
                        self.before_stop()
                finally:  # a graceful stop that fails still ends with the process group signalled
                    self._process.stop()
                    self._process = None
        finally:
            self.after_stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
