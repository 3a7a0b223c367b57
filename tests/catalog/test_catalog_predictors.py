from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalog.errors import InvalidNameError, InvalidWeightsError, UnknownModelError, UnknownVersionError
from catalog.predictors import clear_cache, load_model
from catalog.registry import Catalog
from catalog.weights import STOCK_SAM, SamArchitecture, sam_architecture
from herbarium.taxonomy import NONVEGETAL as NONVEGETAL_SET
from tests.ml_backends.tiny_models import TINY_SAM, save_tiny_sam

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


def _shapes(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(tensor.shape) for key, tensor in state.items()}


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_stock_sam_sizes_are_recognised_from_their_shapes(name: str) -> None:
    import torch
    from segment_anything import sam_model_registry

    with torch.device("meta"):  # shapes without weights: vit_h in a blink, no memory
        state = sam_model_registry[name]().state_dict()
    architecture = sam_architecture(state)
    assert architecture == STOCK_SAM[name]
    assert architecture.name == name
    # Rebuilt from what the shapes say, it is segment-anything's own model, tensor for tensor.
    assert _shapes(architecture.build(device="meta").state_dict()) == _shapes(state)


def test_a_sam_of_another_size_registers_and_loads_exactly_as_saved(
    catalog: Catalog, snapshot: Any, tmp_path: Path
) -> None:
    import torch

    clear_cache()
    path = save_tiny_sam(tmp_path / "tiny-sam.pth")
    saved = torch.load(path, weights_only=True)
    expected = SamArchitecture(
        encoder_embed_dim=TINY_SAM["embed_dim"],
        encoder_depth=TINY_SAM["depth"],
        encoder_num_heads=TINY_SAM["num_heads"],
        encoder_global_attn_indexes=TINY_SAM["global_attn_indexes"],
        window_size=TINY_SAM["window_size"],
        image_size=TINY_SAM["image_size"],
        prompt_embed_dim=TINY_SAM["prompt_embed_dim"],
        decoder_mlp_dim=TINY_SAM["decoder_mlp_dim"],
        iou_head_hidden_dim=TINY_SAM["iou_head_hidden_dim"],
    )
    assert sam_architecture(saved) == expected
    assert expected.name == "custom"

    registered = catalog.register("plant-sam", "segment-plant", path, promote=True)
    assert (registered.framework, registered.labels) == ("sam", ("plant",))
    loaded = load_model("plant-sam", catalog)
    assert (loaded.framework, loaded.task) == ("sam", "segment-plant")
    encoder = loaded.model.image_encoder
    assert encoder.img_size == TINY_SAM["image_size"]
    assert [block.window_size for block in encoder.blocks] == [4, 0]  # block 1 attends globally
    assert [block.attn.num_heads for block in encoder.blocks] == [2, 2]
    state = loaded.model.state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[key], saved[key]) for key in saved)
    with pytest.raises(TypeError, match="SamPredictor"):
        loaded.predict(np.zeros((8, 8, 3), dtype=np.uint8))

    # A tensor of a shape no SAM of that architecture has: refused at registration, the catalog unchanged.
    broken = dict(saved)
    broken["mask_decoder.iou_token.weight"] = torch.zeros(1, 32)
    torch.save(broken, tmp_path / "broken-sam.pth")
    before = snapshot(catalog)
    with pytest.raises(InvalidWeightsError, match=r"iou_token\.weight"):
        catalog.register("plant-sam", "segment-plant", tmp_path / "broken-sam.pth")
    assert snapshot(catalog) == before
