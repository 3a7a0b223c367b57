"""One typed intermediate for specimen labels.

Every format (Label Studio, FiftyOne, YOLO, COCO) converts to and from these classes, and
nothing else in PlantAI hand-writes another format's coordinates. Geometry is in pixels of
the *oriented* image (EXIF orientation applied), origin at the top-left corner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from herbarium.imaging import MAX_PIXELS


class LabelError(ValueError):
    """A label that breaks the model's rules; the message names the field."""


def finite_number(value: object, field: str) -> float:
    """``value`` as a float when it is a finite JSON number (an int or a float, not a bool); else a
    :class:`LabelError` naming ``field``. JSON integers have no size limit: one beyond float range is
    refused here rather than raising ``OverflowError`` wherever it is first used as a float."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    shown = repr(value)
    if len(shown) > 40:
        shown = f"{shown[:30]}... ({len(shown)} characters)"
    raise LabelError(f"{field}: expected a finite number, got {shown}")


def check_mask_size(width: int, height: int, field: str) -> None:
    """A mask of ``width`` x ``height`` is no bigger than a scan may be (:data:`herbarium.imaging.MAX_PIXELS`);
    else a :class:`LabelError` naming ``field``, before anything of that size is allocated."""
    if width * height > MAX_PIXELS:
        raise LabelError(f"{field}: a {width} x {height} mask is over the {MAX_PIXELS} pixels a scan may have")


class LabelState(StrEnum):
    """Where a label stands in expert review."""

    PREDICTED = "predicted"  # AI output nobody has looked at
    VALIDATED = "validated"  # an expert confirmed it as is
    CORRECTED = "corrected"  # an expert changed it
    REJECTED = "rejected"  # an expert said it is wrong


EXPERT_STATES = frozenset({LabelState.VALIDATED, LabelState.CORRECTED, LabelState.REJECTED})


def model_source(name: str, version: str) -> str:
    """The ``source`` of a prediction: ``name@version``."""
    return f"{name}@{version}"


def expert_source(expert_id: str | int) -> str:
    """The ``source`` of an expert label: ``expert:<id>``."""
    return f"expert:{expert_id}"


@dataclass(kw_only=True)
class _Label:
    label: str
    score: float | None = None
    source: str | None = None
    state: LabelState = LabelState.PREDICTED
    comment: str | None = None
    # Identity and tag inside a Label Studio task; kept so round trips are lossless.
    region_id: str | None = None
    control: str | None = None
    # Per-region choices (e.g. an expert's verdict), keyed by control name.
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise LabelError(f"label: expected a non-empty string, got {self.label!r}")
        if self.score is not None:
            score = float(self.score)
            if not (0.0 <= score <= 1.0) or math.isnan(score):
                raise LabelError(f"score: expected a number in [0, 1], got {self.score!r}")
            self.score = score
        try:
            self.state = LabelState(self.state)
        except ValueError:
            raise LabelError(
                f"state: expected one of {', '.join(s.value for s in LabelState)}, got {self.state!r}"
            ) from None
        self.attributes = {str(k): tuple(str(v) for v in vs) for k, vs in self.attributes.items()}

    @property
    def is_expert(self) -> bool:
        return self.state in EXPERT_STATES


@dataclass(kw_only=True)
class BoxLabel(_Label):
    """An axis-aligned box (x, y = top-left), optionally rotated clockwise about (x, y)."""

    x: float
    y: float
    width: float
    height: float
    rotation: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("x", "y", "width", "height", "rotation"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise LabelError(f"{name}: expected a finite number, got {value!r}")
            setattr(self, name, value)
        if self.width < 0 or self.height < 0:
            raise LabelError(f"width/height: expected >= 0, got {self.width} x {self.height}")

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.width, self.y + self.height)


@dataclass(kw_only=True)
class PolygonLabel(_Label):
    """A closed polygon, vertices in pixels."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        points = tuple((float(x), float(y)) for x, y in self.points)
        if len(points) < 3:
            raise LabelError(f"points: a polygon needs at least 3 vertices, got {len(points)}")
        if not all(math.isfinite(c) for point in points for c in point):
            raise LabelError("points: every coordinate must be a finite number")
        self.points = points

    def bounding_box(self) -> tuple[float, float, float, float]:
        """(x, y, width, height) of the vertices."""
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


BoolMask: TypeAlias = npt.NDArray[np.bool_]


@dataclass(kw_only=True, eq=False)
class MaskLabel(_Label):
    """A pixel mask over the whole image (height x width, bool)."""

    mask: BoolMask

    def __post_init__(self) -> None:
        super().__post_init__()
        mask = np.asarray(self.mask)
        if mask.ndim != 2:
            raise LabelError(f"mask: expected a 2-D array, got shape {mask.shape}")
        self.mask = mask.astype(bool, copy=False)

    def bounding_box(self) -> tuple[int, int, int, int] | None:
        """(x, y, width, height) of the set pixels, or None for an empty mask."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        cols = np.flatnonzero(self.mask.any(axis=0))
        if rows.size == 0:
            return None
        return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MaskLabel):
            return NotImplemented
        mine = {k: v for k, v in vars(self).items() if k != "mask"}
        theirs = {k: v for k, v in vars(other).items() if k != "mask"}
        return mine == theirs and self.mask.shape == other.mask.shape and bool(np.array_equal(self.mask, other.mask))

    __hash__ = None  # type: ignore[assignment]


@dataclass(kw_only=True)
class ClassificationLabel(_Label):
    """A value for the whole specimen (a trait such as ``phenology``) named by ``control``."""


Label: TypeAlias = BoxLabel | PolygonLabel | MaskLabel | ClassificationLabel
REGION_TYPES = (BoxLabel, PolygonLabel, MaskLabel)


@dataclass(kw_only=True)
class SpecimenLabels:
    """All labels of one specimen image, in the oriented image's pixel frame."""

    width: int
    height: int
    labels: list[Label] = field(default_factory=list)
    comment: str | None = None  # a task-level comment (Label Studio TextArea)
    image: str | None = None

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise LabelError(f"{name}: expected a positive integer image size, got {value!r}")
            setattr(self, name, int(value))
        for label in self.labels:
            if isinstance(label, MaskLabel) and label.mask.shape != (self.height, self.width):
                raise LabelError(
                    f"mask: shape {label.mask.shape} differs from the image size (height, width) = "
                    f"{(self.height, self.width)}"
                )

    def __iter__(self) -> Iterator[Label]:
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [label for label in self.labels if isinstance(label, kind)]

    @property
    def boxes(self) -> list[BoxLabel]:
        return self.of_type(BoxLabel)

    @property
    def polygons(self) -> list[PolygonLabel]:
        return self.of_type(PolygonLabel)

    @property
    def masks(self) -> list[MaskLabel]:
        return self.of_type(MaskLabel)

    @property
    def classifications(self) -> list[ClassificationLabel]:
        return self.of_type(ClassificationLabel)

    def with_labels(self, labels: Iterable[Label]) -> SpecimenLabels:
        return replace(self, labels=list(labels))
