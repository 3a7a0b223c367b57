"""Running a SheetNet on a decoded sheet and reading its heads: ONNX Runtime and numpy, no torch.

One :class:`SheetNetRunner` per weight file (by sha256): every catalog model that shares the file
shares the runner, and the runner keeps its last few sheets' outputs, so the plant segmenter, both
detectors and the trait classifier of one backend request cost one forward pass per sheet.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from catalog.sheetnet.spec import (
    BOX_TASK_CHANNELS,
    INPUT_MULTIPLE,
    METADATA_KEY,
    STRIDE_BOXES,
    SheetNetSpec,
    SheetNetSpecError,
)

FloatArray = npt.NDArray[np.float32]
MAX_BOXES = 200  # per task and sheet, after non-maximum suppression
MAX_CANDIDATES = 1500  # cells proposing a box, per task and sheet, best first
REGION_LEVEL = 0.3  # a non-vegetal region is the cells at this heat or more (or at the score threshold, if higher)
DECODING = {"detect-nonvegetal": "regions", "detect-organs": "cells"}
DUPLICATE_IOU = 0.5  # two region boxes of one class that overlap more than this are one object
CELL_NMS_IOU = 0.3  # cell proposals: Fast R-CNN's NMS threshold (at 0.5, 0.32 leaf AP50 on held-out real sheets)
VOTE_IOU = 0.5  # box voting (Gidaris & Komodakis 2015): the proposals overlapping a kept box this much vote
_CACHED_SHEETS = 16
Forward = Callable[[FloatArray], Sequence[FloatArray]]


def network_size(width: int, height: int, input_side: int) -> tuple[int, int]:
    """The network input for a ``width`` x ``height`` picture: long side ``input_side``, both sides multiples of 32.

    The short side is rounded to a multiple of 32 rather than padded: at most a 4% stretch, and no border
    the network never saw in training.
    """
    scale = input_side / max(width, height)

    def side(n: int) -> int:
        return max(INPUT_MULTIPLE, round(n * scale / INPUT_MULTIPLE) * INPUT_MULTIPLE)

    return side(width), side(height)


def to_input(picture: Image.Image, input_side: int) -> FloatArray:
    """RGB picture → the network's (1, 3, H, W) float input in [-1, 1]."""
    size = network_size(picture.width, picture.height, input_side)
    resized = picture.convert("RGB").resize(size, Image.Resampling.BILINEAR) if picture.size != size else picture
    array = np.asarray(resized, dtype=np.float32)
    return np.ascontiguousarray((array / 127.5 - 1.0).transpose(2, 0, 1)[None])


