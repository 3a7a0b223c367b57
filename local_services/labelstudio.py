"""A local Label Studio server for tests and the demo, started from a template data dir.

A fresh data dir spends about 40 s on database migrations; ``label-studio init`` builds a
template once, and each server starts on a copy in about 5 s.

Each data dir has its own Django ``SECRET_KEY`` (it signs sessions and JWT access tokens), made on
first start and kept, readable by its owner only, in ``<data dir>/.plantai-secret-key``; a server's
copy of the template leaves the template's key behind and makes its own.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import requests

from local_services.process import (
    LocalProcess,
    LocalService,
    ServiceStartError,
    free_loopback_port,
    listening_ports,
    log_tail,
)

LABEL_STUDIO_VERSION = "1.23.2"
_TEMPLATE_MARKER = ".plantai-template"
SECRET_KEY_FILE = ".plantai-secret-key"


@dataclass(frozen=True)
class LabelStudioAccount:
    """The admin account baked into a template (its legacy token is enabled at init)."""

    email: str = "admin@plantai.local"
    password: str = "plantai-admin"  # a local, loopback-only server
    token: str = "plantai-local-token-0123456789abcdef"


@dataclass
class LabelStudioServer:
    """Settings of one server: where its data lives and which files it may serve."""

    data_dir: Path
    document_root: Path
    port: int = field(default_factory=free_loopback_port)
    account: LabelStudioAccount = field(default_factory=LabelStudioAccount)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _label_studio_executable() -> str:
    beside_python = Path(sys.executable).parent / "label-studio"
    return str(beside_python) if beside_python.exists() else "label-studio"


def secret_key(data_dir: Path) -> str:
    """``data_dir``'s own Django ``SECRET_KEY``: read from ``data_dir/.plantai-secret-key``, or made there
    (random, mode 0600) the first time. Concurrent first starts agree: the file appears whole or not at all."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_KEY_FILE
    if not path.exists():
        staging = data_dir / f"{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(8)}"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(secrets.token_urlsafe(50) + "\n")
            os.link(staging, path)  # fails when another start made it first: theirs is kept
        except FileExistsError:
            pass
        finally:
            staging.unlink(missing_ok=True)
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ServiceStartError(f"{path} holds no secret key: delete it and start again")
    return key


def copy_template(template_dir: Path, data_dir: Path) -> None:
    """Copy the template into a server's data dir, less the template's secret key (the server makes its own)."""
    shutil.copytree(template_dir, data_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(f"{SECRET_KEY_FILE}*"))


def label_studio_env(data_dir: Path, account: LabelStudioAccount, document_root: Path | None = None) -> dict[str, str]:
    """Environment for ``label-studio init/start`` on loopback, with local files and ML backends allowed,
    and ``data_dir``'s own secret key (:func:`secret_key`)."""
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": account.email,
        "LABEL_STUDIO_PASSWORD": account.password,
        "LABEL_STUDIO_USER_TOKEN": account.token,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # only honoured when the organisation is created
        "ML_BLOCK_LOCAL_IP": "false",  # backends run on 127.0.0.1
        "SSRF_PROTECTION_ENABLED": "false",  # else webhooks to loopback backends fail silently
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SECRET_KEY": secret_key(data_dir),
        "PYTHONUNBUFFERED": "1",
    }
    if document_root is not None:
        env["LOCAL_FILES_SERVING_ENABLED"] = "true"
        env["LOCAL_FILES_DOCUMENT_ROOT"] = str(document_root)
    return env


def build_template(template_dir: Path, account: LabelStudioAccount | None = None, timeout: float = 300) -> Path:
    """Build (once) a migrated Label Studio data dir with ``account`` in it; reuse it after."""
    account = account or LabelStudioAccount()
    if (template_dir / _TEMPLATE_MARKER).exists():
        return template_dir
    template_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="ls-template-", dir=template_dir.parent))
    log_path = template_dir.parent / "ls-template-init.log"
    with log_path.open("wb") as log:
        result = subprocess.run(
            [_label_studio_executable(), "init", "--no-browser", "--quiet"],
            env=label_studio_env(staging, account),
            cwd=staging,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0 or not (staging / "label_studio.sqlite3").exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise ServiceStartError(f"label-studio init failed (code {result.returncode}):\n{log_tail(log_path)}")
    (staging / _TEMPLATE_MARKER).write_text(f"label-studio {LABEL_STUDIO_VERSION}\n{account.email}\n")
    try:
        staging.rename(template_dir)  # atomic: a concurrent builder either wins or finds it built
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return template_dir


class LocalLabelStudio(LocalService):
    """Start ``label-studio`` on a copy of a template; stop it by PID."""

    start_timeout = 120.0

    def __init__(self, server: LabelStudioServer, template_dir: Path) -> None:
        super().__init__()
        self.server = server
        self.template_dir = template_dir

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.server.account.token

    def launch(self) -> LocalProcess:
        build_template(self.template_dir, self.server.account)
        data_dir = self.server.data_dir
        if not (data_dir / "label_studio.sqlite3").exists():
            copy_template(self.template_dir, data_dir)
        self.server.document_root.mkdir(parents=True, exist_ok=True)
        env = label_studio_env(data_dir, self.server.account, self.server.document_root)
        argv = [
            _label_studio_executable(),
            "start",
            "--no-browser",
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(self.server.port),
        ]
        return LocalProcess("label-studio", argv, env, data_dir / "label-studio.log", cwd=data_dir)

    def ready(self) -> bool:
        response = requests.get(
            f"{self.url}/api/current-user/whoami",
            headers={"Authorization": f"Token {self.token}"},
            timeout=5,
        )
        return response.status_code == 200

    def readiness(self) -> str:
        return f"answering on {self.url}"

    def after_ready(self) -> None:
        # Label Studio silently moves to the next port when its port is busy: make sure it is ours.
        pid = self.pid
        if pid is None or self.server.port not in listening_ports(pid):
            raise ServiceStartError(f"port {self.server.port} answered, but not from the Label Studio we started")
