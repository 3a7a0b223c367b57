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
    assert start.trait_encoder is not None
    imagenet = {k: v.clone() for k, v in start.trait_encoder.state_dict().items()}
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
    assert outcome.net.trait_encoder is not None
    kept = outcome.net.trait_encoder.state_dict()
    assert all(torch.equal(imagenet[k], kept[k]) for k in imagenet)  # the trait's encoder is not trained


def test_a_time_budget_shortens_the_schedule(sheets: list[TrainingSheet]) -> None:
    settings = SheetNetTraining(
        iterations=10_000, windows=(Window(64, (1.0, 1.0), 1, 1.0),), seconds=2.0, pool_weights={"synthetic": 1.0}
    )
    outcome = train_sheetnet({"synthetic": sheets}, SPEC, settings, start=network.build(SPEC, pretrained=False))
    assert 4 < outcome.iterations < 10_000
    assert outcome.seconds < 30


def _coloured_sheets(colours: list[tuple[int, int, int]], traits: list[int], origin: str) -> list[TrainingSheet]:
    rng = np.random.default_rng(0)
    out = []
    for i, (colour, trait) in enumerate(zip(colours, traits, strict=True)):
        image = np.clip(np.full((160, 112, 3), colour, np.float32) + rng.normal(0, 20, (160, 112, 3)), 0, 255)
        out.append(
            TrainingSheet(
                f"c{i}", origin, image.astype(np.uint8), None, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                np.zeros(12, bool), trait,
            )
        )  # fmt: skip
    return out


def test_the_trait_head_learns_a_trait_the_sheets_show() -> None:
    net = network.build(SPEC, pretrained=True)
    palette = [(200, 40, 40), (40, 60, 200), (40, 170, 60)]  # one colour per class: a linear probe separates them
    sheets = _coloured_sheets([palette[i % 3] for i in range(12)], [i % 3 for i in range(12)], "real")
    fit = fit_trait_head(net, sheets, steps=200)
    assert fit.sheets == 12
    assert sum(fit.per_class.values()) == 12
    assert not fit.uses_prior
    assert fit.probe_accuracy > fit.prior_accuracy
    features = trait_features(net, [s.image for s in sheets])
    with torch.no_grad():
        predicted = net.trait(features).argmax(1).tolist()
    assert predicted == [s.trait for s in sheets]


def test_a_trait_the_sheets_do_not_show_falls_back_to_the_class_prior() -> None:
    net = network.build(SPEC, pretrained=True)
    # The same grey on every sheet, two thirds of them class 2: nothing to learn, the majority is the answer.
    sheets = _coloured_sheets([(128, 128, 128)] * 12, [2, 2, 0, 2, 2, 1, 2, 2, 0, 2, 2, 1], "real")
    fit = fit_trait_head(net, sheets, steps=200)
    assert fit.uses_prior
    assert fit.prior_accuracy == pytest.approx(8 / 12)
    features = trait_features(net, [s.image for s in sheets])
    with torch.no_grad():
        probabilities = net.trait(features).softmax(1)
    assert probabilities.argmax(1).tolist() == [2] * 12
    np.testing.assert_allclose(probabilities[0].numpy(), [2 / 12, 2 / 12, 8 / 12], atol=1e-5)


def test_training_without_sheets_says_so() -> None:
    with pytest.raises(SheetNetTrainingError, match="no training sheets"):
        train_sheetnet({"real": []}, SPEC, SheetNetTraining(iterations=1))
    with pytest.raises(SheetNetTrainingError, match="no sheet with a known trait"):
        fit_trait_head(network.build(SPEC, pretrained=False), [])
