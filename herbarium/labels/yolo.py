"""SpecimenLabels <-> YOLO (Ultralytics) label text.

Detect lines are ``cls cx cy w h``, segment lines ``cls x1 y1 x2 y2 ...``, all normalised to
[0, 1] by the image size and written with ``repr`` so no precision is lost. With
``with_scores=True`` each line ends with the score, as Ultralytics' ``save_conf`` writes it
(training label files must not have it). Class indices are positions in a :class:`LabelSet`.

``as_yolo_detect`` writes boxes only and ``as_yolo_segment`` polygons and masks only; other label
kinds have no form in that file and are left out. Rotated boxes are an error, not un-rotated.

Masks become polygons (lossy): ``cv2.findContours`` outlines each connected component, and each
hole is joined to its component by a zero-width bridge so that even-odd filling (``cv2.fillPoly``,
as Ultralytics rasterises polygons) leaves it empty. Vertices are pixel indices, the Ultralytics
convention, so they rasterise back onto the same pixels. Components of fewer than 3 contour points
(single pixels, 1-pixel-wide straight lines) are dropped. A mask comes back as one polygon per
component, i.e. several ``PolygonLabel``; expect IoU around 0.99 with the original, not equality.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from herbarium.labels.model import (
    BoxLabel,
    Label,
    LabelError,
    LabelState,
    MaskLabel,
    PolygonLabel,
    SpecimenLabels,
)
from herbarium.taxonomy import LabelSet

_Points = npt.NDArray[np.int64]


def as_yolo_detect(specimen: SpecimenLabels, label_set: LabelSet, *, with_scores: bool = False) -> str:
    """One ``cls cx cy w h`` line per box."""
    width, height = specimen.width, specimen.height
    lines = []
    for box in specimen.boxes:
        if box.rotation % 360 != 0:
            raise LabelError(
                f"rotation: box {box.label!r} at ({box.x}, {box.y}) is rotated by {box.rotation} degrees; "
                "YOLO detect boxes are axis-aligned"
            )
        values = [
            (box.x + box.width / 2) / width,
            (box.y + box.height / 2) / height,
            box.width / width,
            box.height / height,
        ]
        lines.append(_line(label_set.index(box.label), values, box, with_scores))
    return "".join(f"{line}\n" for line in lines)


def from_yolo_detect(
    text: str,
    width: int,
    height: int,
    label_set: LabelSet,
    *,
    source: str | None = None,
    state: LabelState = LabelState.PREDICTED,
) -> SpecimenLabels:
    """Read ``cls cx cy w h [score]`` lines of an image of ``width`` x ``height`` pixels."""
    labels: list[Label] = []
    for number, name, values in _parse(text, label_set):
        if len(values) not in (4, 5):
            raise LabelError(
                f"line {number}: expected 'cls cx cy w h' (and optionally a score), got {1 + len(values)} fields"
            )
        cx, cy, w, h = values[:4]
        if w < 0 or h < 0:
            raise LabelError(f"line {number}: width and height must be >= 0, got {w} x {h}")
        labels.append(
            BoxLabel(
                label=name,
                x=(cx - w / 2) * width,
                y=(cy - h / 2) * height,
                width=w * width,
                height=h * height,
                score=_line_score(values, 4, number),
                source=source,
                state=state,
            )
        )
    return SpecimenLabels(width=width, height=height, labels=labels)


def as_yolo_segment(specimen: SpecimenLabels, label_set: LabelSet, *, with_scores: bool = False) -> str:
    """One ``cls x1 y1 ...`` line per polygon, and per connected component of each mask."""
    width, height = specimen.width, specimen.height
    lines = []
    for label in specimen.labels:
        if isinstance(label, PolygonLabel):
            outlines: list[list[tuple[float, float]]] = [list(label.points)]
        elif isinstance(label, MaskLabel):
            outlines = [[(float(x), float(y)) for x, y in outline] for outline in mask_outlines(label.mask)]
        else:
            continue
        index = label_set.index(label.label)
        for outline in outlines:
            values = [c for x, y in outline for c in (x / width, y / height)]
            lines.append(_line(index, values, label, with_scores))
    return "".join(f"{line}\n" for line in lines)


def from_yolo_segment(
    text: str,
    width: int,
    height: int,
    label_set: LabelSet,
    *,
    source: str | None = None,
    state: LabelState = LabelState.PREDICTED,
) -> SpecimenLabels:
    """Read ``cls x1 y1 x2 y2 ... [score]`` lines as polygons."""
    labels: list[Label] = []
    for number, name, values in _parse(text, label_set):
        # An odd number of values means a trailing score.
        coords = values[: len(values) - len(values) % 2]
        if len(coords) < 6:
            raise LabelError(f"line {number}: a polygon needs at least 3 points (6 coordinates), got {len(coords)}")
        points = tuple((coords[k] * width, coords[k + 1] * height) for k in range(0, len(coords), 2))
        labels.append(
            PolygonLabel(
                label=name,
                points=points,
                score=_line_score(values, len(coords), number),
                source=source,
                state=state,
            )
        )
    return SpecimenLabels(width=width, height=height, labels=labels)


def mask_outlines(mask: npt.NDArray[np.bool_]) -> list[_Points]:
    """Outlines (N x 2 pixel indices) of a mask's components, each hole bridged into its component."""
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    # RETR_CCOMP: two levels, outer boundaries (parent -1) and their holes (first child, then next).
    links = hierarchy[0]
    outlines: list[_Points] = []
    for i, contour in enumerate(contours):
        if links[i][3] != -1:
            continue
        outline: _Points = contour.reshape(-1, 2).astype(np.int64)
        if len(outline) < 3:
            continue
        child = links[i][2]
        while child != -1:
            hole = contours[child].reshape(-1, 2).astype(np.int64)
            if len(hole) >= 3:
                outline = _bridge(outline, hole)
            child = links[child][0]
        outlines.append(outline)
    return outlines


