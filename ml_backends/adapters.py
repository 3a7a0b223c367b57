"""One adapter per model task: a catalog model's output as PlantAI labels in the original frame.

Images arrive decoded at reduced size (``SpecimenImage``); every coordinate goes back to the
full-resolution, oriented image by the image's own ``scale``. The plant is segmented by the
catalog's segmentation model, or by box-prompted segment-anything when a SAM checkpoint serves
``segment-plant`` (prompts: a user's boxes, else the organ detector's).
"""

from __future__ import annotations

import ast
import functools
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from catalog.predictors import LoadedModel, load_model
from catalog.records import ModelInfo
from catalog.registry import Catalog
from catalog.sheetnet.runtime import SheetNetResult, SheetNetRunner
from herbarium.imaging import SpecimenImage
from herbarium.labels import BoxLabel, ClassificationLabel, Label, MaskLabel, PolygonLabel, SpecimenLabels
from herbarium.taxonomy import PLANT

log = logging.getLogger(__name__)

DEFAULT_IMGSZ = 640
MAX_SHEET_ASPECT = 2  # long side over short side of a herbarium sheet, with room to spare (A3 is 1.41)
# Boxes per SAM decoder call: SAM upsamples each box's logits to its input size (4 MB of floats at 1024 px).
SAM_BOX_BATCH = 16
# Columns of a full-size SAM mask interpolated at once: 512 of a 9900-px-high scan hold about 20 MB of floats.
UPSAMPLE_BAND = 512
# Outline components smaller than this share of the mask are speckle, not worth a polygon (the mask keeps them).
MIN_OUTLINE_SHARE = 0.002


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


def _box_labels(
    image: SpecimenImage,
    xyxy: Sequence[Sequence[float]],
    classes: Sequence[int],
    scores: Sequence[float],
    names: Sequence[str],
    source: str,
) -> list[BoxLabel]:
    """Boxes in the decoded picture's pixels → BoxLabels in the original image's frame, clipped to it."""
    labels: list[BoxLabel] = []
    for (x1, y1, x2, y2), cls, score in zip(xyxy, classes, scores, strict=True):
        x, y, w, h = _clip_box(
            x1 / image.scale, y1 / image.scale, x2 / image.scale, y2 / image.scale,
            image.original_width, image.original_height,
        )  # fmt: skip
        if w > 0 and h > 0:
            labels.append(
                BoxLabel(label=names[int(cls)], x=x, y=y, width=w, height=h, score=float(score), source=source)
            )
    return labels


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
            labels: list[Label] = [*_box_labels(image, xyxy, classes, scores, self.model.labels, self.source)]
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


def _mask_regions(
    image: SpecimenImage,
    full: np.ndarray[Any, Any],
    outlines: Iterable[Sequence[Sequence[float]] | np.ndarray[Any, Any]],
    label: str,
    score: float,
    source: str,
) -> list[Label]:
    """A mask at the original size and its outlines in the decoded picture's frame -> a MaskLabel and its polygons."""
    regions: list[Label] = [MaskLabel(label=label, mask=full, score=score, source=source)]
    scale = image.scale
    for outline in outlines:
        if len(outline) >= 3:
            points = tuple((float(x) / scale, float(y) / scale) for x, y in outline)
            regions.append(PolygonLabel(label=label, points=points, score=score, source=source))
    return regions


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
                    labels += _mask_regions(image, np.asarray(full), [outline], name, float(score), self.source)
            out.append(SpecimenLabels(width=image.original_width, height=image.original_height, labels=labels))
        return out


def _bounds(box: BoxLabel) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) around a box, turned clockwise about its top-left corner by its rotation."""
    if box.rotation % 360 == 0:
        return box.xyxy
    turn = math.radians(box.rotation)
    cos, sin = math.cos(turn), math.sin(turn)
    corners = [(dx * cos - dy * sin, dx * sin + dy * cos) for dx, dy in ((0, 0), (box.width, 0), (0, box.height))]
    corners.append((corners[1][0] + corners[2][0], corners[1][1] + corners[2][1]))
    xs, ys = [box.x + dx for dx, _ in corners], [box.y + dy for _, dy in corners]
    return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class BoxPrompts:
    """The boxes that prompt SAM on one image: (x1, y1, x2, y2) in the original image's frame."""

    boxes: tuple[tuple[float, float, float, float], ...]
    merge: bool  # one plant mask from all boxes (organ boxes), else one mask per box (a user's boxes)

    @classmethod
    def of(cls, labels: SpecimenLabels, image: SpecimenImage, merge: bool) -> BoxPrompts:
        """The boxes among ``labels`` (rotated ones by their bounds), moved from ``labels``' frame onto ``image``'s."""
        sx, sy = image.original_width / labels.width, image.original_height / labels.height
        boxes = [(x1 * sx, y1 * sy, x2 * sx, y2 * sy) for x1, y1, x2, y2 in map(_bounds, labels.boxes)]
        return cls(tuple(b for b in boxes if b[2] > b[0] and b[3] > b[1]), merge)


