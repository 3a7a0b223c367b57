"""Reading a weight file for its framework: what task it performs and which class names it predicts.

Frameworks are imported on first use only: ``import catalog`` stays light.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import InvalidWeightsError
from catalog.sheetnet.spec import METADATA_KEY as SHEETNET_METADATA_KEY
from catalog.sheetnet.spec import SheetNetSpec, SheetNetSpecError, read_file_spec
from catalog.tasks import FRAMEWORKS, resolve_task
from catalog.ultralytics_offline import UltralyticsAlreadyImportedError, configure_offline_ultralytics

FRAMEWORK_BY_SUFFIX = {".pt": "ultralytics", ".onnx": "onnx", ".pth": "sam", ".safetensors": "sheetnet"}
FORMAT_BY_FRAMEWORK = {"ultralytics": "pt", "onnx": "onnx", "sam": "pth", "sheetnet": "safetensors"}
SAM_PARTS = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
# The decoder's attention head count leaves no trace in the weights' shapes; every published SAM uses 8.
SAM_DECODER_HEADS = 8
# Ultralytics' segmentation head adds this many mask coefficients to each box row.
_YOLO_MASK_COEFFICIENTS = 32


@dataclass(frozen=True)
class WeightsInfo:
    framework: str
    yolo_task: str | None  # None when an ONNX file carries no Ultralytics metadata
    class_names: tuple[str, ...] | None  # None when the file does not name its classes
    class_count: int | None  # None when even the count cannot be read


def infer_framework(path: Path) -> str:
    framework = FRAMEWORK_BY_SUFFIX.get(path.suffix.lower())
    if framework is None:
        raise InvalidWeightsError(
            f"cannot tell the framework of {path.name}: name it (one of {', '.join(FRAMEWORKS)}) "
            f"or use a known suffix ({', '.join(FRAMEWORK_BY_SUFFIX)})"
        )
    return framework


def yolo_class() -> Any:
    """Ultralytics' YOLO class, configured offline first unless the caller already chose a config dir."""
    configure_offline_ultralytics()
    import ultralytics

    return ultralytics.YOLO  # type: ignore[attr-defined]


@contextlib.contextmanager
def quiet_ultralytics() -> Iterator[None]:
    """Hold Ultralytics' progress lines back: they go to stdout, where CLI users pipe ``--json``."""
    logger = logging.getLogger("ultralytics")
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def inspect_weights(path: Path, framework: str, task: str | None = None) -> WeightsInfo:
    """Load ``path`` as ``framework`` and report its task and classes; InvalidWeightsError if it does not load.

    A SheetNet file (or its ONNX export) has a head per task: ``task`` names the one reported.
    """
    if framework not in FRAMEWORKS:
        raise InvalidWeightsError(f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}")
    if not path.is_file():
        raise InvalidWeightsError(f"weight file {path} does not exist")
    expected_suffix = "." + FORMAT_BY_FRAMEWORK[framework]
    if path.suffix.lower() != expected_suffix:
        raise InvalidWeightsError(f"{path.name}: {framework} weights must be a {expected_suffix} file")
    try:
        if framework == "ultralytics":
            return _inspect_ultralytics(path)
        if framework == "sheetnet":
            return _inspect_sheetnet(read_file_spec(path), task)
        if framework == "onnx":
            return _inspect_onnx(path, task)
        return _inspect_sam(path)
    except (InvalidWeightsError, UltralyticsAlreadyImportedError):  # not the file's fault
        raise
    except Exception as error:  # each framework fails in its own way on a bad file
        raise InvalidWeightsError(f"{path.name} does not load as {framework} weights: {error}") from error


def _inspect_ultralytics(path: Path) -> WeightsInfo:
    with quiet_ultralytics():
        model = yolo_class()(str(path))
    names = model.names
    class_names = tuple(str(names[i]) for i in sorted(names))
    return WeightsInfo("ultralytics", str(model.task), class_names, len(class_names))


