"""Catalog fixtures: every test runs on SQLite and on a real PostgreSQL; model weights built once."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from catalog.registry import Catalog
from catalog.store import sha256_file
from herbarium import taxonomy
from local_services.postgres import LocalPostgres

_database_numbers = itertools.count()

NONVEGETAL = list(taxonomy.NONVEGETAL.classes)


@dataclass(frozen=True)
class ModelFiles:
    detect: Path  # yolo11n detection, the six non-vegetal classes
    detect_retrained: Path  # same architecture and classes, other weights (a "new version")
    detect_aliased: Path  # class names spelt as other tools do (color_card, scale, ...)
    classify: Path  # yolo11n-cls for the leaf_margin trait
    garbage: Path  # random bytes named .pt
    garbage_onnx: Path  # random bytes named .onnx


def _save_yolo(path: Path, model: Any, names: list[str], imgsz: int, task: str) -> Path:
    import torch

    model.names = dict(enumerate(names))
    torch.save({"model": model.half(), "train_args": {"imgsz": imgsz, "task": task}, "version": "8.4.190"}, path)
    return path


def build_model_files(root: Path) -> ModelFiles:
    """Untrained YOLO checkpoints that Ultralytics loads like trained ones."""
    import torch
    from ultralytics.nn.tasks import ClassificationModel, DetectionModel

    torch.manual_seed(0)
    detect = _save_yolo(
        root / "detect.pt", DetectionModel("yolo11n.yaml", nc=6, verbose=False), NONVEGETAL, 320, "detect"
    )
    retrained = _save_yolo(
        root / "detect-v2.pt", DetectionModel("yolo11n.yaml", nc=6, verbose=False), NONVEGETAL, 320, "detect"
    )
    aliased_names = ["Barcode", "annotation_label", "attachment", "color_card", "scale", "stamp"]
    aliased = _save_yolo(
        root / "aliased.pt", DetectionModel("yolo11n.yaml", nc=6, verbose=False), aliased_names, 320, "detect"
    )
    classify = _save_yolo(
        root / "margin.pt",
        ClassificationModel("yolo11n-cls.yaml", nc=2, verbose=False),
        ["entire", "toothed"],
        64,
        "classify",
    )
    garbage = root / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 64)
    garbage_onnx = root / "garbage.onnx"
    garbage_onnx.write_bytes(b"not an onnx graph" * 100)
    return ModelFiles(detect, retrained, aliased, classify, garbage, garbage_onnx)


def take_snapshot(catalog: Catalog) -> dict[str, Any]:
    """Every row of every catalog table and every stored file's hash: equal snapshots, unchanged catalog."""
    metadata = MetaData()
    metadata.reflect(catalog.engine)
    with catalog.engine.connect() as connection:
        tables = {
            name: sorted(tuple(map(repr, row)) for row in connection.execute(select(table)))
            for name, table in metadata.tables.items()
        }
    files = {str(p.relative_to(catalog.store.root)): sha256_file(p) for p in catalog.store.files()}
    leftovers = (
        sorted(p.name for p in catalog.store.root.glob("*") if p.is_file()) if catalog.store.root.exists() else []
    )
    return {"tables": tables, "files": files, "leftovers": leftovers}


@pytest.fixture
def snapshot() -> Callable[[Catalog], dict[str, Any]]:
    """``snapshot(catalog)``: equal before and after a refused call means the catalog is unchanged."""
    return take_snapshot


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    return build_model_files(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A private PostgreSQL cluster for the session, stopped by PID at the end."""
    with LocalPostgres() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def catalog_home(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """A fresh PLANTAI_HOME, and a fresh database: SQLite in that home, or a new PostgreSQL database."""
    home = tmp_path / "plantai-home"
    monkeypatch.setenv("PLANTAI_HOME", str(home))
    if backend == "postgresql":
        cluster: LocalPostgres = request.getfixturevalue("postgres")
        monkeypatch.setenv("PLANTAI_CATALOG_URL", cluster.create_database(f"catalog_{next(_database_numbers)}"))
    else:
        monkeypatch.delenv("PLANTAI_CATALOG_URL", raising=False)  # the default: $PLANTAI_HOME/catalog.db
    return home


@pytest.fixture
def catalog(catalog_home: Path) -> Iterator[Catalog]:
    with Catalog.open() as opened:
        yield opened
