from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from catalog.errors import StoreIntegrityError
from catalog.predictors import clear_cache, load_model
from catalog.registry import Catalog


def _tamper(catalog: Catalog, sha256: str, file_format: str) -> None:
    path = catalog.store.path_for(sha256, file_format)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(data))


Snapshot = Callable[[Catalog], dict[str, Any]]


def test_verify_reports_each_tampered_or_missing_artefact(catalog: Catalog, model_files: Any) -> None:
    first = catalog.register("detector", "detect-nonvegetal", model_files.detect, promote=True)
    second = catalog.register("detector", "detect-nonvegetal", model_files.detect_retrained)
    catalog.register("margin", "leaf_margin", model_files.classify)
    assert catalog.verify().ok
    _tamper(catalog, first.sha256, "pt")
    catalog.store.path_for(second.sha256, "pt").unlink()
    report = catalog.verify()
    assert report.checked == 3
    assert [(p.model, p.version, p.role) for p in report.problems] == [
        ("detector", "1.0.0", "weights"),
        ("detector", "1.1.0", "weights"),
    ]
    assert "content changed" in report.problems[0].problem
    assert "missing from the store" in report.problems[1].problem


def test_the_loader_refuses_a_tampered_or_missing_file(catalog: Catalog, model_files: Any) -> None:
    clear_cache()
    first = catalog.register("detector", "detect-nonvegetal", model_files.detect, promote=True)
    second = catalog.register("detector", "detect-nonvegetal", model_files.detect_retrained)
    _tamper(catalog, first.sha256, "pt")
    with pytest.raises(StoreIntegrityError, match=r"detector@1\.0\.0 weights: refusing .* content changed"):
        load_model("detector", catalog)
    catalog.store.path_for(second.sha256, "pt").unlink()
    with pytest.raises(StoreIntegrityError, match="missing from the store"):
        load_model("detector@1.1.0", catalog)
    with pytest.raises(StoreIntegrityError):
        catalog.export_onnx("detector", "1.0.0")


def test_registering_the_same_content_again_heals_the_store(
    catalog: Catalog, model_files: Any, snapshot: Snapshot
) -> None:
    first = catalog.register("detector", "detect-nonvegetal", model_files.detect)
    _tamper(catalog, first.sha256, "pt")
    catalog.register("detector", "detect-nonvegetal", model_files.detect)
    assert catalog.verify().ok
    assert snapshot(catalog)["leftovers"] == []