def _bridge(outline: _Points, hole: _Points) -> _Points:
    """Splice ``hole`` into ``outline`` at a nearby vertex pair, going there and back on one segment."""
    low, high = hole.min(axis=0), hole.max(axis=0)
    margin = 1
    while True:  # candidates near the hole: the nearest vertex is almost always among them
        near = np.flatnonzero(np.all((outline >= low - margin) & (outline <= high + margin), axis=1))
        if near.size:
            break
        margin *= 2
    candidates = outline[near]
    sample = hole[:: max(1, len(hole) // 32)]
    distances = ((candidates[:, None, :] - sample[None, :, :]) ** 2).sum(axis=-1)
    first = candidates[np.unravel_index(np.argmin(distances), distances.shape)[0]]
    b = int(np.argmin(((hole - first) ** 2).sum(axis=-1)))
    a = int(near[np.argmin(((candidates - hole[b]) ** 2).sum(axis=-1))])
    return np.concatenate([outline[: a + 1], hole[b:], hole[: b + 1], outline[a:]])


def _line(index: int, values: list[float], label: Label, with_scores: bool) -> str:
    fields = [str(index), *(repr(float(v)) for v in values)]
    if with_scores and label.score is not None:
        fields.append(repr(label.score))
    return " ".join(fields)


def _line_score(values: list[float], coordinates: int, number: int) -> float | None:
    """The score after ``coordinates`` numbers, if the line has one."""
    if len(values) <= coordinates:
        return None
    score = values[coordinates]
    if not 0.0 <= score <= 1.0:
        raise LabelError(f"line {number}: score {score} is not in [0, 1]")
    return score


def _parse(text: str, label_set: LabelSet) -> Iterator[tuple[int, str, list[float]]]:
    """(line number, class name, numbers) of each non-blank line."""
    if not isinstance(text, str):
        raise LabelError(f"text: expected str, got {type(text).__name__}")
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            index = int(fields[0])
        except ValueError:
            raise LabelError(f"line {number}: class {fields[0]!r} is not an integer index") from None
        if not 0 <= index < len(label_set.classes):
            raise LabelError(
                f"line {number}: class index {index} is out of range for label set {label_set.name!r} "
                f"({len(label_set.classes)} classes)"
            )
        values: list[Any] = []
        for field in fields[1:]:
            try:
                value = float(field)
            except ValueError:
                raise LabelError(f"line {number}: {field!r} is not a number") from None
            if not math.isfinite(value):
                raise LabelError(f"line {number}: {field!r} is not a finite number")
            values.append(value)
        yield number, label_set.classes[index], values
