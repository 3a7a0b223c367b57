from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from catalog.errors import InvalidNameError, UnknownModelError, UnknownVersionError
from catalog.predictors import clear_cache, load_model
from catalog.registry import Catalog
from herbarium.taxonomy import NONVEGETAL as NONVEGETAL_SET

NONVEGETAL = list(NONVEGETAL_SET.classes)


def test_load_model_serves_production_and_caches_per_version(
    catalog: Catalog, model_files: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_cache()
    registered = catalog.register("detector", "detect-nonvegetal", model_files.detect, promote=True)
    loaded = load_model("detector", catalog)
    assert (loaded.name, loaded.version, loaded.task, loaded.framework) == (
        "detector",
        "1.0.0",
        "detect-nonvegetal",
        "ultralytics",
    )
    assert loaded.labels == tuple(NONVEGETAL)
    assert loaded.sha256 == registered.sha256
    assert loaded.model.names == dict(enumerate(NONVEGETAL))
    # The second call neither re-hashes nor re-reads the file.
    monkeypatch.setattr(catalog.store, "problem", lambda *a: pytest.fail("re-verified a cached model"))
    assert load_model("detector@1.0.0", catalog) is loaded
    assert load_model("detector", catalog) is loaded


def test_load_model_reference_errors(catalog: Catalog, model_files: Any) -> None:
    catalog.register("detector", "detect-nonvegetal", model_files.detect)
    with pytest.raises(UnknownVersionError, match="no production version"):
        load_model("detector", catalog)
    with pytest.raises(UnknownVersionError, match=r"2\.0\.0"):
        load_model("detector@2.0.0", catalog)
    with pytest.raises(UnknownModelError, match="nobody"):
        load_model("nobody", catalog)
    with pytest.raises(InvalidNameError):
        load_model("detector@", catalog)


def test_export_onnx_adds_a_sibling_that_load_model_prefers(catalog: Catalog, model_files: Any) -> None:
    clear_cache()
    catalog.register("detector", "detect-nonvegetal", model_files.detect, promote=True)
    torch_model = load_model("detector", catalog)
    artefact = catalog.export_onnx("detector", "1.0.0")
    assert (artefact.role, artefact.format) == ("onnx", "onnx")
    version = catalog.version("detector", "1.0.0")
    assert [a.role for a in version.artefacts] == ["weights", "onnx"]
    assert catalog.store.path_for(artefact.sha256, "onnx").is_file()
    onnx_model = load_model("detector", catalog)
    assert onnx_model is not torch_model
    assert (onnx_model.framework, onnx_model.sha256) == ("onnx", artefact.sha256)
    assert onnx_model.path.suffix == ".onnx"
    image = np.random.default_rng(0).integers(0, 255, (320, 320, 3), dtype=np.uint8)
    results = onnx_model.predict(image, imgsz=320)
    assert len(results) == 1
    assert results[0].names == dict(enumerate(NONVEGETAL))
    assert catalog.verify().checked == 2


def test_importing_the_catalog_loads_no_framework() -> None:
    code = (
        "import sys, catalog.predictors, catalog.registry, plantai.commands.models; "
        "heavy = [m for m in ('torch', 'ultralytics', 'onnxruntime') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], env=os.environ, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
