"""The box decoder trains alone on cached encoder features, whatever the sheets' size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from catalog.sheetnet import network
from catalog.sheetnet.spec import SheetNetSpec
from herbarium.synth import generate_sheet
from training.box_decoder import BoxDecoderTraining, cache_features, train_box_decoder
from training.sheets import TrainingSheet, from_synthetic, generated_size

SPEC = SheetNetSpec(input_side=160)


@pytest.fixture(scope="module")
def sheets() -> list[TrainingSheet]:
    width, height = generated_size(SPEC)
    return [from_synthetic(generate_sheet(200 + i, width, height), SPEC, f"s{i}") for i in range(4)]


def test_features_are_cached_per_scale_and_mirror(sheets: list[TrainingSheet]) -> None:
    net = network.build(SPEC, pretrained=False)
    settings = BoxDecoderTraining(scales=(0.8, 1.0), mirror=True)
    cached = cache_features(net, sheets, settings)
    assert len(cached) == len(sheets) * 2 * 2
    mirrored = cached[1]
    width = mirrored.f32.shape[2] * 32
    np.testing.assert_allclose(mirrored.boxes[:, 0], width - cached[0].boxes[:, 2], atol=1e-3)


def test_windows_larger_than_every_sheet_shrink_to_fit_and_the_decoder_learns(sheets: list[TrainingSheet]) -> None:
    torch.manual_seed(0)
    net = network.build(SPEC, pretrained=True)
    # 160 px sheets have 5 stride-32 cells a side: a 12-cell window fits none of them.
    settings = BoxDecoderTraining(steps=60, batch=4, window_cells=12, scales=(1.0,), mirror=False)
    cached = cache_features(net, sheets, settings)
    first = train_box_decoder(net, cached, BoxDecoderTraining(steps=1, batch=4, window_cells=12, scales=(1.0,)))
    last = train_box_decoder(net, cached, settings)
    assert last["heat"] < first["heat"]
    assert not net.boxes.training
