"""Shared test data for the label converters: seeded random specimens and the real plant masks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from herbarium.labels import (
    BoxLabel,
    ClassificationLabel,
    Label,
    LabelState,
    MaskLabel,
    PolygonLabel,
    SpecimenLabels,
)
from herbarium.taxonomy import ORGANS, TRAITS

# The real masks live outside the repository (../shared) and are read in place, never copied.
SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
PLANT_MASKS = SHARED / "data" / "herbarium-samples" / "plant-masks"
REAL_MASK_PATHS = sorted([*PLANT_MASKS.glob("masks/*.png"), *PLANT_MASKS.glob("instance-masks/*.png")])


def real_mask_params() -> list[Any]:
    """One pytest param per real mask PNG, or one skipped param saying why there are none."""
    if not REAL_MASK_PATHS:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"real plant masks not found under {PLANT_MASKS}"))]
    return [pytest.param(path, id=f"{path.parent.name}/{path.stem}") for path in REAL_MASK_PATHS]


def read_mask(path: Path) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """A 0/255 PNG as a bool mask."""
    with Image.open(path) as image:
        mask: np.ndarray[Any, np.dtype[np.bool_]] = np.asarray(image.convert("L")) > 127
    return mask


def random_mask(rng: np.random.Generator, width: int, height: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """A few filled ellipses, some with a hole, some touching the border."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(12, max(13, width // 4))), int(rng.integers(12, max(13, height // 4))))
        cv2.ellipse(canvas, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        if rng.random() < 0.5:
            cv2.circle(canvas, center, int(min(axes) // 3), 0, -1)
    return canvas > 0


def random_polygon(rng: np.random.Generator, width: int, height: int) -> tuple[tuple[float, float], ...]:
    """A star-shaped polygon (sorted angles, random radii) inside the image."""
    n = int(rng.integers(3, 13))
    cx, cy = rng.uniform(0.2 * width, 0.8 * width), rng.uniform(0.2 * height, 0.8 * height)
    radius = rng.uniform(5, 0.2 * min(width, height))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = rng.uniform(0.3, 1.0, n) * radius
    return tuple((float(cx + r * math.cos(a)), float(cy + r * math.sin(a))) for a, r in zip(angles, radii, strict=True))


def _meta(rng: np.random.Generator, k: int, *, metadata: bool) -> dict[str, Any]:
    if not metadata:
        return {"score": float(rng.uniform(0, 1)) if rng.random() < 0.7 else None}
    return {
        "score": float(rng.uniform(0, 1)) if rng.random() < 0.7 else None,
        "source": "organs@1.2.0" if rng.random() < 0.5 else "expert:7",
        "state": LabelState(rng.choice([s.value for s in LabelState])),
        "comment": f"note {k}" if rng.random() < 0.5 else None,
        "region_id": f"id{k}",
        "control": "label",
        "attributes": {"verdict": (str(rng.choice(["correct", "wrong"])),)} if rng.random() < 0.5 else {},
    }


def random_specimen(
    seed: int,
    *,
    width: int = 640,
    height: int = 480,
    boxes: int = 4,
    polygons: int = 3,
    masks: int = 2,
    rotated: bool = True,
    classifications: bool = True,
    metadata: bool = True,
) -> SpecimenLabels:
    """Seeded random labels in canonical order: boxes and masks, then polygons, then classifications."""
    rng = np.random.default_rng(seed)
    labels: list[Label] = []
    k = 0
    for _ in range(boxes):
        w, h = rng.uniform(1, 0.3 * width), rng.uniform(1, 0.3 * height)
        labels.append(
            BoxLabel(
                label=str(rng.choice(ORGANS.classes)),
                x=float(rng.uniform(0, width - w)),
                y=float(rng.uniform(0, height - h)),
                width=float(w),
                height=float(h),
                rotation=float(rng.uniform(-180, 180)) if rotated and rng.random() < 0.5 else 0.0,
                **_meta(rng, k, metadata=metadata),
            )
        )
        k += 1
    for _ in range(masks):
        labels.append(
            MaskLabel(label="plant", mask=random_mask(rng, width, height), **_meta(rng, k, metadata=metadata))
        )
        k += 1
    for _ in range(polygons):
        labels.append(
            PolygonLabel(
                label=str(rng.choice(ORGANS.classes)),
                points=random_polygon(rng, width, height),
                **_meta(rng, k, metadata=metadata),
            )
        )
        k += 1
    if classifications:
        for control, label_set in TRAITS.items():
            meta = _meta(rng, k, metadata=metadata)
            meta["control"] = control
            meta.pop("comment", None)
            meta.pop("attributes", None)  # per-region data; a specimen-level value has none
            labels.append(ClassificationLabel(label=str(rng.choice(label_set.classes)), **meta))
            k += 1
    return SpecimenLabels(width=width, height=height, labels=labels, comment="two sheets" if metadata else None)


def assert_labels_match(actual: SpecimenLabels, expected: SpecimenLabels, *, tol: float = 1e-6) -> None:
    """Same labels in the same order: geometry within ``tol`` pixels, masks and all else exactly."""
    assert (actual.width, actual.height) == (expected.width, expected.height)
    assert actual.comment == expected.comment
    assert [type(label) for label in actual.labels] == [type(label) for label in expected.labels]
    for got, want in zip(actual.labels, expected.labels, strict=True):
        if isinstance(want, BoxLabel):
            assert isinstance(got, BoxLabel)
            for name in ("x", "y", "width", "height", "rotation"):
                assert getattr(got, name) == pytest.approx(getattr(want, name), abs=tol), name
        elif isinstance(want, PolygonLabel):
            assert isinstance(got, PolygonLabel)
            assert np.allclose(got.points, want.points, rtol=0, atol=tol)
        elif isinstance(want, MaskLabel):
            assert isinstance(got, MaskLabel)
            assert got.mask.shape == want.mask.shape
            assert np.array_equal(got.mask, want.mask)
        geometry = {"x", "y", "width", "height", "rotation", "points", "mask", "score"}
        assert {k: v for k, v in vars(got).items() if k not in geometry} == {
            k: v for k, v in vars(want).items() if k not in geometry
        }
        if want.score is None:
            assert got.score is None
        else:
            assert got.score == pytest.approx(want.score, abs=1e-12)


def iou(a: np.ndarray[Any, np.dtype[np.bool_]], b: np.ndarray[Any, np.dtype[np.bool_]]) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Real masks are parameters, so each file passes or fails on its own.
    if "real_mask_path" in metafunc.fixturenames:
        metafunc.parametrize("real_mask_path", real_mask_params())


@pytest.fixture
def real_mask(real_mask_path: Path) -> np.ndarray[Any, np.dtype[np.bool_]]:
    return read_mask(real_mask_path)


@pytest.fixture
def make_specimen() -> Any:
    return random_specimen


@pytest.fixture
def make_mask() -> Any:
    return random_mask


@pytest.fixture
def labels_match() -> Any:
    return assert_labels_match


@pytest.fixture
def mask_iou() -> Any:
    return iou
