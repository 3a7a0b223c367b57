"""``plantai serve segmentation`` under gunicorn serving a SAM checkpoint from the catalog, prompted by organ boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from catalog.predictors import load_model
from catalog.registry import Catalog
from connectors.label_config import review_config
from herbarium.imaging import read_image
from herbarium.labels.labelstudio import from_labelstudio
from herbarium.synth import generate_sheet
from herbarium.taxonomy import ORGANS
from ml_backends.adapters import adapter_for, organ_prompter
from tests.ml_backends.tiny_models import always_detecting_yolo, save_tiny_sam

pytestmark = pytest.mark.integration

CONFIG = review_config(["segment-plant"])  # BrushLabels and PolygonLabels for the plant


def test_a_served_sam_checkpoint_fills_the_brush_tag_with_rle(
    tmp_path_factory: pytest.TempPathFactory, start_backend: Any
) -> None:
    home = tmp_path_factory.mktemp("sam-serve-home")
    weights = tmp_path_factory.mktemp("sam-serve-weights")
    root = tmp_path_factory.mktemp("sam-serve-files")
    generate_sheet(seed=7, width=900, height=1260).image.save(root / "sheet.jpg", quality=92)
    catalog = Catalog.open(url=f"sqlite:///{home / 'catalog.db'}", home=home)
    catalog.register("plant-sam", "segment-plant", save_tiny_sam(weights / "sam.pth"), promote=True)
    catalog.register("organ-detector", "detect-organs", always_detecting_yolo(weights / "organs.pt", ORGANS.classes))
    catalog.promote("organ-detector", "1.0.0")

    # A segmentation backend: it serves no organ boxes, but the organ detector still prompts SAM.
    backend = start_backend(home, kind="segmentation", document_root=root)
    setup = requests.post(f"{backend.url}/setup", json={"project": "1.0", "schema": CONFIG}, timeout=30)
    version = setup.json()["model_version"]
    assert version == "organ-detector@1.0.0+plant-sam@1.0.0"
    task = {"id": 1, "data": {"image": "/data/local-files/?d=sheet.jpg"}}
    answer = requests.post(
        f"{backend.url}/predict", json={"tasks": [task], "project": "1.0", "label_config": CONFIG}, timeout=120
    )
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    assert result["model_version"] == version
    [brush] = [r for r in result["result"] if r["type"] == "brushlabels"]
    assert brush["value"]["format"] == "rle"
    assert (brush["original_width"], brush["original_height"]) == (900, 1260)
    assert any(r["type"] == "polygonlabels" for r in result["result"])
    [served] = from_labelstudio([brush]).masks
    assert served.mask.shape == (1260, 900)

    # The same checkpoint and detector in this process give the same mask.
    adapter = adapter_for(load_model("plant-sam", catalog=catalog), "segment-plant", prompter=organ_prompter(catalog))
    [local] = adapter.predict([read_image(root / "sheet.jpg", max_side=adapter.decode_side(None))])
    [expected] = local.masks
    overlap = (served.mask & expected.mask).sum() / max(1, (served.mask | expected.mask).sum())
    assert expected.mask.any()
    assert overlap >= 0.99
    assert "plant-sam@1.0.0" in requests.get(f"{backend.url}/versions", timeout=10).json()["versions"]
    assert "Traceback" not in Path(backend.log_path).read_text(errors="replace")
    backend.stop()
