"""A short SheetNet training run learns; the trait head is fitted on whole sheets; a time budget shortens it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from catalog.sheetnet import network
from catalog.sheetnet.spec import SheetNetSpec
from herbarium.synth import generate_sheet
from training.sheetnet_trainer import (
    SheetNetTraining,
    SheetNetTrainingError,
    Window,
    fit_trait_head,
    step_losses,
    train_sheetnet,
    trait_features,
)
from training.sheets import TrainingSheet, from_synthetic, generated_size
from training.targets import Augment, encode, random_crop

SPEC = SheetNetSpec(input_side=160)


@pytest.fixture(scope="module")
def sheets() -> list[TrainingSheet]:
    width, height = generated_size(SPEC)
    return [from_synthetic(generate_sheet(100 + i, width, height), SPEC, f"s{i}") for i in range(6)]


def _losses(net: network.SheetNet, sheets: list[TrainingSheet]) -> dict[str, float]:
    rng = np.random.default_rng(123)
    still = Augment(scale=(1.0, 1.0), turn_probability=0.0, flip_probability=0.0, colour=False)
    targets = encode([random_crop(s, 96, rng, still) for s in sheets])
    net.eval()
    with torch.no_grad():
        return {k: float(v) for k, v in step_losses(net, targets, SheetNetTraining()).items()}


def test_training_lowers_every_loss_on_the_sheets_it_saw(sheets: list[TrainingSheet]) -> None:
    torch.manual_seed(0)
    start = network.build(SPEC, pretrained=True)
    before = _losses(start, sheets)
    settings = SheetNetTraining(
        iterations=40, windows=(Window(96, (0.8, 1.0), 3, 1.0),), pool_weights={"synthetic": 1.0}
    )
    steps: list[tuple[int, int]] = []
    outcome = train_sheetnet(
        {"synthetic": sheets}, SPEC, settings, start=start, progress=lambda d, t: steps.append((d, t))
    )
    after = _losses(outcome.net, sheets)
    assert outcome.iterations == 40
    assert steps[-1] == (40, 40)
    for name in ("plant", "heat", "regression"):
        assert after[name] < before[name], (name, before[name], after[name])
    assert not outcome.net.training


def test_a_time_budget_shortens_the_schedule(sheets: list[TrainingSheet]) -> None:
    settings = SheetNetTraining(
        iterations=10_000, windows=(Window(64, (1.0, 1.0), 1, 1.0),), seconds=2.0, pool_weights={"synthetic": 1.0}
    )
    outcome = train_sheetnet({"synthetic": sheets}, SPEC, settings, start=network.build(SPEC, pretrained=False))
    assert 4 < outcome.iterations < 10_000
    assert outcome.seconds < 30


def test_the_trait_head_learns_the_traits_of_whole_sheets(sheets: list[TrainingSheet]) -> None:
    net = network.build(SPEC, pretrained=True)
    count, per_class = fit_trait_head(net, sheets, steps=200)
    assert count == len(sheets)
    assert sum(per_class.values()) == len(sheets)
    features = trait_features(net, [s.image for s in sheets])
    with torch.no_grad():
        predicted = net.trait(features).argmax(1).tolist()
    assert predicted == [s.trait for s in sheets]  # six sheets, a linear layer on 332 features: it fits them


def test_training_without_sheets_says_so() -> None:
    with pytest.raises(SheetNetTrainingError, match="no training sheets"):
        train_sheetnet({"real": []}, SPEC, SheetNetTraining(iterations=1))
    with pytest.raises(SheetNetTrainingError, match="no sheet with a known trait"):
        fit_trait_head(network.build(SPEC, pretrained=False), [])