class SamSegmentationAdapter(Adapter):
    """Box-prompted segment-anything -> the plant's mask and outline (label ``plant``), at the original size.

    Each image's boxes come from ``prompts`` (a user's boxes: one mask each), else from ``prompter``,
    the catalog's organ detector (its boxes' masks merged into one plant mask).
    """

    kind = "segment"
    label = PLANT.classes[0]

    def __init__(self, model: LoadedModel, conf: float = 0.25, prompter: DetectionAdapter | None = None) -> None:
        super().__init__(model, conf)
        self.prompter = prompter

    @property
    def imgsz(self) -> int:
        return int(self.model.model.image_encoder.img_size)  # SAM resizes every picture to this long side

    def decode_side(self, tiling: Tiling | None) -> int:
        # The organ detector prompts on the same decoded pictures.
        return max(self.imgsz, self.prompter.decode_side(tiling) if self.prompter else 0)

    def prompts(self, images: Sequence[SpecimenImage], tiling: Tiling | None = None) -> list[BoxPrompts | None]:
        """The organ detector's boxes on each image; None for every image when there is no detector."""
        if self.prompter is None:
            if images:
                log.warning(
                    "%s: no box prompts and no organ detector: no plant mask for %d images", self.source, len(images)
                )
            return [None] * len(images)
        detected = self.prompter.predict(images, tiling)
        return [BoxPrompts.of(labels, image, merge=True) for labels, image in zip(detected, images, strict=True)]

    def predict(
        self,
        images: Sequence[SpecimenImage],
        tiling: Tiling | None = None,
        prompts: Sequence[BoxPrompts | None] | None = None,
    ) -> list[SpecimenLabels]:
        """Labels per image; an image without prompt boxes gets none."""
        if prompts is None:
            prompts = self.prompts(images, tiling)
        out: list[SpecimenLabels] = []
        for image, prompt in zip(images, prompts, strict=True):
            labels = self._segment(image, prompt) if prompt is not None and prompt.boxes else []
            out.append(SpecimenLabels(width=image.original_width, height=image.original_height, labels=labels))
        return out

    def _segment(self, image: SpecimenImage, prompt: BoxPrompts) -> list[Label]:
        import torch
        from segment_anything import SamPredictor

        from herbarium.labels.yolo import mask_outlines

        predictor = SamPredictor(self.model.model)  # holds one image's embedding: one per image, never shared
        picture = np.asarray(image.image)
        predictor.set_image(picture)
        boxes = torch.tensor(prompt.boxes, dtype=torch.float32) * image.scale  # into the decoded picture's frame
        logits: list[np.ndarray[Any, Any]] = []
        scores: list[float] = []
        for start in range(0, len(boxes), SAM_BOX_BATCH):
            chunk = predictor.transform.apply_boxes_torch(boxes[start : start + SAM_BOX_BATCH], picture.shape[:2])
            predicted, iou, _ = predictor.predict_torch(
                None, None, boxes=chunk, multimask_output=False, return_logits=True
            )
            logits += list(predicted[:, 0].cpu().numpy())
            scores += iou[:, 0].clamp(0.0, 1.0).tolist()  # SAM's own IoU estimate, not bounded by construction
        if prompt.merge:
            # The union, taken on logits (max) so that the full-size mask is interpolated once, whatever the box count.
            logits, scores = [np.maximum.reduce(logits)], [sum(scores) / len(scores)]
        labels: list[Label] = []
        for logit, score in zip(logits, scores, strict=True):
            mask = logit > 0
            if mask.any():
                full = _positive_upsampled(logit, image.original_width, image.original_height)
                least = MIN_OUTLINE_SHARE * int(mask.sum())
                outlines = [outline for outline in mask_outlines(mask) if _area(outline) >= least]
                labels += _mask_regions(image, full, outlines, self.label, score, self.source)
        return labels


