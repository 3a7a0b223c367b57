"""A private PostgreSQL cluster for tests and demos: ``initdb`` + ``postgres`` on a free loopback port.

Uses Debian's server binaries (``/usr/lib/postgresql/<major>/bin``). PostgreSQL refuses to run
as root, so when we are root the data dir belongs to the ``postgres`` user and the server runs
as that user through ``runuser``. Stopped by PID (the postmaster's, via its process group).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from local_services.process import LocalProcess, LocalService, ServiceStartError, free_loopback_port

POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL server's bin dir."""
    candidates = [p for p in Path("/").glob(POSTGRES_BIN_GLOB.lstrip("/")) if (p / "initdb").exists()]
    if not candidates:
        raise ServiceStartError(
            f"no PostgreSQL server binaries in {POSTGRES_BIN_GLOB}: apt-get install postgresql (make system-deps)"
        )
    return max(candidates, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


class LocalPostgres(LocalService):
    """A throwaway cluster in ``base_dir`` (a new temp dir by default), trust auth on 127.0.0.1 only."""

    def __init__(self, base_dir: Path | None = None, port: int | None = None, os_user: str = "postgres") -> None:
        super().__init__()
        self.base_dir = base_dir
        self.port = port or free_loopback_port()
        self.os_user = os_user
        self._owns_base_dir = base_dir is None

    @property
    def data_dir(self) -> Path:
        if self.base_dir is None:
            raise ServiceStartError("the cluster has not been started")
        return self.base_dir / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database} connect_timeout=2"

    def _as_server_user(self, argv: list[str]) -> list[str]:
        # The server refuses to run as root; as anyone else it runs as that user.
        return ["runuser", "-u", self.os_user, "--", *argv] if os.geteuid() == 0 else argv

    def launch(self) -> LocalProcess:
        bin_dir = postgres_bin_dir()
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="plantai-postgres-"))
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base_dir, self.os_user, self.os_user)
        initdb = [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"]
        result = subprocess.run(
            self._as_server_user([*initdb, "--no-sync"]), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ServiceStartError(f"initdb failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            "",  # no unix socket: TCP on loopback only
            "-c",
            "fsync=off",  # a throwaway cluster: durability buys nothing
            "-c",
            "max_connections=200",
        ]
        return LocalProcess(
            "postgres", self._as_server_user(argv), dict(os.environ), self.base_dir / "postgres.log", cwd=self.base_dir
        )

    def ready(self) -> bool:
        try:
            with psycopg.connect(self._conninfo()):
                return True
        except psycopg.OperationalError:
            return False

    def readiness(self) -> str:
        return f"accepting connections on port {self.port}"

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URL."""
        if not _DATABASE_NAME.match(name):
            raise ValueError(f"database name {name!r} must be lower-case letters, digits and underscores")
        with psycopg.connect(self._conninfo(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # validated above; identifiers cannot be bound
        return self.url(name)

    def before_stop(self) -> None:
        # Fast shutdown: a smart one would wait for every pooled client to disconnect.
        subprocess.run(
            self._as_server_user(
                [str(postgres_bin_dir() / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"]
            ),
            capture_output=True,
            check=False,
            timeout=60,
        )

    def after_stop(self) -> None:
        if self._owns_base_dir and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
