"""Reading SheetNet's heads: box decoding, the shared forward pass, the spec, ONNX parity with torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from catalog.sheetnet import network
from catalog.sheetnet.runtime import (
    SheetNetResult,
    SheetNetRunner,
    box_voting,
    network_size,
    non_max_suppression,
    to_input,
)
from catalog.sheetnet.spec import BOX_CLASSES, SheetNetSpec, SheetNetSpecError, read_file_spec

LABEL = BOX_CLASSES.index("label")
LEAF = BOX_CLASSES.index("leaf")


def _result(
    heat: dict[tuple[int, int, int], float], distances: dict[tuple[int, int], tuple[float, float, float, float]]
) -> SheetNetResult:
    """A 160 x 240 picture seen at 128 x 192 (input): heat maps of 16 x 24 cells (stride 8)."""
    box_heat = np.zeros((len(BOX_CLASSES), 24, 16), np.float32)
    box_regression = np.zeros((4, 24, 16), np.float32)
    for (c, row, col), value in heat.items():
        box_heat[c, row, col] = value
    for (row, col), values in distances.items():
        box_regression[:, row, col] = np.log(values)
    return SheetNetResult(
        picture_size=(160, 240),
        input_size=(128, 192),
        plant_logits=np.zeros((96, 64), np.float32),
        box_heat=box_heat,
        box_regression=box_regression,
        trait_probabilities=np.array([0.2, 0.3, 0.5], np.float32),
    )


def test_network_size_keeps_the_long_side_and_rounds_to_multiples_of_32() -> None:
    assert network_size(707, 1024, 768) == (544, 768)
    assert network_size(1600, 1068, 768) == (768, 512)
    assert network_size(10, 1000, 256) == (32, 256)


def test_a_region_of_label_heat_is_one_box_in_the_pictures_pixels() -> None:
    # Two cells of one region; the more confident one's distances (in cells) say where the edges are.
    region = {(LABEL, 10, 7): 0.9, (LABEL, 10, 8): 0.5}
    result = _result(region, {(10, 7): (2.5, 1.5, 3.5, 0.5), (10, 8): (3.5, 1.5, 2.5, 0.5)})
    xyxy, classes, scores = result.boxes("detect-nonvegetal", conf=0.3)
    sx, sy = 128 / 160 / 8, 192 / 240 / 8  # cells per picture pixel
    np.testing.assert_allclose(xyxy[0], [(7.5 - 2.5) / sx, (10.5 - 1.5) / sy, (7.5 + 3.5) / sx, (10.5 + 0.5) / sy])
    assert classes.tolist() == [LABEL]
    assert scores.tolist() == pytest.approx([0.9])


def test_heat_below_the_threshold_and_other_tasks_channels_are_left_out() -> None:
    result = _result({(LABEL, 10, 7): 0.2, (LEAF, 20, 10): 0.9}, {(20, 10): (1, 1, 1, 1), (10, 7): (1, 1, 1, 1)})
    assert len(result.boxes("detect-nonvegetal", conf=0.3)[0]) == 0
    _, classes, _ = result.boxes("detect-organs", conf=0.3)
    assert classes.tolist() == [LEAF - 6]  # indexes into the task's own classes


def test_overlapping_leaves_stay_two_boxes_and_one_leafs_cells_make_one() -> None:
    heat = {(LEAF, 10, 5): 0.9, (LEAF, 10, 6): 0.8, (LEAF, 10, 8): 0.7}
    distances = {
        (10, 5): (2.5, 2.5, 2.5, 2.5),  # a leaf around cell (10, 5)
        (10, 6): (3.5, 2.5, 1.5, 2.5),  # the same leaf, seen from its neighbour
        (10, 8): (1.5, 4.5, 2.5, 1.5),  # another leaf, overlapping the first a little
    }
    xyxy, _, scores = _result(heat, distances).boxes("detect-organs", conf=0.3)
    assert scores.tolist() == pytest.approx([0.9, 0.7])
    assert len(xyxy) == 2


def test_non_max_suppression_keeps_the_best_of_overlapping_boxes_of_one_class() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]], np.float32)
    keep = non_max_suppression(boxes, np.array([0.5, 0.9, 0.4, 0.3], np.float32), np.array([0, 0, 0, 1]), 0.5)
    assert keep.tolist() == [1, 2, 3]  # box 0 overlaps the better box 1; box 3 is another class


def test_box_voting_averages_the_proposals_a_kept_box_stands_for() -> None:
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [0, 0, 30, 30], [0, 0, 12, 12]], np.float32)
    scores = np.array([0.6, 0.2, 0.5, 0.9], np.float32)
    classes = np.array([0, 0, 0, 1])
    voted = box_voting(boxes, scores, classes, np.array([0, 2]), iou=0.5)
    # Box 0: itself and box 1 (IoU 0.67) vote, 3 to 1; box 2 overlaps no one enough; box 3 is another class.
    assert voted[0] == pytest.approx([0.5, 0, 10.5, 10])
    assert voted[1] == pytest.approx([0, 0, 30, 30])
    assert box_voting(boxes, scores, classes, np.zeros(0, np.int64), iou=0.5).shape == (0, 4)


def test_the_runner_computes_each_picture_once_for_every_head() -> None:
    calls: list[tuple[int, ...]] = []
    spec = SheetNetSpec(input_side=128)

    def forward(x: np.ndarray) -> list[np.ndarray]:
        calls.append(x.shape)
        h, w = x.shape[2:]
        return [
            np.zeros((1, 1, h // 2, w // 2), np.float32),
            np.zeros((1, len(BOX_CLASSES), h // 8, w // 8), np.float32),
            np.zeros((1, 4, h // 8, w // 8), np.float32),
            np.full((1, 3), 1 / 3, np.float32),
        ]

    runner = SheetNetRunner(spec, forward)
    first, second = Image.new("RGB", (90, 128)), Image.new("RGB", (90, 128))
    for _ in range(3):
        assert runner.run(first).input_size == (96, 128)
    runner.run(second)
    assert calls == [(1, 3, 128, 96), (1, 3, 128, 96)]


def test_the_input_is_scaled_to_minus_one_one() -> None:
    picture = Image.new("RGB", (64, 64), (255, 0, 127))
    x = to_input(picture, 64)
    assert x.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(x[0, :, 0, 0], [1.0, -1.0, 127 / 127.5 - 1], atol=1e-6)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = network.build(SheetNetSpec(input_side=128), pretrained=True)
    return network.save(net.eval(), tmp_path_factory.mktemp("sheetnet") / "tiny.safetensors")


def test_the_file_carries_its_spec_and_round_trips(tiny_file: Path) -> None:
    spec = read_file_spec(tiny_file)
    assert spec.input_side == 128
    assert spec.encoder_origin == {}
    reloaded = network.load(tiny_file)
    assert reloaded.spec == spec


def test_onnx_runs_what_torch_runs_on_a_picture_of_any_proportions(tiny_file: Path, tmp_path: Path) -> None:
    onnx_file = network.export_onnx(network.load(tiny_file), tmp_path / "tiny.onnx")
    by_onnx = SheetNetRunner.open(onnx_file, "onnx")
    by_torch = SheetNetRunner.open(tiny_file, "sheetnet")
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (150, 211, 3), dtype=np.uint8))
    a, b = by_onnx.run(picture), by_torch.run(picture)
    assert a.input_size == b.input_size == (128, 96)
    for name in ("plant_logits", "box_heat", "box_regression", "trait_probabilities"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=2e-4, err_msg=name)
    assert by_onnx.spec == by_torch.spec


def test_a_file_written_before_the_trait_features_field_reads_the_fine_tuned_encoder(tmp_path: Path) -> None:
    spec = SheetNetSpec(input_side=128)
    assert spec.trait_features == "imagenet"
    older = json.loads(spec.to_json())
    del older["trait_features"]
    assert SheetNetSpec.from_json(json.dumps(older)).trait_features == "sheet"
    net = network.build(SheetNetSpec(input_side=128, trait_features="sheet"), pretrained=False)
    assert net.trait_encoder is None
    reloaded = network.load(network.save(net, tmp_path / "older.safetensors"))
    assert reloaded.spec.trait_features == "sheet"
    assert reloaded.trait.in_features == net.trait.in_features != network.IMAGENET_FEATURES
    with pytest.raises(SheetNetSpecError, match="trait_features"):
        SheetNetSpec(trait_features="fine-tuned")


def test_a_file_without_a_spec_or_not_safetensors_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file({"x": torch.zeros(1)}, str(bare))
    with pytest.raises(SheetNetSpecError, match="not a PlantAI SheetNet"):
        read_file_spec(bare)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a tensor file")
    with pytest.raises(SheetNetSpecError, match="not a safetensors file"):
        read_file_spec(junk)
    with pytest.raises(SheetNetSpecError, match="input_side"):
        SheetNetSpec(input_side=100)