def _positive_upsampled(logits: np.ndarray[Any, Any], width: int, height: int) -> np.ndarray[Any, Any]:
    """Where ``logits`` resized bilinearly to ``width`` x ``height`` are positive: SAM's own full-size mask.

    Bilinear with half-pixel centres, as SAM upsamples (torch, align_corners=False): a reduced decode gives
    the mask SamPredictor gives on the full scan. Rows first, then bands of columns: a 68-Mpx scan never
    holds a whole float mask (and the bands stay in cache: 60 ms instead of 1.3 s).
    """
    import cv2

    rows = cv2.resize(logits, (width, logits.shape[0]), interpolation=cv2.INTER_LINEAR)
    mask = np.empty((height, width), dtype=bool)
    for start in range(0, width, UPSAMPLE_BAND):
        band = rows[:, start : start + UPSAMPLE_BAND]
        mask[:, start : start + UPSAMPLE_BAND] = (
            cv2.resize(band, (band.shape[1], height), interpolation=cv2.INTER_LINEAR) > 0
        )
    return mask


def _area(outline: np.ndarray[Any, Any]) -> float:
    """The shoelace area of a closed outline (pixel vertices)."""
    x, y = outline[:, 0].astype(np.float64), outline[:, 1].astype(np.float64)
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


class ClassificationAdapter(Adapter):
    """A trait of the whole specimen -> one choice with its probability."""

    kind = "classify"

    def decode_side(self, tiling: Tiling | None) -> int:
        # Ultralytics scales a classifier's input by its *short* side to imgsz (then crops the centre):
        # a sheet decoded to imgsz on its long side would be enlarged from about half that.
        return MAX_SHEET_ASPECT * self.imgsz

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


class SheetNetAdapter(Adapter):
    """A head of a SheetNet (catalog framework ``sheetnet``): every head reads one shared forward pass per sheet."""

    @property
    def runner(self) -> SheetNetRunner:
        runner: SheetNetRunner = self.model.model
        return runner

    @property
    def imgsz(self) -> int:
        return self.runner.spec.input_side

    def _results(self, images: Sequence[SpecimenImage]) -> list[SheetNetResult]:
        return [self.runner.run(image.image) for image in images]


class SheetNetDetectionAdapter(SheetNetAdapter):
    """Non-vegetal elements or organs from a SheetNet's heat maps -> boxes in the original frame.

    Barcode boxes are read with zxing-cpp (:mod:`herbarium.barcodes`): in the decoded picture first, then,
    when that fails and the original is larger, in a larger decode of the same file (at most
    herbarium.barcodes.DECODE_SIDE px), and last their printed line by OCR. A box read carries
    ``barcode: <text> (<format>)`` as its comment, and the reader joins its source.
    """

    kind = "detect"

    def predict(self, images: Sequence[SpecimenImage], tiling: Tiling | None = None) -> list[SpecimenLabels]:
        out: list[SpecimenLabels] = []
        for image, result in zip(images, self._results(images), strict=True):
            xyxy, classes, scores = result.boxes(self.model.task, self.conf)
            labels = _box_labels(
                image, xyxy.tolist(), classes.tolist(), scores.tolist(), self.model.labels, self.source
            )
            if any(label.label == BARCODE for label in labels):
                labels = _with_barcode_values(image, labels)
            out.append(SpecimenLabels(width=image.original_width, height=image.original_height, labels=list(labels)))
        return out


BARCODE = "barcode"


def _with_barcode_values(image: SpecimenImage, labels: list[BoxLabel]) -> list[BoxLabel]:
    """Barcode boxes read: zxing-cpp in the decoded picture, then in a larger decode of the same file, then the
    printed line under the bars by OCR (bars too fine to decode); the reader joins the box's source."""
    from dataclasses import replace

    from herbarium.barcodes import DECODE_SIDE, read_in_box, read_printed_value
    from herbarium.imaging import ImageReadError, read_image

    wanted = [i for i, label in enumerate(labels) if label.label == BARCODE]
    reads = {i: read_in_box(image.image, _scaled(labels[i].xyxy, image.scale)) for i in wanted}
    best = image
    side = min(max(image.original_width, image.original_height), DECODE_SIDE)
    if (
        any(found is None for found in reads.values())
        and image.source is not None
        and side > 1.2 * max(image.image.size)
    ):
        try:
            best = read_image(image.source, max_side=side)
        except ImageReadError:
            best = image
        if best is not image:
            for i in [i for i in wanted if reads[i] is None]:
                reads[i] = read_in_box(best.image, _scaled(labels[i].xyxy, best.scale))
    for i in [i for i in wanted if reads[i] is None]:
        reads[i] = read_printed_value(best.image, _scaled(labels[i].xyxy, best.scale))
    out = list(labels)
    for i, found in reads.items():
        if found is not None:
            out[i] = replace(
                labels[i],
                comment=f"barcode: {found.text} ({found.format})",
                source=f"{labels[i].source}+{found.reader}",
            )
    return out


