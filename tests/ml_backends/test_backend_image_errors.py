"""An image over Pillow's decompression-bomb limit costs only its own task, with the reason logged.

The detector is an untrained yolo11n that finds class-0 boxes on any image, so a good task's
result is non-empty and a refused one's is empty.
"""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from catalog.registry import Catalog
from connectors.label_config import review_config
from herbarium.synth import generate_sheet
from ml_backends.server import create_app
from ml_backends.service import PredictionService
from ml_backends.task_images import TaskImages
from tests.ml_backends.tiny_models import detector_catalog

CONFIG = review_config(["detect-nonvegetal"])
SMALL, BIG = (600, 840), (1024, 1448)


def _png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header says ``width`` x ``height`` RGB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def document_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    generate_sheet(seed=5, width=SMALL[0], height=SMALL[1]).image.save(root / "small.jpg", quality=90)
    generate_sheet(seed=6, width=BIG[0], height=BIG[1]).image.save(root / "big.jpg", quality=90)
    (root / "bomb.png").write_bytes(_png_claiming(50_000, 50_000))  # 2.5 Gpx claimed, over Pillow's limit
    return root


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return detector_catalog(tmp_path_factory.mktemp("home"))


def _predict(catalog: Catalog, document_root: Path, names: list[str]) -> tuple[list[dict[str, Any]], str]:
    client = create_app(PredictionService(catalog, TaskImages(document_root, None))).test_client()
    tasks = [{"id": k, "data": {"image": f"/data/local-files/?d={name}"}} for k, name in enumerate(names, 1)]
    answer = client.post("/predict", json={"tasks": tasks, "label_config": CONFIG})
    assert answer.status_code == 200, answer.text
    return answer.get_json()["results"], client.get("/metrics").text


def _sizes(result: dict[str, Any]) -> set[tuple[int, int]]:
    return {(r["original_width"], r["original_height"]) for r in result["result"]}


def test_a_header_claiming_a_bomb_is_refused_and_the_other_tasks_answered(
    catalog: Catalog, document_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ml_backends.service"):
        results, metrics = _predict(catalog, document_root, ["small.jpg", "bomb.png", "big.jpg"])
    assert results[1]["result"] == []
    assert _sizes(results[0]) == {SMALL}  # each region names the image it was predicted on
    assert _sizes(results[2]) == {BIG}
    assert "task 2: no prediction: " in caplog.text
    assert "bomb.png: image too large to decode safely" in caplog.text
    assert "plantai_backend_task_failures_total 1" in metrics


def test_the_bomb_limit_is_pillows_own(
    catalog: Catalog, document_root: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A limit that the big sheet passes twice over and the small one does not reach: only the big one is refused.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", BIG[0] * BIG[1] // 2 - 1)
    assert SMALL[0] * SMALL[1] < Image.MAX_IMAGE_PIXELS
    with caplog.at_level(logging.WARNING, logger="ml_backends.service"):
        results, _ = _predict(catalog, document_root, ["big.jpg", "small.jpg"])
    assert results[0]["result"] == []
    assert _sizes(results[1]) == {SMALL}
    assert "task 1: no prediction: " in caplog.text
    assert "big.jpg: image too large to decode safely" in caplog.text
