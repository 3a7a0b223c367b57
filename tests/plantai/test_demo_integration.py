"""`plantai demo --exit-after-ready`: the whole platform comes up, reports READY, and stops what it started.

One run covers the plain demo and the simulated experts' round (``--simulate-experts``): every step
of the plain demo happens first, then the correction loop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from local_services.labelstudio import LABEL_STUDIO_VERSION, build_template

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _answers(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def test_demo_reaches_ready_runs_the_expert_round_then_stops(tmp_path: Path) -> None:
    home = tmp_path / "plantai-home"
    template = REPO_ROOT / ".cache" / f"label-studio-template-{LABEL_STUDIO_VERSION}"
    build_template(template)
    shutil.copytree(template, home / f"label-studio-template-{LABEL_STUDIO_VERSION}")
    env = {**os.environ, "PLANTAI_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    for name in ("FIFTYONE_DATABASE_URI", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "PLANTAI_CATALOG_URL"):
        env.pop(name, None)
    argv = [sys.executable, "-m", "plantai", "demo", "--no-browser", "--exit-after-ready", "--profile", "quick"]
    # 3 demo sheets and a batch of 45 for the experts: 48 corrected sheets, 12 of them held out.
    argv += ["--sheets", "3", "--simulate-experts", "--expert-sheets", "45", "--json"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800, check=False, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    state = json.loads(result.stdout)  # with --json, stdout holds the JSON alone
    assert state["expert_round"]["status"] == "promoted"
    assert "@plantai/herbarium" in state["app_plugins"]  # the App has the operators and the dashboard
    [ready] = [line for line in result.stderr.splitlines() if line.startswith("READY")]
    fields = dict(part.split("=", 1) for part in ready.split()[1:])
    assert fields["tasks"] == "48"
    assert fields["predicted"] == "48"  # every task, by version 2 (the demo waits for that)
    assert re.search(r"nonvegetal-detector@\d", output)
    # The round: version 2 trained on the corrections, better on the same held-out sheets, promoted.
    assert fields["expert_round"] == "promoted", output[-3000:]
    done = json.loads((home / "demo" / "expert-round.json").read_text())
    assert done["corrected_sheets"] == 48
    assert (done["production"], done["candidate"]) == ("nonvegetal-detector@1.0.0", "nonvegetal-detector@1.1.0")
    assert done["candidate_score"] > done["production_score"], done
    assert "agreement" in done  # FiftyOne compared both versions' predictions
    print(f"expert round: {done['metric']} {done['production_score']:.4f} -> {done['candidate_score']:.4f}")
    from catalog.registry import Catalog

    with Catalog.open(home=home) as catalog:
        v2 = catalog.version("nonvegetal-detector", "1.1.0")
        assert v2.stage == "production"
        assert v2.metrics["mAP50-95"] == done["candidate_score"]
        assert v2.metrics["production_mAP50-95"] == done["production_score"]
    # Everything it started is stopped.
    for key in ("label_studio", "app"):
        assert not _answers(fields[key]), f"{key} still answers at {fields[key]}"
