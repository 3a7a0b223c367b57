"""Hypothesis strategies shared by the converters' property tests: valid specimens, JSON garbage, mutations.

Valid specimens follow the model's rules (labels from the taxonomy's label sets, geometry inside
the image, scores in [0, 1]); garbage is any JSON a file could hold, and a mutation breaks one to
three nodes of a valid document (deleted, replaced by garbage or an edge value, a key added).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import event, settings
from hypothesis import strategies as st

from herbarium.labels import BoxLabel, ClassificationLabel, Label, LabelError, MaskLabel, PolygonLabel, SpecimenLabels
from herbarium.taxonomy import NONVEGETAL, ORGANS, PLANT, LabelSet, UnknownLabelError

LABEL_SETS: tuple[LabelSet, ...] = (ORGANS, NONVEGETAL, PLANT)
# The errors a converter raises for input it cannot read: anything else is a crash.
CLEAR_ERRORS: tuple[type[Exception], ...] = (LabelError, UnknownLabelError)


def read_or_clear_error(
    read: Callable[[], SpecimenLabels], errors: tuple[type[Exception], ...] = CLEAR_ERRORS
) -> SpecimenLabels | None:
    """What ``read`` gives, or None when it raised one of ``errors``; hypothesis counts which, as events."""
    try:
        back = read()
    except errors as error:
        event(f"rejected: {type(error).__name__}")
        return None
    event("read")
    return back


# A JSON parser returns integers of any size as int: some beyond float range (test_converter_regressions.py).
JSON_INTS = st.integers() | st.sampled_from([2**1024, -(10**400)])

JSON_SCALARS = st.none() | st.booleans() | JSON_INTS | st.floats() | st.text(max_size=6)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
EDGE_VALUES = st.sampled_from(
    [
        *(None, True, False, 0, 1, -1, -0.5, 100.5, 1e308, -1e308, math.nan, math.inf, -math.inf, 2**63, 10**400),
        *("", "1"),
        *([], {}, [0], [0, 0], [[1, 2], [3, 4]], ["leaf"], {"x": 1}),
        *("rectanglelabels", "polygonlabels", "brushlabels", "choices", "textarea", "ellipselabels", "rle", "leaf"),
    ]
)
# Keys a mutation may add to an object: ones the readers look at.
KNOWN_KEYS = st.sampled_from(
    [
        *("id", "type", "from_name", "to_name", "value", "x", "points", "closed", "rle", "format", "rotation"),
        *("score", "origin", "image_rotation", "item_index", "original_width", "segmentation", "bbox", "counts"),
        *("size", "name", "width"),
    ]
)


def share_of_examples(fraction: float) -> settings:
    """Settings running ``fraction`` of the loaded profile's examples (300 in CI, tests/conftest.py), at least 50:
    for tests whose examples are slow to draw, so that a deeper profile scales them too."""
    return settings(max_examples=max(50, round(settings().max_examples * fraction)))


def json_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths (keys and indices) to every node below ``node``."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    paths: list[tuple[Any, ...]] = []
    for key, child in children:
        paths.append((*prefix, key))
        paths.extend(json_paths(child, (*prefix, key)))
    return paths


@st.composite
def mutations(draw: st.DrawFn, document: Any, max_changes: int = 3) -> Any:
    """A copy of ``document`` with one to ``max_changes`` nodes deleted, replaced or added."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, max_changes))):
        paths = json_paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["delete", "garbage", "edge", "add key"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add key" and isinstance(parent, dict):
            parent[draw(KNOWN_KEYS)] = copy.deepcopy(draw(EDGE_VALUES | JSON_VALUES))  # edge lists are shared
        else:
            parent[path[-1]] = copy.deepcopy(draw(JSON_VALUES if action == "garbage" else EDGE_VALUES))
    return doc


def scores() -> st.SearchStrategy[float | None]:
    return st.none() | st.floats(0, 1)


def names_in(label_set: LabelSet) -> st.SearchStrategy[str]:
    """A class of ``label_set``, canonical or through an alias (the writers resolve aliases)."""
    return st.sampled_from(sorted({*label_set.classes, *label_set.aliases}))


@st.composite
def region_labels(
    draw: st.DrawFn, width: int, height: int, *, names: st.SearchStrategy[str], rotated: bool, masks: bool
) -> Label:
    """One box, polygon or (when ``masks``) mask, inside a ``width`` x ``height`` image."""
    kinds = ["box", "polygon", *(["mask"] if masks else [])]
    kind = draw(st.sampled_from(kinds))
    common: dict[str, Any] = {"label": draw(names), "score": draw(scores())}
    if kind == "box":
        x, y = draw(st.floats(0, width)), draw(st.floats(0, height))
        rotation = draw(st.floats(-360, 360)) if rotated else 0.0
        w, h = draw(st.floats(0, width - x)), draw(st.floats(0, height - y))
        return BoxLabel(x=x, y=y, width=w, height=h, rotation=rotation, **common)
    if kind == "polygon":
        point = st.tuples(st.floats(0, width), st.floats(0, height))
        return PolygonLabel(points=tuple(draw(st.lists(point, min_size=3, max_size=8))), **common)
    # Random pixels at a drawn density (empty and full included): cheaper to draw than pixel by pixel.
    seed, density = draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from([0.0, 0.05, 0.5, 0.95, 1.0]))
    return MaskLabel(mask=np.random.default_rng(seed).random((height, width)) < density, **common)


