"""Box-prompted segment-anything: the adapter's frames, and a backend serving a SAM checkpoint.

The SAM is a tiny random-weight ViT SAM (``tiny_models.py``) saved as a ``.pth`` checkpoint. Its
masks mean nothing botanically, but they are SAM's masks and they change with the box, so they
show whether a box reached the model in the right frame and whether the mask came back at the
right size. The organ detector is an untrained yolo11n that finds class-0 boxes on any image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from flask.testing import FlaskClient

from catalog.predictors import load_model
from catalog.registry import Catalog
from connectors.label_config import review_config
from herbarium.imaging import read_image
from herbarium.labels.labelstudio import from_labelstudio
from herbarium.synth import generate_sheet
from herbarium.taxonomy import ORGANS, PLANT
from ml_backends.adapters import BoxPrompts, SamSegmentationAdapter, adapter_for, organ_prompter
from ml_backends.server import create_app
from ml_backends.service import PredictionService
from ml_backends.task_images import TaskImages
from tests.ml_backends.tiny_models import always_detecting_yolo, save_tiny_sam, tiny_sam, untrained_yolo_segmenter

WIDTH, HEIGHT = 1024, 1448
BOX = (200.0, 300.0, 900.0, 1300.0)  # x1, y1, x2, y2 in the original frame
CONFIG = review_config(["detect-organs", "segment-plant"])  # organ boxes, plant mask and outline


@dataclass(frozen=True)
class Weights:
    sam: Path
    sam_retrained: Path  # same shape, other weights
    organs: Path
    segmenter: Path  # a YOLO segmentation model for segment-plant, which SAM must win over


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Weights:
    root = tmp_path_factory.mktemp("sam-weights")
    return Weights(
        sam=save_tiny_sam(root / "sam.pth", seed=0),
        sam_retrained=save_tiny_sam(root / "sam-v2.pth", seed=1),
        organs=always_detecting_yolo(root / "organs.pt", ORGANS.classes),
        segmenter=untrained_yolo_segmenter(root / "segmenter.pt", PLANT.classes),
    )


@pytest.fixture(scope="module")
def document_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    sheet = generate_sheet(seed=3, width=WIDTH, height=HEIGHT).image
    sheet.save(root / "sheet.png")
    sheet.save(root / "sheet.jpg", quality=95)
    return root


def _catalog(home: Path, weights: Weights, organs: bool) -> Catalog:
    catalog = Catalog.open(url=f"sqlite:///{home / 'catalog.db'}", home=home)
    catalog.register("plant-segmenter", "segment-plant", weights.segmenter, promote=True)
    catalog.register("plant-sam", "segment-plant", weights.sam, promote=True)
    if organs:
        catalog.register("organ-detector", "detect-organs", weights.organs, promote=True)
    return catalog


@pytest.fixture(scope="module")
def full_catalog(tmp_path_factory: pytest.TempPathFactory, weights: Weights) -> Catalog:
    """SAM, the YOLO segmenter and the organ detector, all in production."""
    return _catalog(tmp_path_factory.mktemp("full-home"), weights, organs=True)


@pytest.fixture(scope="module")
def sam_catalog(tmp_path_factory: pytest.TempPathFactory, weights: Weights) -> Catalog:
    """SAM and the YOLO segmenter in production, no organ detector."""
    return _catalog(tmp_path_factory.mktemp("sam-home"), weights, organs=False)


def _client(catalog: Catalog, document_root: Path) -> FlaskClient:
    service = PredictionService(catalog, TaskImages(document_root, None), refresh_s=0.0)
    return create_app(service).test_client()


def _task(task_id: int, name: str) -> dict[str, Any]:
    return {"id": task_id, "data": {"image": f"/data/local-files/?d={name}"}}


def _sam(catalog: Catalog, prompter: Any = None) -> SamSegmentationAdapter:
    adapter = adapter_for(load_model("plant-sam", catalog=catalog), "segment-plant", prompter=prompter)
    assert isinstance(adapter, SamSegmentationAdapter)
    return adapter


def _iou(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _sam_on_full_scan(path: Path) -> Any:
    """segment-anything's own predictor, on the full-resolution image, with the checkpoint's weights."""
    from segment_anything import SamPredictor

    predictor = SamPredictor(tiny_sam(seed=0))
    predictor.set_image(np.asarray(read_image(path).image))
    return predictor


@pytest.mark.parametrize(("name", "least_iou"), [("sheet.png", 0.99), ("sheet.jpg", 0.95)])
def test_a_box_on_a_reduced_decode_gives_the_mask_sam_gives_on_the_full_scan(
    sam_catalog: Catalog, document_root: Path, name: str, least_iou: float
) -> None:
    adapter = _sam(sam_catalog)
    picture = read_image(document_root / name, max_side=adapter.decode_side(None))
    assert max(picture.image.size) == 256  # the tiny SAM's input size: a sixth of the scan
    [labels] = adapter.predict([picture], prompts=[BoxPrompts((BOX,), merge=False)])
    assert (labels.width, labels.height) == (WIDTH, HEIGHT)
    [mask] = labels.masks
    assert mask.mask.shape == (HEIGHT, WIDTH)
    assert (mask.label, mask.source) == ("plant", "plant-sam@1.0.0")

    predictor = _sam_on_full_scan(document_root / name)
    reference = predictor.predict(box=np.array(BOX), multimask_output=False)[0][0]
    assert 0.05 < reference.mean() < 0.95  # a mask, neither nothing nor everything
    # PNG: the same pixels reach SAM either way, so only the frames could differ. JPEG: draft decoding adds noise.
    assert _iou(mask.mask, reference) >= least_iou
    # A box left in the decoded frame (a frame bug) gives another mask: the check above can fail.
    unscaled = predictor.predict(box=np.array(BOX) * picture.scale, multimask_output=False)[0][0]
    assert _iou(unscaled, reference) < 0.8

    # The outlines are the mask's, in the original frame (the tiny SAM's speckle has no outline of its own).
    assert labels.polygons
    filled = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    for polygon in labels.polygons:
        points = np.array(polygon.points)
        assert (points >= 0).all()
        assert (points[:, 0] <= WIDTH).all()
        assert (points[:, 1] <= HEIGHT).all()
        cv2.fillPoly(filled, [np.round(points).astype(np.int32)], 1)
    inside = filled.astype(bool)
    assert (inside & mask.mask).sum() >= 0.8 * inside.sum()  # a misplaced outline would cover the mask's share: 0.23
    assert inside.sum() >= 0.5 * mask.mask.sum()


def test_organ_boxes_prompt_one_plant_mask_the_union_of_each_box_mask(
    full_catalog: Catalog, document_root: Path
) -> None:
    prompter = organ_prompter(full_catalog)
    assert prompter is not None
    assert prompter.source == "organ-detector@1.0.0"
    adapter = _sam(full_catalog, prompter)
    assert adapter.decode_side(None) == 320  # the detector's input size, larger than SAM's
    picture = read_image(document_root / "sheet.jpg", max_side=adapter.decode_side(None))
    [prompt] = adapter.prompts([picture])
    assert prompt is not None
    assert prompt.merge
    assert len(prompt.boxes) >= 2
    [merged] = adapter.predict([picture])
    [plant] = merged.masks
    # A user's boxes give one mask each; the detector's give their union.
    [each] = adapter.predict([picture], prompts=[BoxPrompts(prompt.boxes, merge=False)])
    assert len(each.masks) == len(prompt.boxes)
    union = np.logical_or.reduce([m.mask for m in each.masks])
    assert 0.05 < union.mean() < 0.95
    assert _iou(plant.mask, union) >= 0.99


def test_the_backend_serves_sam_prompted_by_organs_instead_of_the_segmentation_model(
    full_catalog: Catalog, document_root: Path
) -> None:
    client = _client(full_catalog, document_root)
    setup = client.post("/setup", json={"project": "1.0", "schema": CONFIG})
    version = setup.get_json()["model_version"]
    assert version == "organ-detector@1.0.0+plant-sam@1.0.0"  # SAM and its prompter; the YOLO segmenter is out
    answer = client.post("/predict", json={"tasks": [_task(1, "sheet.jpg")], "project": "1.0", "label_config": CONFIG})
    assert answer.status_code == 200, answer.text
    [result] = answer.get_json()["results"]
    assert result["model_version"] == version
    regions = result["result"]
    assert {r["type"] for r in regions} == {"rectanglelabels", "brushlabels", "polygonlabels"}
    [brush] = [r for r in regions if r["type"] == "brushlabels"]
    assert (brush["from_name"], brush["value"]["format"], brush["value"]["brushlabels"]) == (
        "plant_mask",
        "rle",
        ["plant"],
    )
    [mask] = from_labelstudio([brush]).masks
    # The adapter on its own, with the detector's boxes: the backend sent exactly its mask.
    adapter = _sam(full_catalog, organ_prompter(full_catalog))
    [direct] = adapter.predict([read_image(document_root / "sheet.jpg", max_side=adapter.decode_side(None))])
    assert mask.mask.shape == (HEIGHT, WIDTH)
    assert np.array_equal(mask.mask, direct.masks[0].mask)


@pytest.mark.parametrize("tool", ["rectanglelabels", "rectangle"])
def test_a_box_drawn_in_label_studio_prompts_sam_alone(full_catalog: Catalog, document_root: Path, tool: str) -> None:
    x1, y1, x2, y2 = BOX
    value: dict[str, Any] = {
        "x": x1 / WIDTH * 100,
        "y": y1 / HEIGHT * 100,
        "width": (x2 - x1) / WIDTH * 100,
        "height": (y2 - y1) / HEIGHT * 100,
        "rotation": 0,
    }
    if tool == "rectanglelabels":
        value["rectanglelabels"] = ["leaf"]
    drawn = {
        "id": "drawn-1",
        "type": tool,
        "from_name": "organs",
        "to_name": "image",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": 0,
        "value": value,
    }
    client = _client(full_catalog, document_root)
    body = {"tasks": [_task(1, "sheet.jpg")], "label_config": CONFIG, "params": {"context": {"result": [drawn]}}}
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    [result] = answer.get_json()["results"]
    assert result["model_version"] == "organ-detector@1.0.0+plant-sam@1.0.0"
    # The organ boxes are already on the page: an interactive answer holds the new mask only.
    assert {r["type"] for r in result["result"]} == {"brushlabels", "polygonlabels"}
    [mask] = from_labelstudio([r for r in result["result"] if r["type"] == "brushlabels"]).masks
    adapter = _sam(full_catalog)
    picture = read_image(document_root / "sheet.jpg", max_side=adapter.decode_side(None))
    [direct] = adapter.predict([picture], prompts=[BoxPrompts((BOX,), merge=False)])
    assert _iou(mask.mask, direct.masks[0].mask) >= 0.999  # the box went through percentages and back


def test_without_a_box_prompt_sam_leaves_tasks_empty_and_says_why(
    sam_catalog: Catalog, document_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(sam_catalog, document_root)
    config = review_config(["segment-plant"])
    tasks = [_task(11, "sheet.jpg"), _task(12, "sheet.png")]
    with caplog.at_level(logging.WARNING, logger="ml_backends.service"):
        answer = client.post("/predict", json={"tasks": tasks, "label_config": config})
    results = answer.get_json()["results"]
    assert [r["result"] for r in results] == [[], []]
    assert {r["model_version"] for r in results} == {"plant-sam@1.0.0"}  # SAM still wins over the segmenter
    for task_id in (11, 12):
        assert (
            f"task {task_id}: no plant mask from plant-sam@1.0.0: no box prompt: no rectangle drawn and no "
            "production detect-organs model" in caplog.text
        )
    # An interactive call with a keypoint only: SAM here takes boxes only.
    keypoint = {
        "type": "keypointlabels",
        "from_name": "points",
        "to_name": "image",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "value": {"x": 50, "y": 50, "keypointlabels": ["plant"]},
    }
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ml_backends.service"):
        body = {
            "tasks": [_task(13, "sheet.jpg")],
            "label_config": config,
            "params": {"context": {"result": [keypoint]}},
        }
        answer = client.post("/predict", json=body)
    assert [r["result"] for r in answer.get_json()["results"]] == [[]]
    assert "task 13: no plant mask from plant-sam@1.0.0: no box prompt: the request's context holds no rectangle" in (
        caplog.text
    )
    assert "plantai_backend_unprompted_tasks_total 3" in client.get("/metrics").text


def test_promoting_another_sam_version_reaches_the_running_backend(
    tmp_path: Path, weights: Weights, document_root: Path
) -> None:
    catalog = _catalog(tmp_path / "home", weights, organs=True)
    client = _client(catalog, document_root)
    body = {"tasks": [_task(1, "sheet.png")], "label_config": review_config(["segment-plant"])}

    def plant_mask() -> tuple[str, np.ndarray[Any, Any]]:
        [result] = client.post("/predict", json=body).get_json()["results"]
        [mask] = from_labelstudio([r for r in result["result"] if r["type"] == "brushlabels"]).masks
        return result["model_version"], mask.mask

    first_version, first = plant_mask()
    assert first_version == "organ-detector@1.0.0+plant-sam@1.0.0"
    catalog.register("plant-sam", "segment-plant", weights.sam_retrained, promote=True)
    second_version, second = plant_mask()
    assert second_version == "organ-detector@1.0.0+plant-sam@1.1.0"
    assert _iou(first, second) < 0.9  # the new weights answered, not a cached model
