"""Small untrained models that load and run in well under a second on CPU, built from code (nothing downloaded)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# A ViT SAM small enough for CPU tests: 256-px input (a 16 x 16 patch grid), two blocks of two heads,
# block 0 windowed (4 x 4 windows), block 1 global; a 64-channel prompt encoder and mask decoder.
TINY_SAM = {
    "embed_dim": 64,
    "depth": 2,
    "num_heads": 2,
    "global_attn_indexes": (1,),
    "window_size": 4,
    "image_size": 256,
    "prompt_embed_dim": 64,
    "decoder_mlp_dim": 256,
    "iou_head_hidden_dim": 64,
}


def detector_catalog(home: Path) -> Any:
    """A catalog in ``home`` whose production detect-nonvegetal model is :func:`always_detecting_yolo`."""
    from catalog.registry import Catalog
    from herbarium.taxonomy import NONVEGETAL

    catalog = Catalog.open(url=f"sqlite:///{home / 'catalog.db'}", home=home)
    catalog.register(
        "nonvegetal-detector",
        "detect-nonvegetal",
        always_detecting_yolo(home / "detector.pt", NONVEGETAL.classes),
        promote=True,
    )
    return catalog


def tiny_sam(seed: int = 0) -> Any:
    """A random-weight ``segment_anything.Sam`` of the TINY_SAM shape, built directly with segment-anything."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(seed)
    size, dim = TINY_SAM["image_size"], TINY_SAM["prompt_embed_dim"]
    grid = size // 16
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=TINY_SAM["depth"],
            embed_dim=TINY_SAM["embed_dim"],
            img_size=size,
            mlp_ratio=4,
            norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=TINY_SAM["num_heads"],
            patch_size=16,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=TINY_SAM["global_attn_indexes"],
            window_size=TINY_SAM["window_size"],
            out_chans=dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=(grid, grid), input_image_size=(size, size), mask_in_chans=16
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=TINY_SAM["decoder_mlp_dim"], num_heads=8),
            transformer_dim=dim,
            iou_head_depth=3,
            iou_head_hidden_dim=TINY_SAM["iou_head_hidden_dim"],
        ),
    )
    return sam.eval()


def save_tiny_sam(path: Path, seed: int = 0) -> Path:
    """The tiny SAM's state dict as a ``.pth`` checkpoint, the way Meta publishes SAM weights."""
    import torch

    torch.save(tiny_sam(seed).state_dict(), path)
    return path


def always_detecting_yolo(path: Path, classes: Sequence[str], imgsz: int = 320) -> Path:
    """An untrained yolo11n whose class-0 bias is raised, so that it finds a few class-0 boxes on any image."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolo11n.yaml", nc=len(classes), verbose=False)
    with torch.no_grad():
        model.model[-1].cv3[2][-1].bias[0] = 6.0  # stride-32 class-0 logits: a few boxes after NMS
    model.names = dict(enumerate(classes))
    torch.save({"model": model.half(), "train_args": {"imgsz": imgsz, "task": "detect"}, "version": "8.4.190"}, path)
    return path


def untrained_yolo_segmenter(path: Path, classes: Sequence[str], imgsz: int = 320) -> Path:
    """An untrained yolo11n-seg: enough for the catalog and the backend to take it for a segmentation model."""
    import torch
    from ultralytics.nn.tasks import SegmentationModel

    torch.manual_seed(0)
    model = SegmentationModel("yolo11n-seg.yaml", nc=len(classes), verbose=False)
    model.names = dict(enumerate(classes))
    torch.save({"model": model.half(), "train_args": {"imgsz": imgsz, "task": "segment"}, "version": "8.4.190"}, path)
    return path