@st.composite
def plain_specimens(
    draw: st.DrawFn,
    *,
    label_set: LabelSet = ORGANS,
    max_side: int = 5000,
    rotated: bool = False,
    masks: bool = False,
    max_labels: int = 5,
) -> SpecimenLabels:
    """A specimen of region labels named from ``label_set`` (or its aliases), with no format metadata."""
    width, height = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    labels = draw(
        st.lists(
            region_labels(width, height, names=names_in(label_set), rotated=rotated, masks=masks), max_size=max_labels
        )
    )
    return SpecimenLabels(width=width, height=height, labels=labels)


def close(got: float, want: float) -> bool:
    """Equal but for float rounding (percent or normalised units -> pixels and back)."""
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def same_geometry(got: Label, want: Label) -> bool:
    """Same kind and shape: box and polygon coordinates within :func:`close`, masks exactly."""
    if isinstance(want, BoxLabel) and isinstance(got, BoxLabel):
        return all(close(getattr(got, k), getattr(want, k)) for k in ("x", "y", "width", "height", "rotation"))
    if isinstance(want, PolygonLabel) and isinstance(got, PolygonLabel):
        return len(got.points) == len(want.points) and all(
            close(g, w) for gp, wp in zip(got.points, want.points, strict=True) for g, w in zip(gp, wp, strict=True)
        )
    if isinstance(want, MaskLabel) and isinstance(got, MaskLabel):
        return got.mask.shape == want.mask.shape and bool(np.array_equal(got.mask, want.mask))
    return type(got) is type(want)


def what_coco_keeps(specimen: SpecimenLabels, label_set: LabelSet, file_name: str) -> SpecimenLabels:
    """Region labels with their canonical class, geometry and score; the image's file name."""
    kept: list[Any] = []
    for label in specimen.labels:
        if isinstance(label, ClassificationLabel):
            continue
        common: dict[str, Any] = {"label": label_set.resolve(label.label), "score": label.score}
        if isinstance(label, BoxLabel):
            kept.append(BoxLabel(x=label.x, y=label.y, width=label.width, height=label.height, **common))
        elif isinstance(label, PolygonLabel):
            kept.append(PolygonLabel(points=label.points, **common))
        elif isinstance(label, MaskLabel):
            kept.append(MaskLabel(mask=label.mask, **common))
    return SpecimenLabels(width=specimen.width, height=specimen.height, labels=kept, image=file_name)
