"""One adapter per model task: a catalog model's output as PlantAI labels in the original frame.

Images arrive decoded at reduced size (``SpecimenImage``); every coordinate goes back to the
full-resolution, oriented image by the image's own ``scale``.
"""

from __future__ import annotations

import ast
import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from catalog.predictors import LoadedModel
from herbarium.imaging import SpecimenImage
from herbarium.labels import BoxLabel, ClassificationLabel, Label, MaskLabel, PolygonLabel, SpecimenLabels

DEFAULT_IMGSZ = 640


@dataclass(frozen=True)
class Tiling:
    """Tiled inference for small organs on big sheets: decode larger, predict on overlapping tiles."""

    tile: int = 640
    overlap: float = 0.2
    decode_side: int = 2048
    iou: float = 0.5  # boxes of one class overlapping more than this across tiles are one box

    def __post_init__(self) -> None:
        if not (64 <= self.tile <= self.decode_side) or not (0 <= self.overlap < 0.9):
            raise ValueError(
                f"tiling: need 64 <= tile <= decode_side and 0 <= overlap < 0.9, got {self.tile}, {self.overlap}"
            )

    @classmethod
    def from_params(cls, params: Any) -> Tiling | None:
        """``{"tiling": {"tile": 640, "overlap": 0.2, "decode_side": 2048}}`` from a project's extra params."""
        if not isinstance(params, dict) or not params.get("tiling"):
            return None
        options = params["tiling"]
        if options is True:
            return cls()
        if not isinstance(options, dict):
            raise ValueError("tiling: expected true or an object with tile, overlap, decode_side")
        known = {"tile", "overlap", "decode_side", "iou"}
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in options.items() if k in known})

    def windows(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        step = max(1, int(self.tile * (1 - self.overlap)))

        def starts(size: int) -> list[int]:
            if size <= self.tile:
                return [0]
            positions = list(range(0, size - self.tile, step))
            return [*positions, size - self.tile]

        return [
            (x, y, min(width, x + self.tile), min(height, y + self.tile)) for y in starts(height) for x in starts(width)
        ]


class Adapter(ABC):
    """Runs one loaded catalog model on decoded images."""

    kind: ClassVar[str]

    def __init__(self, model: LoadedModel, conf: float = 0.25) -> None:
        self.model = model
        self.conf = conf

    @property
    def source(self) -> str:
        return self.model.ref

    @property
    def imgsz(self) -> int:
        overrides = getattr(self.model.model, "overrides", None) or {}
        size = overrides.get("imgsz")
        if size is None and self.model.framework == "onnx":
            size = _exported_imgsz(str(self.model.path))  # an ONNX graph's input size is fixed at export
        if isinstance(size, (list, tuple)):
            size = max(size)
        return int(size) if size else DEFAULT_IMGSZ

    def decode_side(self, tiling: Tiling | None) -> int:
        """The long side the model needs: decoding more is wasted work on a 68-Mpx scan."""
        return self.imgsz

    def _run(self, pictures: Sequence[Image.Image], imgsz: int | None = None, **options: Any) -> list[Any]:
        if not pictures:
            return []
        kwargs: dict[str, Any] = {"conf": self.conf, **options}
        if self.model.framework == "onnx":
            # An exported ONNX graph has a fixed batch of one and its own input size.
            return [self.model.predict(picture, **kwargs)[0] for picture in pictures]
        kwargs["imgsz"] = imgsz or self.imgsz
        # Batch pictures of one size only: Ultralytics pads a mixed batch to a square, so an image's
        # boxes would depend on which other images shared its request.
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, picture in enumerate(pictures):
            by_size.setdefault(picture.size, []).append(i)
        results: list[Any] = [None] * len(pictures)
        for indices in by_size.values():
            for i, result in zip(indices, self.model.predict([pictures[i] for i in indices], **kwargs), strict=True):
                results[i] = result
        return results

    @abstractmethod
    def predict(self, images: Sequence[SpecimenImage], tiling: Tiling | None = None) -> list[SpecimenLabels]:
        """Labels per image, in the image's original frame."""


@functools.lru_cache(maxsize=64)
def _exported_imgsz(path: str) -> Any:
    """The ``imgsz`` Ultralytics wrote into an exported ONNX graph's metadata (``[h, w]``), else None."""
    import onnx

    try:
        metadata = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        return ast.literal_eval(metadata["imgsz"])
    except Exception:  # no such key, or not a graph onnx can parse: the default size
        return None


def _clip_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> tuple[float, float, float, float]:
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    return x1, y1, x2 - x1, y2 - y1


class DetectionAdapter(Adapter):
    """Non-vegetal elements or organs -> boxes (optionally on overlapping tiles, merged by NMS)."""

    kind = "detect"

    def decode_side(self, tiling: Tiling | None) -> int:
        return tiling.decode_side if tiling else self.imgsz

    def predict(self, images: Sequence[SpecimenImage], tiling: Tiling | None = None) -> list[SpecimenLabels]:
        if tiling is None:
            raw = [self._boxes(result) for result in self._run([im.image for im in images])]
        else:
            raw = [self._tiled(im.image, tiling) for im in images]
        out: list[SpecimenLabels] = []
        for image, (xyxy, classes, scores) in zip(images, raw, strict=True):
            labels: list[Label] = []
            for (x1, y1, x2, y2), cls, score in zip(xyxy, classes, scores, strict=True):
                x, y, w, h = _clip_box(
                    x1 / image.scale, y1 / image.scale, x2 / image.scale, y2 / image.scale,
                    image.original_width, image.original_height,
                )  # fmt: skip
                if w > 0 and h > 0:
                    label = self.model.labels[int(cls)]
                    labels.append(BoxLabel(label=label, x=x, y=y, width=w, height=h, score=score, source=self.source))
            out.append(SpecimenLabels(width=image.original_width, height=image.original_height, labels=labels))
        return out

    @staticmethod
    def _boxes(result: Any) -> tuple[list[list[float]], list[int], list[float]]:
        boxes = result.boxes
        return boxes.xyxy.tolist(), [int(c) for c in boxes.cls.tolist()], [float(s) for s in boxes.conf.tolist()]

    def _tiled(self, picture: Image.Image, tiling: Tiling) -> tuple[list[list[float]], list[int], list[float]]:
        import torch
        from torchvision.ops import batched_nms

        windows = tiling.windows(picture.width, picture.height)
        results = self._run([picture.crop(window) for window in windows], imgsz=tiling.tile)
        xyxy: list[list[float]] = []
        classes: list[int] = []
        scores: list[float] = []
        for (left, top, _, _), result in zip(windows, results, strict=True):
            boxes, cls, conf = self._boxes(result)
            xyxy += [[x1 + left, y1 + top, x2 + left, y2 + top] for x1, y1, x2, y2 in boxes]
            classes += cls
            scores += conf
        if not xyxy:
            return [], [], []
        keep = batched_nms(
            torch.tensor(xyxy, dtype=torch.float32),
            torch.tensor(scores, dtype=torch.float32),
            torch.tensor(classes),
            tiling.iou,
        ).tolist()
        return [xyxy[i] for i in keep], [classes[i] for i in keep], [scores[i] for i in keep]


class SegmentationAdapter(Adapter):
    """The plant -> one mask and one outline per instance, at the original image's size."""

    kind = "segment"

    def predict(self, images: Sequence[SpecimenImage], tiling: Tiling | None = None) -> list[SpecimenLabels]:
        results = self._run([im.image for im in images], retina_masks=True)
        out: list[SpecimenLabels] = []
        for image, result in zip(images, results, strict=True):
            labels: list[Label] = []
            if result.masks is not None:
                masks = result.masks.data.cpu().numpy() > 0.5
                outlines = result.masks.xy
                for mask, outline, cls, score in zip(
                    masks, outlines, result.boxes.cls.tolist(), result.boxes.conf.tolist(), strict=True
                ):
                    name = self.model.labels[int(cls)]
                    full = Image.fromarray(mask).resize(
                        (image.original_width, image.original_height), Image.Resampling.NEAREST
                    )
                    labels.append(MaskLabel(label=name, mask=np.asarray(full), score=float(score), source=self.source))
                    if len(outline) >= 3:
                        points = tuple((float(x) / image.scale, float(y) / image.scale) for x, y in outline)
                        labels.append(PolygonLabel(label=name, points=points, score=float(score), source=self.source))
            out.append(SpecimenLabels(width=image.original_width, height=image.original_height, labels=labels))
        return out


class ClassificationAdapter(Adapter):
    """A trait of the whole specimen -> one choice with its probability."""

    kind = "classify"

    def predict(self, images: Sequence[SpecimenImage], tiling: Tiling | None = None) -> list[SpecimenLabels]:
        results = self._run([im.image for im in images])
        out: list[SpecimenLabels] = []
        for image, result in zip(images, results, strict=True):
            probs = result.probs
            label = ClassificationLabel(
                label=self.model.labels[int(probs.top1)],
                score=float(probs.top1conf),
                source=self.source,
                control=self.model.task,
            )
            out.append(SpecimenLabels(width=image.original_width, height=image.original_height, labels=[label]))
        return out


ADAPTERS: dict[str, type[Adapter]] = {
    "detect-nonvegetal": DetectionAdapter,
    "detect-organs": DetectionAdapter,
    "segment-plant": SegmentationAdapter,
    "classify-trait": ClassificationAdapter,
}


def adapter_for(model: LoadedModel, kind: str, conf: float = 0.25) -> Adapter:
    """The adapter for a model of catalog ``kind`` (detect-*, segment-plant, classify-trait)."""
    if model.framework == "sam":
        raise ValueError(f"{model.ref}: SAM checkpoints are not served yet; register a segmentation model instead")
    try:
        return ADAPTERS[kind](model, conf=conf)
    except KeyError:
        raise ValueError(f"{model.ref}: no adapter for model kind {kind!r}") from None
