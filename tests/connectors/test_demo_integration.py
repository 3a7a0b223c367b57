"""`plantai demo --exit-after-ready`: the whole platform comes up, reports READY, and stops what it started."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.local_labelstudio import LABEL_STUDIO_VERSION, build_template

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _answers(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def test_demo_reaches_ready_with_every_task_predicted_then_stops(tmp_path: Path) -> None:
    home = tmp_path / "plantai-home"
    template = REPO_ROOT / ".cache" / f"label-studio-template-{LABEL_STUDIO_VERSION}"
    build_template(template)
    shutil.copytree(template, home / f"label-studio-template-{LABEL_STUDIO_VERSION}")
    env = {**os.environ, "PLANTAI_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    for name in ("FIFTYONE_DATABASE_URI", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "PLANTAI_CATALOG_URL"):
        env.pop(name, None)
    argv = [sys.executable, "-m", "plantai", "demo", "--no-browser", "--exit-after-ready", "--profile", "quick"]
    result = subprocess.run(
        [*argv, "--sheets", "3"], env=env, capture_output=True, text=True, timeout=1200, check=False, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    [ready] = [line for line in result.stdout.splitlines() if line.startswith("READY")]
    fields = dict(part.split("=", 1) for part in ready.split()[1:])
    assert fields["tasks"] == "3"
    assert fields["predicted"] == "3"
    assert re.search(r"nonvegetal-detector@\d", output)
    # Everything it started is stopped.
    for key in ("label_studio", "app"):
        assert not _answers(fields[key]), f"{key} still answers at {fields[key]}"
