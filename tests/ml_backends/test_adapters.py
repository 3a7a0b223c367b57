"""Adapters put predictions in the original image's frame, whatever size or orientation it was stored in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from catalog.predictors import load_model
from catalog.registry import Catalog
from herbarium.imaging import SpecimenImage, read_image
from herbarium.synth import generate_sheet
from ml_backends.adapters import ClassificationAdapter, DetectionAdapter, Tiling, adapter_for


@pytest.fixture(scope="module")
def detector(trained_models: Any, tmp_path_factory: pytest.TempPathFactory) -> DetectionAdapter:
    catalog = Catalog.open(home=tmp_path_factory.mktemp("adapters-home"))
    catalog.register("nonvegetal-detector", task="detect-nonvegetal", weights=trained_models.detect, promote=True)
    adapter = adapter_for(load_model("nonvegetal-detector", catalog=catalog), "detect-nonvegetal", conf=0.05)
    assert isinstance(adapter, DetectionAdapter)
    return adapter


@pytest.fixture(scope="module")
def sheet(trained_models: Any) -> Image.Image:
    return generate_sheet(trained_models.val_seeds[0], trained_models.width, trained_models.height).image


def _boxes(
    adapter: DetectionAdapter, path: Path, tiling: Tiling | None = None, min_score: float = 0.0
) -> np.ndarray[Any, Any]:
    picture = read_image(path, max_side=adapter.decode_side(tiling))
    [labels] = adapter.predict([picture], tiling)
    assert (labels.width, labels.height) == (picture.original_width, picture.original_height)
    return np.array(sorted((b.x, b.y, b.width, b.height) for b in labels.boxes if (b.score or 0) >= min_score))


def _each_has_a_match(confident: np.ndarray[Any, Any], others: np.ndarray[Any, Any], tolerance: float) -> bool:
    """Every confident box has a box in ``others`` within ``tolerance`` pixels on each coordinate.

    The tiny test model's weakest boxes come and go with resampling noise, so only confident ones are compared,
    within 3% of the sheet's size: a frame bug (a missed scale or rotation) is off by far more.
    """
    return all(np.abs(others - box).max(axis=1).min() <= tolerance for box in confident)


def test_a_bigger_scan_gives_the_same_boxes_scaled(
    detector: DetectionAdapter, sheet: Image.Image, tmp_path: Path
) -> None:
    small, big = tmp_path / "small.jpg", tmp_path / "big.jpg"
    sheet.save(small, quality=95)
    sheet.resize((sheet.width * 4, sheet.height * 4), Image.Resampling.BICUBIC).save(big, quality=95)
    four_times = _boxes(detector, big)
    assert len(four_times) > 0
    # The same decoded pixels, said to come from the small scan: every box lands a quarter of the way.
    decoded = read_image(big, max_side=detector.decode_side(None))
    as_small = SpecimenImage(image=decoded.image, original_width=sheet.width, original_height=sheet.height)
    [labels] = detector.predict([as_small])
    quarter = np.array(sorted((b.x, b.y, b.width, b.height) for b in labels.boxes))
    np.testing.assert_allclose(quarter, four_times / 4, atol=0.01)
    # Decoding the small scan itself lands on nearly the same pixels: its confident boxes are found again.
    confident = _boxes(detector, small, min_score=0.3)
    assert _each_has_a_match(confident, four_times / 4, tolerance=0.1 * max(sheet.size))


def test_exif_rotated_scan_gives_boxes_in_the_displayed_frame(
    detector: DetectionAdapter, sheet: Image.Image, tmp_path: Path
) -> None:
    upright, rotated = tmp_path / "upright.jpg", tmp_path / "rotated.jpg"
    sheet.save(upright, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; shown upright after a 90° clockwise turn
    sheet.transpose(Image.Transpose.ROTATE_90).save(rotated, quality=95, exif=exif)
    confident = _boxes(detector, upright, min_score=0.3)
    assert len(confident) > 0
    assert _each_has_a_match(confident, _boxes(detector, rotated), tolerance=0.03 * max(sheet.size))


def test_tiled_inference_keeps_boxes_inside_the_original_frame(
    detector: DetectionAdapter, sheet: Image.Image, tmp_path: Path
) -> None:
    big = tmp_path / "big.jpg"
    sheet.resize((sheet.width * 3, sheet.height * 3), Image.Resampling.BICUBIC).save(big, quality=95)
    tiling = Tiling(tile=320, overlap=0.25, decode_side=1280)
    boxes = _boxes(detector, big, tiling)
    assert len(boxes) > 0
    x, y, w, h = boxes.T
    assert (x >= 0).all()
    assert (y >= 0).all()
    assert (x + w <= sheet.width * 3 + 1e-6).all()
    assert (y + h <= sheet.height * 3 + 1e-6).all()


def test_tiles_cover_the_picture_with_overlap() -> None:
    windows = Tiling(tile=300, overlap=0.2, decode_side=1000).windows(1000, 700)
    covered = np.zeros((700, 1000), dtype=bool)
    for left, top, right, bottom in windows:
        assert right - left == 300
        assert bottom - top == 300
        covered[top:bottom, left:right] = True
    assert covered.all()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, None),
        ({"tiling": True}, Tiling()),
        ({"tiling": {"tile": 512, "decode_side": 1024}}, Tiling(512, 0.2, 1024)),
    ],
)
def test_tiling_comes_from_project_params(params: dict[str, Any], expected: Tiling | None) -> None:
    assert Tiling.from_params(params) == expected


def test_classifier_answers_one_choice_per_image(trained_models: Any, sheet: Image.Image, tmp_path: Path) -> None:
    catalog = Catalog.open(home=tmp_path / "home")
    catalog.register("phenology-classifier", task="phenology", weights=trained_models.classify, promote=True)
    adapter = adapter_for(load_model("phenology-classifier", catalog=catalog), "classify-trait")
    assert isinstance(adapter, ClassificationAdapter)
    path = tmp_path / "sheet.jpg"
    sheet.save(path)
    [labels] = adapter.predict([read_image(path, max_side=adapter.decode_side(None))])
    [choice] = labels.classifications
    assert choice.control == "phenology"
    assert choice.label in ("flowering", "fruiting", "sterile")
    assert choice.source == "phenology-classifier@1.0.0"
    assert 0 < (choice.score or 0) <= 1


def test_classifier_sees_the_sheet_as_ultralytics_would_at_full_size(
    trained_models: Any, sheet: Image.Image, tmp_path: Path
) -> None:
    """The reduced decode loses nothing the classifier uses: the probabilities match a full-size predict."""
    catalog = Catalog.open(home=tmp_path / "home")
    catalog.register("phenology-classifier", task="phenology", weights=trained_models.classify, promote=True)
    loaded = load_model("phenology-classifier@1.0.0", catalog=catalog)
    adapter = adapter_for(loaded, "classify-trait")
    path = tmp_path / "sheet.png"
    sheet.resize((sheet.width * 4, sheet.height * 4)).save(path)  # a big scan, decoded much smaller
    picture = read_image(path, max_side=adapter.decode_side(None))
    assert min(picture.image.size) >= adapter.imgsz  # never enlarged on the way in
    reduced = loaded.predict(picture.image, imgsz=adapter.imgsz)[0].probs.data.numpy()
    full = loaded.predict(read_image(path).image, imgsz=adapter.imgsz)[0].probs.data.numpy()
    assert np.abs(reduced - full).max() < 0.1, (reduced, full)