@dataclass(frozen=True)
class SheetNetResult:
    """The heads' outputs for one picture, and how to map them back onto it."""

    picture_size: tuple[int, int]  # (width, height) of the picture the backend decoded
    input_size: tuple[int, int]  # (width, height) the network saw
    plant_logits: FloatArray  # (H/2, W/2)
    box_heat: FloatArray  # (classes, H/8, W/8): probability that a cell is in an object's central region
    box_regression: FloatArray  # (4, H/8, W/8): log distances (cells) from each cell's centre to the box's edges
    trait_probabilities: FloatArray  # (trait classes,)
    box_scales: FloatArray | None = None  # (classes, 2): width and height factors of decoded boxes (spec.box_scales)

    def boxes(self, task: str, conf: float) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray]:
        """``task``'s boxes scoring at least ``conf``: (N, 4) x1 y1 x2 y2 in the picture's pixels, class, score.

        Non-vegetal elements never overlap one another: each connected region of a class's heat map (at
        ``conf``, and at least REGION_LEVEL) is one element, boxed by the median of the boxes its most
        confident cells propose. Organs overlap (leaves on leaves): every cell proposes its own box, scored by
        its heat, non-maximum suppression keeps the best of each overlapping group (FCOS's decoding), and each
        kept box becomes the score-weighted mean of the proposals it stands for (box voting).
        """
        channels = list(BOX_TASK_CHANNELS[task])
        heat = self.box_heat[channels]
        regions = DECODING.get(task) == "regions"
        xyxy, classes, scores = self._regions(heat, conf) if regions else self._cells(heat, conf)
        if not len(scores):
            return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.box_scales is not None:
            xyxy = scaled_about_centres(xyxy, self.box_scales[np.asarray(channels)[classes]])
        if regions:
            keep = non_max_suppression(xyxy, scores, classes, DUPLICATE_IOU)[:MAX_BOXES]
            return xyxy[keep], classes[keep], scores[keep]
        keep = non_max_suppression(xyxy, scores, classes, CELL_NMS_IOU)[:MAX_BOXES]
        return box_voting(xyxy, scores, classes, keep, VOTE_IOU), classes[keep], scores[keep]

    def _proposals(self, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]) -> FloatArray:
        """The boxes cells propose, in the picture's pixels: each cell's centre moved by its four distances."""
        left, top, right, bottom = (np.exp(np.clip(self.box_regression[k, rows, cols], -4.0, 8.0)) for k in range(4))
        sx = self.input_size[0] / self.picture_size[0] / STRIDE_BOXES
        sy = self.input_size[1] / self.picture_size[1] / STRIDE_BOXES
        cx, cy = cols + 0.5, rows + 0.5
        return np.stack([(cx - left) / sx, (cy - top) / sy, (cx + right) / sx, (cy + bottom) / sy], 1).astype(
            np.float32
        )

    def _cells(self, heat: FloatArray, conf: float) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray]:
        found = np.argwhere(heat >= conf)
        scores = heat[found[:, 0], found[:, 1], found[:, 2]]
        if len(found) > MAX_CANDIDATES:
            best = np.argpartition(-scores, MAX_CANDIDATES)[:MAX_CANDIDATES]
            found, scores = found[best], scores[best]
        return self._proposals(found[:, 1], found[:, 2]), found[:, 0].astype(np.int64), scores.astype(np.float32)

    def _regions(self, heat: FloatArray, conf: float) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray]:
        from scipy import ndimage

        boxes: list[FloatArray] = []
        classes: list[int] = []
        scores: list[float] = []
        for index in range(heat.shape[0]):
            regions, _count = ndimage.label(heat[index] >= max(conf, REGION_LEVEL), structure=np.ones((3, 3)))
            for label, where in enumerate(ndimage.find_objects(regions), start=1):
                if where is None:
                    continue
                values = np.where(regions[where] == label, heat[index][where], 0.0)
                best = float(values.max())
                rows, cols = np.nonzero(values >= best / 2)
                proposals = self._proposals(rows + where[0].start, cols + where[1].start)
                boxes.append(np.median(proposals, axis=0))
                classes.append(index)
                scores.append(best)
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.asarray(boxes, np.float32), np.asarray(classes, np.int64), np.asarray(scores, np.float32)


def scaled_about_centres(xyxy: FloatArray, factors: FloatArray) -> FloatArray:
    """Boxes (N, 4) scaled by (N, 2) width and height factors, each about its own centre."""
    centres = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    halves = (xyxy[:, 2:] - xyxy[:, :2]) / 2 * factors
    return np.concatenate([centres - halves, centres + halves], axis=1).astype(np.float32)


def box_scale_table(spec: SheetNetSpec) -> FloatArray | None:
    """``spec.box_scales`` as a (classes, 2) table (1 where a class has none); None when there are none."""
    if not spec.box_scales:
        return None
    table = np.ones((len(spec.box_classes), 2), np.float32)
    for name, factors in spec.box_scales.items():
        table[spec.box_classes.index(name)] = factors
    return table


def box_voting(
    xyxy: FloatArray, scores: FloatArray, classes: npt.NDArray[np.int64], keep: npt.NDArray[np.int64], iou: float
) -> FloatArray:
    """Each kept box replaced by the score-weighted mean of its class's proposals overlapping it by ``iou`` or more."""
    if not len(keep):
        return xyxy[keep]
    kept = xyxy[keep]
    overlap = pairwise_iou(kept, xyxy) * (classes[keep][:, None] == classes[None, :])
    weights = np.where(overlap >= iou, scores[None, :], 0.0)
    weights[np.arange(len(keep)), keep] = scores[keep]  # a box always votes for itself
    voted: FloatArray = (weights @ xyxy / weights.sum(axis=1, keepdims=True)).astype(np.float32)
    return voted