def onnx_session(path: Path) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _inspect_onnx(path: Path, task: str | None) -> WeightsInfo:
    session = onnx_session(path)
    metadata = session.get_modelmeta().custom_metadata_map
    if SHEETNET_METADATA_KEY in metadata:  # an exported SheetNet
        return _inspect_sheetnet(SheetNetSpec.from_json(metadata[SHEETNET_METADATA_KEY]), task, "onnx")
    names: tuple[str, ...] | None = None
    if "names" in metadata:  # Ultralytics exports write {0: 'barcode', ...}
        parsed = ast.literal_eval(metadata["names"])
        names = tuple(str(parsed[i]) for i in sorted(parsed))
    task = metadata.get("task")
    outputs = session.get_outputs()
    if task is None:
        task = "segment" if len(outputs) == 2 else ("classify" if len(outputs[0].shape) == 2 else "detect")
    if names is None:  # a foreign export: only the class count can be checked
        return WeightsInfo("onnx", task, None, _onnx_class_count(task, outputs))
    return WeightsInfo("onnx", task, names, len(names))


def _onnx_class_count(task: str, outputs: list[Any]) -> int | None:
    channels = outputs[0].shape[1] if len(outputs[0].shape) >= 2 else None
    if not isinstance(channels, int):
        return None
    if task == "classify":
        return channels
    if task == "segment":
        return channels - 4 - _YOLO_MASK_COEFFICIENTS
    return channels - 4


def _inspect_sheetnet(spec: SheetNetSpec, task: str | None, framework: str = "sheetnet") -> WeightsInfo:
    if task is None:
        raise InvalidWeightsError(f"a SheetNet has a head per task ({', '.join(spec.tasks())}): name the task")
    try:
        names = spec.classes_for(task)
    except SheetNetSpecError as error:
        raise InvalidWeightsError(str(error)) from None
    return WeightsInfo(framework, resolve_task(task).yolo_task, names, len(names))


def _inspect_sam(path: Path) -> WeightsInfo:
    state = load_sam_state_dict(path)
    check_sam_state(sam_architecture(state), state)
    return WeightsInfo("sam", "segment", None, None)  # SAM is promptable: it has no classes of its own


def load_sam_state_dict(path: Path) -> dict[str, Any]:
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)  # tensors only: no pickled code
    if not isinstance(state, dict) or not all(any(str(k).startswith(p) for k in state) for p in SAM_PARTS):
        raise InvalidWeightsError(f"{path.name} is not a SAM state dict (needs {', '.join(SAM_PARTS)} weights)")
    return state


@dataclass(frozen=True)
class SamArchitecture:
    """What segment-anything needs to build a SAM; defaults are its stock values (``_build_sam``)."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    window_size: int = 14
    image_size: int = 1024
    patch_size: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @property
    def name(self) -> str:
        """``vit_b``, ``vit_l`` or ``vit_h`` for segment-anything's stock sizes, else ``custom``."""
        return next((name for name, stock in STOCK_SAM.items() if stock == self), "custom")

    def build(self, device: Any = None) -> Any:
        """A ``segment_anything.Sam`` of this shape with fresh weights (``device="meta"``: shapes only)."""
        import torch
        from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

        grid = self.image_size // self.patch_size
        with torch.device(device or "cpu"):
            sam = Sam(
                image_encoder=ImageEncoderViT(
                    depth=self.encoder_depth,
                    embed_dim=self.encoder_embed_dim,
                    img_size=self.image_size,
                    mlp_ratio=self.mlp_ratio,
                    norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6),
                    num_heads=self.encoder_num_heads,
                    patch_size=self.patch_size,
                    qkv_bias=self.qkv_bias,
                    use_rel_pos=True,
                    global_attn_indexes=self.encoder_global_attn_indexes,
                    window_size=self.window_size,
                    out_chans=self.prompt_embed_dim,
                ),
                prompt_encoder=PromptEncoder(
                    embed_dim=self.prompt_embed_dim,
                    image_embedding_size=(grid, grid),
                    input_image_size=(self.image_size, self.image_size),
                    mask_in_chans=self.mask_in_chans,
                ),
                mask_decoder=MaskDecoder(
                    num_multimask_outputs=self.multimask_outputs,
                    transformer=TwoWayTransformer(
                        depth=self.decoder_depth,
                        embedding_dim=self.prompt_embed_dim,
                        mlp_dim=self.decoder_mlp_dim,
                        num_heads=SAM_DECODER_HEADS,
                    ),
                    transformer_dim=self.prompt_embed_dim,
                    iou_head_depth=self.iou_head_depth,
                    iou_head_hidden_dim=self.iou_head_hidden_dim,
                ),
            )
        return sam.eval()