def _scaled(box: tuple[float, float, float, float], scale: float) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return x0 * scale, y0 * scale, x1 * scale, y1 * scale


class SheetNetSegmentationAdapter(SheetNetAdapter):
    """The plant from a SheetNet's mask head -> one mask at the original size and its outlines."""

    kind = "segment"

    def predict(self, images: Sequence[SpecimenImage], tiling: Tiling | None = None) -> list[SpecimenLabels]:
        from catalog.sheetnet.plant_refinement import resized_mask, served_plant
        from herbarium.labels.yolo import mask_outlines

        out: list[SpecimenLabels] = []
        for image, result in zip(images, self._results(images), strict=True):
            # Refined on a larger decode; outlines on the decoded picture's grid, the mask at the original size.
            refined = served_plant(result, image, self.conf)
            mask = resized_mask(refined, image.image.size)
            labels: list[Label] = []
            if mask.any():
                picture_logits = _resized_logits(result.plant_logits, image.image.width, image.image.height)
                score = float((1 / (1 + np.exp(-picture_logits[mask]))).mean())
                full = resized_mask(refined, (image.original_width, image.original_height))
                least = MIN_OUTLINE_SHARE * int(mask.sum())
                outlines = [outline for outline in mask_outlines(mask) if _area(outline) >= least]
                labels = _mask_regions(image, full, outlines, self.model.labels[0], score, self.source)
            out.append(SpecimenLabels(width=image.original_width, height=image.original_height, labels=labels))
        return out


def _resized_logits(logits: np.ndarray[Any, Any], width: int, height: int) -> np.ndarray[Any, Any]:
    import cv2

    return np.asarray(cv2.resize(logits, (width, height), interpolation=cv2.INTER_LINEAR))


class SheetNetClassificationAdapter(SheetNetAdapter):
    """A trait of the whole sheet from a SheetNet's trait head -> one choice with its probability."""

    kind = "classify"

    def predict(self, images: Sequence[SpecimenImage], tiling: Tiling | None = None) -> list[SpecimenLabels]:
        out: list[SpecimenLabels] = []
        for image, result in zip(images, self._results(images), strict=True):
            probabilities = result.trait_probabilities
            best = int(np.argmax(probabilities))
            label = ClassificationLabel(
                label=self.model.labels[best],
                score=float(probabilities[best]),
                source=self.source,
                control=self.model.task,
            )
            out.append(SpecimenLabels(width=image.original_width, height=image.original_height, labels=[label]))
        return out


SHEETNET_ADAPTERS: dict[str, type[SheetNetAdapter]] = {
    "detect-nonvegetal": SheetNetDetectionAdapter,
    "detect-organs": SheetNetDetectionAdapter,
    "segment-plant": SheetNetSegmentationAdapter,
    "classify-trait": SheetNetClassificationAdapter,
}

ADAPTERS: dict[str, type[Adapter]] = {
    "detect-nonvegetal": DetectionAdapter,
    "detect-organs": DetectionAdapter,
    "segment-plant": SegmentationAdapter,
    "classify-trait": ClassificationAdapter,
}


def organ_detector(models: Iterable[ModelInfo]) -> ModelInfo | None:
    """The production organ detector that prompts SAM (the first by name, when several are in production)."""
    detectors = (m for m in models if m.kind == "detect-organs" and m.production is not None)
    return min(detectors, key=lambda m: m.name, default=None)


def organ_prompter(catalog: Catalog, conf: float = 0.25) -> DetectionAdapter | None:
    """The catalog's production organ detector, ready to prompt SAM; None when the catalog has none."""
    detector = organ_detector(catalog.list_models())
    if detector is None:
        return None
    return DetectionAdapter(load_model(f"{detector.name}@{detector.production}", catalog=catalog), conf=conf)


def adapter_for(model: LoadedModel, kind: str, conf: float = 0.25, prompter: DetectionAdapter | None = None) -> Adapter:
    """The adapter for a model of catalog ``kind`` (detect-*, segment-plant, classify-trait).

    A SAM checkpoint (``segment-plant`` only) is prompted by ``prompter``'s boxes, the organ detector's.
    """
    if model.framework == "sam":
        if kind != "segment-plant":
            raise ValueError(f"{model.ref}: a SAM checkpoint segments the plant only, not {kind!r}")
        return SamSegmentationAdapter(model, conf=conf, prompter=prompter)
    try:
        return (SHEETNET_ADAPTERS if model.is_sheetnet else ADAPTERS)[kind](model, conf=conf)
    except KeyError:
        raise ValueError(f"{model.ref}: no adapter for model kind {kind!r}") from None
