"""The first sync's fast path: a new task's Label Studio JSON straight to FiftyOne documents.

It handles plain boxes, polygons, choices and texts; anything else goes to the general path
(:mod:`connectors.sync.task_fields`), which stays the reference: a test holds the two equal.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
import traceback
from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from connectors.label_config import (
    REVIEW_CONTROL,
    VERDICT_CONTROL,
)
from connectors.review import expert_state
from connectors.sync.report import UnknownLabel
from connectors.sync.task_fields import (
    ANNOTATED,
    UNKNOWN_ATTRIBUTE,
    UNREVIEWED,
    TaskBasics,
    TaskFields,
    assembled_fields,
    expert_extras,
    model_versions,
    resolves,
)
from herbarium.labels import LabelState
from herbarium.labels import expert_source as expert_source_of
from herbarium.labels.labelstudio import (
    GEOMETRY_KEYS,
    ORIGIN_ATTRIBUTE,
    RESERVED_ATTRIBUTES,
    TEXTAREA_ATTRIBUTE,
)
from herbarium.labels.labelstudio_tags import BRUSH_LABELS, CHOICES, REGION_TAGS, TEXTAREA_TYPE

log = logging.getLogger(__name__)


class _FallbackError(Exception):
    """Input the fast path leaves to the general one: brush masks, and anything the general path reports."""


# Result type -> field kind of the regions the fast path handles: all but brush masks, whose RLE
# decoding is the general path's.
_FAST_REGIONS = {tag.result_type: tag.field_kind for tag in REGION_TAGS if tag is not BRUSH_LABELS}
_FAST_TYPES = frozenset({*_FAST_REGIONS, CHOICES.result_type, TEXTAREA_TYPE})
_SIZE_KEYS = ("original_width", "original_height")
_NUMBERS = (int, float)  # exactly: a bool is not a coordinate
_PREDICTED = LabelState.PREDICTED.value
_MIXED = "mixed"  # a control with labels of several kinds
# Control -> (field kind, documents of its labels), in the order the labels come.
_Groups = dict[str, tuple[str, list[dict[str, Any]]]]


class LabelIds:
    """New ObjectIds for label documents, made as ``ObjectId()`` makes them (the second, a random value, a
    counter), with a random value of their own: a third of the fast path's time went to ``ObjectId()``.

    One per sync (a fresh random value each time, so a fork cannot repeat another's ids).
    """

    def __init__(self) -> None:
        self._random = os.urandom(5)
        self._counter = itertools.count(int.from_bytes(os.urandom(3), "big"))
        self._second = -1
        self._prefix = b""

    def __call__(self) -> ObjectId:
        second = int(time.time())
        if second != self._second:
            self._second, self._prefix = second, second.to_bytes(4, "big") + self._random
        return ObjectId(self._prefix + (next(self._counter) & 0xFFFFFF).to_bytes(3, "big"))


def fast_task_fields(basics: TaskBasics, controls: Mapping[str, str], new_id: LabelIds) -> TaskFields | None:
    """:func:`task_fields` with ``as_documents=True``, read without building label objects; None: not handled.

    ``from_labelstudio``, the labels' validation and ``replace`` per region took most of a first
    sync's own time. This reads boxes, polygons, per-region choices and texts, task-level choices and
    the sheet comment in one pass and writes the documents :func:`label_documents` would. Whatever it
    does not handle exactly as the general path does (brush masks, any input the general path reports
    as an error) gives None, and the general path takes the task: it stays the reference, and a test
    holds the two equal on generated tasks.
    """
    try:
        return _fast_fields(basics, controls, new_id)
    except _FallbackError as fallback:  # expected: brush masks and inputs the general path reports
        if log.isEnabledFor(logging.DEBUG):
            where = traceback.extract_tb(fallback.__traceback__)[-1]
            log.debug("sync fast path leaves task %s to the general path (line %s)", basics.task_id, where.lineno)
        return None
    except Exception:  # a surprise is a bug of the fast path: the general path still decides, but it is said
        log.warning("sync fast path failed on task %s; the general path takes it", basics.task_id, exc_info=True)
        return None


def _fast_fields(basics: TaskBasics, controls: Mapping[str, str], new_id: LabelIds) -> TaskFields:
    width, height = basics.width, basics.height
    ai_groups: _Groups = {}
    chosen: dict[str, Mapping[str, Any]] = {}
    for prediction in basics.predictions:
        version = str(prediction.get("model_version") or "")
        score = prediction.get("score")
        default = float(score) if isinstance(score, (int, float)) else None
        results = prediction.get("result") or []
        groups, _, _ = _fast_read(results, width, height, version or None, default, False, new_id)
        for control, group in groups.items():
            ai_groups[control] = group
            chosen[control] = prediction

    annotation = basics.annotation
    expert_groups: _Groups = {}
    review_state, review_comment, expert_source = UNREVIEWED, None, None
    if annotation is not None:
        user = annotation.get("completed_by")
        user_id = user.get("id") if isinstance(user, Mapping) else user
        source = expert_source_of(user_id if user_id is not None else "unknown")
        results = annotation.get("result") or []
        expert_groups, review_comment, review = _fast_read(results, width, height, source, None, True, new_id)
        review_state = review or ANNOTATED
        expert_source = source if expert_groups else None

    unknown: list[UnknownLabel] = []
    flags = {}
    for prefix, groups in (("ai", ai_groups), ("expert", expert_groups)):
        found = [
            UnknownLabel(basics.task_id, f"{prefix}_{control}", document["label"])
            for control, (_, documents) in groups.items()
            for document in documents
            if UNKNOWN_ATTRIBUTE in document
        ]
        unknown += found
        flags[prefix] = bool(found)
    ai = _fast_documents("ai", ai_groups, controls)
    ai["ai_model_versions"] = model_versions(chosen)
    expert = _fast_documents("expert", expert_groups, controls)
    expert.update(expert_extras(annotation, review_state, review_comment, expert_source))
    return assembled_fields(basics, ai, expert, unknown, flags["ai"], flags["expert"], [])


def _fast_documents(prefix: str, groups: _Groups, controls: Mapping[str, str]) -> dict[str, Any]:
    """As :func:`_fo_documents`: ``<prefix>_<control>`` -> the label field's document (None without labels)."""
    out: dict[str, Any] = {f"{prefix}_{control}": None for control in controls}
    for control, (kind, documents) in groups.items():
        if kind == _MIXED or (controls.get(control) or kind) != kind:
            raise _FallbackError
        if kind == "detections":
            out[f"{prefix}_{control}"] = {"_cls": "Detections", "detections": documents}
        elif kind == "polylines":
            out[f"{prefix}_{control}"] = {"_cls": "Polylines", "polylines": documents}
        elif len(documents) == 1:
            out[f"{prefix}_{control}"] = documents[0]
        else:
            raise _FallbackError
    return out


def _fast_read(
    results: Any,
    width: int,
    height: int,
    source: str | None,
    default_score: float | None,
    expert: bool,
    new_id: LabelIds,
) -> tuple[_Groups, str | None, str | None]:
    """One prediction's or annotation's ``result`` as label documents per control, as ``from_labelstudio`` reads it.

    Returns the groups, the task-level comment and (``expert``: the review choice, taken out of the
    labels as :func:`connectors.review.reviewed_sheet` does) the sheet's review. Raises
    :class:`_FallbackError` for anything the general path would read otherwise or report.
    """
    if type(results) is not list:
        raise _FallbackError
    # 1. The checks of from_labelstudio's _check_item and image size (the size must be the task's), and
    # the regions by id.
    to_name = None
    regions: dict[str | int, list[Any]] = {}  # region key -> [attributes from per-region results, comment]
    for i, item in enumerate(results):
        if type(item) is not dict:
            raise _FallbackError
        kind, from_name = item.get("type"), item.get("from_name")
        if (
            kind not in _FAST_TYPES
            or type(from_name) is not str
            or not from_name
            or type(item.get("value")) is not dict
        ):
            raise _FallbackError
        if "to_name" in item:
            target = item["to_name"]
            if type(target) is not str or not target or (to_name is not None and target != to_name):
                raise _FallbackError
            to_name = target
        if "id" in item and (type(item["id"]) is not str or not item["id"]):
            raise _FallbackError
        rotation = item.get("image_rotation", 0)
        if type(rotation) not in _NUMBERS or rotation % 360 != 0 or item.get("item_index") not in (None, 0):
            raise _FallbackError
        is_region = kind in _FAST_REGIONS
        if "original_width" in item:
            if type(item["original_width"]) is not int or item["original_width"] != width:
                raise _FallbackError
        elif is_region:
            raise _FallbackError
        if "original_height" in item:
            if type(item["original_height"]) is not int or item["original_height"] != height:
                raise _FallbackError
        elif is_region:
            raise _FallbackError
        if is_region:
            region_key = item.get("id", i)  # an id-less region by its index: an int, never equal to a str id
            if region_key in regions:
                raise _FallbackError
            regions[region_key] = [{}, None]

    # 2. Per-region choices and texts onto their regions; task-level choices and the sheet comment.
    comment = comment_from = None
    task_level: set[int] = set()
    for i, item in enumerate(results):
        kind = item["type"]
        if kind in _FAST_REGIONS:
            continue
        value = item["value"]
        key = item.get("id")
        region = regions.get(key) if key is not None else None
        if region is None and not GEOMETRY_KEYS.isdisjoint(value):
            raise _FallbackError
        if kind == "choices":
            choices = value.get("choices")
            if type(choices) is not list or not all(type(choice) is str for choice in choices):
                raise _FallbackError
            if region is None:
                task_level.add(i)
            elif item["from_name"] in region[0] or item["from_name"] in RESERVED_ATTRIBUTES:
                raise _FallbackError
            else:
                region[0][item["from_name"]] = tuple(choices)
            continue
        text = value.get("text")
        if type(text) is list and text and all(type(t) is str for t in text):
            text = "\n".join(text)
        elif type(text) is not str:
            raise _FallbackError
        if region is None:
            if comment_from is not None:
                raise _FallbackError
            comment, comment_from = text, item["from_name"]
        elif region[1] is not None:
            raise _FallbackError
        else:
            region[1] = text
            region[0][TEXTAREA_ATTRIBUTE] = (item["from_name"],)

    # 3. The labels in result order, each as label_documents writes it.
    groups: _Groups = {}
    review = None
    for i, item in enumerate(results):
        kind = item["type"]
        control = item["from_name"]
        if kind in _FAST_REGIONS:
            key = item.get("id")
            attributes, region_comment = regions[i if key is None else key]
            value = item["value"]
            names = value.get(kind)
            if type(names) is not list or len(names) != 1 or type(names[0]) is not str or not names[0]:
                raise _FallbackError
            label = names[0]
            origin = item.get("origin")
            if origin is not None:
                if type(origin) is not str:
                    raise _FallbackError
                attributes = {ORIGIN_ATTRIBUTE: (origin,), **attributes}
            score = _fast_score(item, default_score)
            if expert:
                verdict = attributes.get(VERDICT_CONTROL)
                state = expert_state(verdict[0] if verdict else None, origin, classification=False).value
            else:
                state = _PREDICTED
            document = _fast_geometry(value, kind, width, height, new_id())
            document.update(
                label=label,
                confidence=score,
                source=source,
                state=state,
                comment=region_comment,
                region_id=key,
                control=control,
                region_choices={name: list(values) for name, values in attributes.items()} if attributes else {},
            )
            field_kind = _FAST_REGIONS[kind]
        elif i in task_level:
            origin = item.get("origin")
            if origin is not None and type(origin) is not str:
                raise _FallbackError
            for label in item["value"]["choices"]:
                if not label:
                    raise _FallbackError
                score = _fast_score(item, default_score)
                if expert and control == REVIEW_CONTROL:
                    review = label
                    continue
                state = expert_state(None, origin, classification=True).value if expert else _PREDICTED
                document = {
                    "_id": new_id(),
                    "_cls": "Classification",
                    "tags": [],
                    "label": label,
                    "confidence": score,
                    "source": source,
                    "state": state,
                    "comment": None,
                    "region_id": item.get("id"),
                    "control": control,
                    "region_choices": {ORIGIN_ATTRIBUTE: [origin]} if origin is not None else {},
                }
                _fast_add(groups, control, "classification", document)
            continue
        else:
            continue
        _fast_add(groups, control, field_kind, document)
    return groups, comment, review


def _fast_score(item: Mapping[str, Any], default: float | None) -> float | None:
    """The region's score, else the record's, checked as a label's score is."""
    score = item.get("score")
    if score is None:
        score = default
    elif type(score) in _NUMBERS:
        score = float(score)
    else:
        raise _FallbackError
    if score is not None and not 0.0 <= score <= 1.0:  # NaN fails it too
        raise _FallbackError
    return score


def _fast_geometry(value: Mapping[str, Any], kind: str, width: int, height: int, label_id: ObjectId) -> dict[str, Any]:
    """A region's document up to its geometry, computed as ``from_labelstudio`` then ``label_documents`` do."""
    if kind == "rectanglelabels":
        x, y, w, h, rotation = value["x"], value["y"], value["width"], value["height"], value.get("rotation", 0.0)
        if not (
            type(x) in _NUMBERS
            and type(y) in _NUMBERS
            and type(w) in _NUMBERS
            and type(h) in _NUMBERS
            and type(rotation) in _NUMBERS
        ):
            raise _FallbackError
        x, y, w, h = x / 100.0 * width, y / 100.0 * height, w / 100.0 * width, h / 100.0 * height
        # One test for all four: a sum is finite only if each term is (an overflow just falls back).
        if not (math.isfinite(x + y + w + h) and math.isfinite(rotation)) or w < 0 or h < 0:
            raise _FallbackError
        return {
            "_id": label_id,
            "_cls": "Detection",
            "attributes": {},
            "tags": [],
            "bounding_box": [x / width, y / height, w / width, h / height],
            "rotation": float(rotation),
        }
    if value.get("closed", True) is not True:
        raise _FallbackError
    points = value.get("points")
    if type(points) is not list or len(points) < 3:
        raise _FallbackError
    pixels = []
    for point in points:
        if type(point) is not list or len(point) != 2:
            raise _FallbackError
        px, py = point
        if type(px) not in _NUMBERS or type(py) not in _NUMBERS:
            raise _FallbackError
        px, py = px / 100.0 * width, py / 100.0 * height
        if not math.isfinite(px + py):
            raise _FallbackError
        pixels.append([px / width, py / height])
    return {
        "_id": label_id,
        "_cls": "Polyline",
        "attributes": {},
        "tags": [],
        "points": [pixels],
        "closed": True,
        "filled": True,
    }


def _fast_add(groups: _Groups, control: str, kind: str, document: dict[str, Any]) -> None:
    """Add a label's document to its control's group: without a None confidence, flagged when off the taxonomy."""
    if document["confidence"] is None:
        del document["confidence"]  # FiftyOne leaves a None confidence out; the other keys keep their order
    if not resolves(control, document["label"]):
        document[UNKNOWN_ATTRIBUTE] = True
    group = groups.get(control)
    if group is None:
        groups[control] = (kind, [document])
    elif group[0] != kind:
        # Left to the general path if used: a newer prediction may fill the control instead.
        groups[control] = (_MIXED, [*group[1], document])
    else:
        group[1].append(document)
