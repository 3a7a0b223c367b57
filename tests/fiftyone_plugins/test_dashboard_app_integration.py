"""The real FiftyOne App with the PlantAI dashboard panel, photographed by headless chromium."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from herbarium.labels import LabelState
from herbarium.labels.fiftyone import as_fiftyone
from herbarium.synth import generate_sheet
from local_services.fiftyone_db import LocalFiftyOneDatabase
from local_services.process import free_loopback_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
INSPECTION_COPY = REPO_ROOT / ".cache" / "screenshots" / "fiftyone-dashboard.png"
VERSIONS = ("nonvegetal-detector@1.0.0", "nonvegetal-detector@1.1.0")


def _load_screenshots() -> ModuleType:
    spec = importlib.util.spec_from_file_location("plantai_docs_screenshots_fo", REPO_ROOT / "docs" / "screenshots.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _specimens(tmp_path: Path, name: str, n: int) -> Any:
    """A dataset of generated sheets: AI boxes from two detector versions, expert boxes on the first four."""
    from dataclasses import replace

    import fiftyone as fo

    samples = []
    for i in range(n):
        sheet = generate_sheet(500 + i, 360, 512)
        path = tmp_path / f"{sheet.catalog_number}.jpg"
        sheet.image.save(path)
        version = VERSIONS[i % 2]
        boxes = [replace(b, control="nonvegetal") for b in sheet.labels.boxes if b.control == "nonvegetal"]
        ai = as_fiftyone(sheet.labels.with_labels(replace(b, source=version, score=0.8) for b in boxes)).detections
        fields: dict[str, Any] = {**dict(sheet.darwin_core), "ai_nonvegetal": ai, "ai_model_versions": [version]}
        fields["review_state"] = "unreviewed"
        if i < 4:
            expert = [replace(b, source="expert:1", state=LabelState.VALIDATED) for b in boxes]
            if i % 2 == 0:
                expert[0] = replace(expert[0], state=LabelState.REJECTED)
            fields["expert_nonvegetal"] = as_fiftyone(sheet.labels.with_labels(expert)).detections
            fields["review_state"] = "validated"
        samples.append(fo.Sample(filepath=str(path), **fields))
    dataset = fo.Dataset(name, persistent=True)
    dataset.add_samples(samples)
    dataset.compute_metadata()
    return dataset


def test_the_app_shows_the_dashboard_panel_with_real_numbers(
    fiftyone_db: LocalFiftyOneDatabase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import fiftyone as fo
    from selenium.webdriver.common.by import By

    from connectors.search import prepare

    screenshots = _load_screenshots()
    monkeypatch.setenv("FIFTYONE_PLUGINS_DIR", str(REPO_ROOT / "fiftyone_plugins"))
    monkeypatch.setattr(fo.config, "plugins_dir", str(REPO_ROOT / "fiftyone_plugins"))
    name = f"dashboard-{time.time_ns()}"
    dataset = _specimens(tmp_path, name, 6)
    prepare(dataset)
    port = free_loopback_port()
    spaces = fo.Space(
        children=[fo.Panel(type="Samples", pinned=True), fo.Panel(type="herbarium_dashboard")],
        orientation="horizontal",
    )
    session = fo.launch_app(dataset, spaces=spaces, remote=True, address="127.0.0.1", port=port, auto=False)
    out = tmp_path / "dashboard.png"
    try:
        with screenshots.chromium_driver((1800, 1100)) as driver:
            driver.get(f"http://127.0.0.1:{port}/datasets/{name}")
            deadline = time.monotonic() + 120
            text = ""
            while time.monotonic() < deadline:
                text = driver.find_element(By.TAG_NAME, "body").text
                if "specimens in" in text and name in text and "Agreement" in driver.page_source:
                    break
                time.sleep(1)
            time.sleep(3)  # let the plots draw
            assert driver.save_screenshot(str(out))
    finally:
        session.close() if hasattr(session, "close") else None
    assert "PlantAI herbarium dashboard" in text, text[:2000]
    row = next(line for line in text.splitlines() if name in line)
    assert "6" in row.split(name, 1)[1]  # its specimen count, read from the database
    assert "nonvegetal-detector@1.0.0" in text
    assert out.stat().st_size > 50_000
    INSPECTION_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out, INSPECTION_COPY)
    dataset.delete()
