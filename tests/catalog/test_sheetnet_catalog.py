"""One SheetNet file in the catalog: registered once per task it serves, exported to ONNX, loaded once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from catalog.errors import InvalidWeightsError
from catalog.predictors import clear_cache, load_model
from catalog.registry import Catalog
from catalog.sheetnet import network
from catalog.sheetnet.spec import SheetNetSpec

TASKS = {
    "nonvegetal-detector": ("detect-nonvegetal", ("barcode", "label", "envelope", "colour_chart", "ruler", "stamp")),
    "organ-detector": ("detect-organs", ("leaf", "flower", "fruit", "seed", "stem", "root")),
    "plant-segmenter": ("segment-plant", ("plant",)),
    "phenology-classifier": ("phenology", ("flowering", "fruiting", "sterile")),
}


@pytest.fixture(scope="module")
def sheetnet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    net = network.build(SheetNetSpec(input_side=128), pretrained=False)
    return network.save(net.eval(), tmp_path_factory.mktemp("sheetnet") / "model.safetensors")


def test_one_file_serves_four_catalog_models_through_one_onnx_runner(sheetnet_file: Path, tmp_path: Path) -> None:
    clear_cache()
    with Catalog.open(home=tmp_path) as catalog:
        for name, (task, labels) in TASKS.items():
            version = catalog.register(name, task, sheetnet_file, metrics={"dataset": "t", "x": 1.0}, promote=True)
            assert version.framework == "sheetnet"
            assert catalog.get(name).labels == labels
            catalog.export_onnx(name, version.version)
        stored = {catalog.version(name).sha256 for name in TASKS}
        onnx = {catalog.version(name).artefact("onnx").sha256 for name in TASKS}  # type: ignore[union-attr]
        assert len(stored) == 1
        assert len(onnx) == 1
        loaded = [load_model(name, catalog=catalog) for name in TASKS]
    assert {m.framework for m in loaded} == {"onnx"}
    assert all(m.is_sheetnet for m in loaded)
    assert len({id(m.model) for m in loaded}) == 1  # one runner: one forward pass per sheet for all four
    with pytest.raises(TypeError, match="SheetNet"):
        loaded[0].predict(Image.new("RGB", (10, 10)))
    picture = Image.fromarray(np.full((200, 140, 3), 230, np.uint8))
    assert loaded[0].model.run(picture) is loaded[3].model.run(picture)


def test_a_task_the_file_has_no_head_for_is_refused(sheetnet_file: Path, tmp_path: Path) -> None:
    with Catalog.open(home=tmp_path) as catalog:
        with pytest.raises(InvalidWeightsError, match="SheetNet serves"):
            catalog.register("margins", "leaf_margin", sheetnet_file, metrics={"dataset": "t"})
        assert catalog.list_models() == []


def test_a_safetensors_file_that_is_not_a_sheetnet_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file({"x": torch.zeros(1)}, str(bare))
    with (
        Catalog.open(home=tmp_path / "home") as catalog,
        pytest.raises(InvalidWeightsError, match="not a PlantAI SheetNet"),
    ):
        catalog.register("segmenter", "segment-plant", bare, metrics={"dataset": "t"})