STOCK_SAM: Mapping[str, SamArchitecture] = {
    "vit_b": SamArchitecture(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamArchitecture(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamArchitecture(1280, 32, 16, (7, 15, 23, 31)),
}


def sam_architecture(state: Mapping[str, Any]) -> SamArchitecture:
    """The architecture a SAM state dict was saved from, read from its tensors' shapes.

    Blocks with windowed attention carry relative-position tables of ``2 * window - 1`` rows,
    global ones ``2 * grid - 1`` (grid: patches per side, 64 for 1024-px inputs): that tells the
    global blocks apart. A window as large as the grid would be read as global, which computes the same.
    """

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise InvalidWeightsError(f"SAM state dict has no {key}: not a segment-anything ViT SAM")
        return tuple(int(n) for n in state[key].shape)

    def count(prefix: str) -> int:
        indexes = {key[len(prefix) :].split(".", 1)[0] for key in state if key.startswith(prefix)}
        if indexes != {str(i) for i in range(len(indexes))}:
            raise InvalidWeightsError(f"SAM state dict: {prefix}N are not numbered 0..N-1")
        return len(indexes)

    embed_dim, _, patch_size, _ = shape("image_encoder.patch_embed.proj.weight")
    grid = shape("image_encoder.pos_embed")[1]
    depth = count("image_encoder.blocks.")
    tables = [shape(f"image_encoder.blocks.{i}.attn.rel_pos_h") for i in range(depth)]
    head_dims = {columns for _, columns in tables}
    if depth == 0 or len(head_dims) != 1 or embed_dim % next(iter(head_dims)):
        raise InvalidWeightsError(f"SAM image encoder: {depth} blocks with head sizes {sorted(head_dims)}")
    global_indexes = tuple(i for i, (rows, _) in enumerate(tables) if rows == 2 * grid - 1)
    windows = {(rows + 1) // 2 for rows, _ in tables if rows != 2 * grid - 1}
    if len(windows) > 1:
        raise InvalidWeightsError(f"SAM image encoder: blocks of several window sizes {sorted(windows)}")
    iou_hidden = shape("mask_decoder.iou_prediction_head.layers.0.weight")[0]
    return SamArchitecture(
        encoder_embed_dim=embed_dim,
        encoder_depth=depth,
        encoder_num_heads=embed_dim // next(iter(head_dims)),
        encoder_global_attn_indexes=global_indexes,
        window_size=windows.pop() if windows else 0,
        image_size=grid * patch_size,
        patch_size=patch_size,
        mlp_ratio=shape("image_encoder.blocks.0.mlp.lin1.weight")[0] / embed_dim,
        qkv_bias="image_encoder.blocks.0.attn.qkv.bias" in state,
        prompt_embed_dim=shape("image_encoder.neck.0.weight")[0],
        mask_in_chans=shape("prompt_encoder.mask_downscaling.3.weight")[0],
        decoder_depth=count("mask_decoder.transformer.layers."),
        decoder_mlp_dim=shape("mask_decoder.transformer.layers.0.mlp.lin1.weight")[0],
        multimask_outputs=shape("mask_decoder.mask_tokens.weight")[0] - 1,
        iou_head_depth=count("mask_decoder.iou_prediction_head.layers."),
        iou_head_hidden_dim=iou_hidden,
    )


def check_sam_state(architecture: SamArchitecture, state: Mapping[str, Any]) -> None:
    """Raise unless ``state`` fits ``architecture`` tensor for tensor (on a shapes-only model: no memory, no time)."""
    try:
        # assign: the meta model takes the tensors as they are (shapes are still checked first), copying nothing.
        architecture.build(device="meta").load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise InvalidWeightsError(f"SAM state dict does not fit a {architecture.name} SAM: {error}") from None