def pairwise_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """(len(a), len(b)) intersection over union of x1 y1 x2 y2 boxes."""
    w = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    h = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    overlap: FloatArray = (w * h / (area_a[:, None] + area_b[None, :] - w * h + 1e-9)).astype(np.float32)
    return overlap


def non_max_suppression(
    xyxy: FloatArray, scores: FloatArray, classes: npt.NDArray[np.int64], iou: float
) -> npt.NDArray[np.int64]:
    """Indexes kept, best first: per class, a box overlapping a better one by more than ``iou`` goes."""
    order = np.argsort(-scores, kind="stable")
    boxes, labels = xyxy[order], classes[order]
    overlap = pairwise_iou(boxes, boxes)
    suppressed = np.zeros(len(boxes), bool)
    same = labels[:, None] == labels[None, :]
    for i in range(len(boxes)):
        if not suppressed[i]:
            suppressed[i + 1 :] |= same[i, i + 1 :] & (overlap[i, i + 1 :] > iou)
    return np.asarray(order[~suppressed], np.int64)


class SheetNetRunner:
    """One SheetNet file ready to run (ONNX Runtime, or torch for a file without its ONNX sibling)."""

    def __init__(self, spec: SheetNetSpec, forward: Forward) -> None:
        self.spec = spec
        self._forward = forward
        self._cache: OrderedDict[int, tuple[Image.Image, SheetNetResult]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, framework: str) -> SheetNetRunner:
        """``framework`` "onnx" runs the exported graph; "sheetnet" loads the safetensors file with torch."""
        if framework == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            spec = SheetNetSpec.from_json(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY))
            return cls(spec, lambda x: session.run(None, {"image": x}))
        from catalog.sheetnet import network

        return cls.from_network(network.load(path))

    @classmethod
    def from_network(cls, net: Any) -> SheetNetRunner:
        """A runner over an in-memory torch SheetNet (training evaluates candidates this way)."""
        import torch

        from catalog.sheetnet.network import ServingGraph

        graph = ServingGraph(net).eval()

        def forward(x: FloatArray) -> list[FloatArray]:
            with torch.inference_mode():
                return [t.numpy() for t in graph(torch.from_numpy(x))]

        return cls(net.spec, forward)

    def run(self, picture: Image.Image) -> SheetNetResult:
        """The heads' outputs for ``picture``, computed once while the picture is among the last few seen."""
        key = id(picture)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] is picture:
                self._cache.move_to_end(key)
                return hit[1]
        x = to_input(picture, self.spec.input_side)
        outputs = self._forward(x)
        if len(outputs) != 4:
            raise SheetNetSpecError(f"a SheetNet graph has 4 outputs, this one {len(outputs)}")
        plant, heat, regression, trait = outputs
        result = SheetNetResult(
            picture_size=picture.size,
            input_size=(x.shape[3], x.shape[2]),
            plant_logits=plant[0, 0],
            box_heat=heat[0],
            box_regression=regression[0],
            trait_probabilities=trait[0],
            box_scales=box_scale_table(self.spec),
        )
        with self._lock:
            # The picture itself is kept with its result: its id cannot be reused by another while cached.
            self._cache[key] = (picture, result)
            while len(self._cache) > _CACHED_SHEETS:
                self._cache.popitem(last=False)
        return result


_runners: dict[tuple[str, str], SheetNetRunner] = {}
_runners_lock = threading.Lock()


def shared_runner(path: Path, framework: str, sha256: str) -> SheetNetRunner:
    """The one runner for this file (by sha256): catalog models sharing the file share its outputs."""
    key = (sha256, framework)
    with _runners_lock:
        runner = _runners.get(key)
        if runner is None:
            runner = _runners[key] = SheetNetRunner.open(path, framework)
        return runner


def clear_runners() -> None:
    with _runners_lock:
        _runners.clear()
