"""docs/screenshots.py photographs a real Label Studio task pre-annotated by a real PlantAI backend."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image, ImageStat

from catalog.registry import Catalog
from connectors.label_config import review_config
from herbarium.synth import generate_sheet
from local_services.labelstudio import LocalLabelStudio
from ml_backends.connect import connect_backend, predict_all_tasks

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_screenshots() -> ModuleType:
    """docs/screenshots.py by path: ``import docs`` may find another distribution's docs/ in site-packages."""
    spec = importlib.util.spec_from_file_location("plantai_docs_screenshots", REPO_ROOT / "docs" / "screenshots.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


screenshots = _load_screenshots()
INSPECTION_COPY = REPO_ROOT / ".cache" / "screenshots" / "labelstudio-preannotations.png"
MODELS = {
    "nonvegetal-detector": ("detect-nonvegetal", "detect"),
    "plant-segmenter": ("segment-plant", "segment"),
    "phenology-classifier": ("phenology", "classify"),
}


def _preannotated_task(
    label_studio: LocalLabelStudio, ls_client: Any, trained: Any, backend_url: str
) -> tuple[int, int]:
    """A project with one generated sheet and the backend's predictions; (project id, task id)."""
    folder = label_studio.server.document_root / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    seed = trained.val_seeds[0]
    generate_sheet(seed, trained.width, trained.height).image.save(folder / f"sheet-{seed}.jpg", quality=92)
    project = ls_client.projects.create(title="PlantAI screenshot", label_config=review_config())
    storage = ls_client.import_storage.local.create(
        project=project.id, path=str(folder), regex_filter=r".*\.jpg", use_blob_urls=True
    )
    ls_client.import_storage.local.sync(id=storage.id)
    connect_backend(ls_client, project.id, backend_url, extra_params={"conf": 0.05})
    predict_all_tasks(ls_client, project.id)
    [task] = list(ls_client.tasks.list(project=project.id))
    return project.id, task.id


def test_screenshot_shows_the_sheet_with_the_backends_preannotations(
    label_studio: LocalLabelStudio,
    ls_client: Any,
    trained_models: Any,
    start_backend: Any,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    home = tmp_path_factory.mktemp("screenshot-backend-home")
    catalog = Catalog.open(home=home)
    for name, (task, weights) in MODELS.items():
        catalog.register(name, task=task, weights=getattr(trained_models, weights), promote=True)
    backend = start_backend(
        home,
        document_root=label_studio.server.document_root,
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
    )
    try:
        project, task = _preannotated_task(label_studio, ls_client, trained_models, backend.url)
    finally:
        backend.stop()  # the predictions are stored in Label Studio: the page needs no backend
    [prediction] = ls_client.predictions.list(task=task)
    boxes = [r for r in prediction.result if r["type"] == "rectanglelabels"]
    regions = [r for r in prediction.result if r["type"] != "choices"]  # boxes, and masks if the segmenter found any
    phenology = [r["value"]["choices"][0] for r in prediction.result if r["from_name"] == "phenology"]
    assert boxes, "the detector found nothing on this sheet: nothing to photograph"
    assert len(phenology) == 1

    account = label_studio.server.account
    out = tmp_path / "labelstudio-preannotations.png"
    # The regions list renders only the rows that fit on screen: wait for those.
    visible = min(len(regions), 8)
    shot = screenshots.labelstudio_task_screenshot(
        label_studio.url, account.email, account.password, project, task, out, min_regions=visible, min_choices=1
    )

    INSPECTION_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out, INSPECTION_COPY)
    assert out.is_file()
    assert shot.path == out
    with Image.open(out) as png:
        assert png.size == screenshots.WINDOW == shot.size
        grey = png.convert("L")
        assert ImageStat.Stat(grey).stddev[0] > 20, "the screenshot is (nearly) one colour"
        # The image panel (left of the regions list) holds the sheet: not blank either.
        assert ImageStat.Stat(grey.crop((240, 100, 1000, 900))).stddev[0] > 20
    assert visible <= shot.regions <= len(regions)
    assert {label for label in shot.region_labels if label} <= {r["value"][r["type"]][0] for r in regions}
    assert list(shot.choices) == phenology
    assert shot.image_size == (trained_models.width, trained_models.height)
