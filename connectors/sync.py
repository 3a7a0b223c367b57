"""Label Studio -> FiftyOne: one dataset per review project, one sample per task, kept in step.

Each sample carries its task id (``ls_task_id``, unique index), the image under the document root,
the task's Darwin Core record as string fields, ``ai_<control>`` labels from predictions and
``expert_<control>`` labels from the newest annotation, each label with its ``source``
(``name@version`` or ``expert:<id>``), ``state``, per-region choices (the verdict), ``comment``
and ``confidence``, built by :mod:`herbarium.labels.fiftyone` from :mod:`connectors.review`'s rules.

What Label Studio 1.23.2 does to ``task.updated_at`` (measured): creating, updating or deleting an
annotation bumps it, and so do creating or deleting a prediction through the API; bulk
``import_predictions`` does not, and deleting a task leaves no trace. So a sync:

1. reads the project's counters (``task_number``, ``total_predictions_number``) and the newest
   ``updated_at`` (the *mark*);
2. fetches, in id order and ``batch_size`` at a time, the tasks updated after the cursor (all tasks
   on the first or a ``full`` sync), the next page requested while this one is written, and writes
   each batch at once (new tasks in one bulk insert, ``set_values`` keyed by ``ls_task_id`` for
   changed ones, only the groups of fields whose source changed: predictions, annotation, task
   data). When the dataset holds under half of a project of at least 1,000 tasks and no cursor
   applies (a first sync, mostly), the tasks come from Label Studio's snapshot JSON export instead,
   one export per id range, the next one prepared while this one is written: serializing a task
   for an export costs Label Studio about half what its task list does. Up to 20,000 predictions
   come first from the prediction list in one request and the exports carry their ids only (Label
   Studio's own time down 14%); a task changed after the mark, or naming a prediction the list
   lacks, is read again from the task list;
3. when the counters do not add up (a task deleted, predictions imported in bulk), lists every
   task's id, ``updated_at`` and counts (ids only, no results), removes the samples whose task is
   gone and fetches the tasks whose signature differs;
4. moves the cursor to the mark in ``dataset.info`` only once everything is written.

New samples skip FiftyOne's ``Sample`` objects: each label field's document is built as a dict
(:func:`label_documents`, held equal to ``as_fiftyone(...).to_dict()`` by a test) and the samples
go in through the dataset's own collection (``insert_many``), after their fields are declared
through the public API; FiftyOne 1.22.1 is pinned, and the integration tests read the result back
through the public API. Building ``fo.Detection`` objects and ``add_samples`` took most of a first
sync's time (61 s for 2,000 tasks x 40 boxes, about 12 times Label Studio's export). A new task's
documents are read straight from the JSON when its results are plain boxes, polygons, choices and
texts (:func:`_fast_task_fields`, held equal to the general path on generated tasks by a test), and
Python's cyclic garbage collector is paused while a sync runs: the two halved a first sync's own
CPU time, which on 2 cores competes with Label Studio's.

A kill or a Label Studio outage leaves committed batches in place and the cursor where it was; the
next sync fetches the same window again, skips the tasks whose stored signature already matches,
and writes the rest: nothing is duplicated (the unique index) and nothing is lost (the cursor).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import itertools
import json
import logging
import math
import os
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bson import ObjectId

from connectors.label_config import (
    COMMENT_CONTROL,
    IMAGE_KEY,
    REGION_COMMENT_CONTROL,
    REVIEW_CONTROL,
    VERDICT_CONTROL,
)
from connectors.review import expert_state, model_sources, prediction_labels, reviewed_sheet
from herbarium.labels import BoxLabel, Label, LabelError, LabelState, MaskLabel, PolygonLabel, SpecimenLabels
from herbarium.labels import expert_source as expert_source_of
from herbarium.labels.fiftyone import as_fiftyone
from herbarium.labels.labelstudio import (
    GEOMETRY_KEYS,
    ORIGIN_ATTRIBUTE,
    RESERVED_ATTRIBUTES,
    TEXTAREA_ATTRIBUTE,
    task_image_size,
)
from herbarium.labels.local_files import LocalFilesError, local_file
from herbarium.taxonomy import PLANT, LabelSet, UnknownLabelError, label_set

if TYPE_CHECKING:
    import fiftyone as fo

INFO_KEY = "plantai_sync"
DEFAULT_BATCH_SIZE = 250
UNKNOWN_ATTRIBUTE = "taxonomy_unknown"
UNREVIEWED, ANNOTATED = "unreviewed", "annotated"

# Label Studio control tag -> the FiftyOne field kind its labels become.
_TAG_KINDS = {
    "rectanglelabels": "detections",
    "brushlabels": "detections",
    "polygonlabels": "polylines",
    "choices": "classification",
}
_NOT_LABEL_CONTROLS = frozenset({VERDICT_CONTROL, REGION_COMMENT_CONTROL, REVIEW_CONTROL, COMMENT_CONTROL})
# Control names whose label set is not their own name.
_CONTROL_SETS: Mapping[str, LabelSet] = {"plant_mask": PLANT, "plant_outline": PLANT}
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Sample fields FiftyOne or the sync owns: a task data key with one of these names is not copied.
_RESERVED_FIELDS = frozenset({"id", "filepath", "tags", "metadata", "media_type", "created_at", "last_modified_at"})
_OWN_PREFIXES = ("ls_", "ai_", "expert_", "review_", "_")
_LISTING_FIELDS = "id,updated_at,total_annotations,total_predictions"
_LISTING_PAGE = 5000
_SNAPSHOT_MIN_TASKS = 1000  # a first sync of at least this many new tasks reads snapshot exports, not pages
_SNAPSHOT_CHUNK = 2500  # task ids per snapshot export (at most)
_SNAPSHOT_CHUNK_MIN = 500
_PREDICTION_LIST_MAX = 20_000  # a first sync holds them all (about 22 kB each with 20 regions): bounded
_EXPORT_TIMEOUT = 600
_SELECT_BATCH = 500  # task ids per Data Manager request; keeps the URL far below Label Studio's 16 KiB limit

log = logging.getLogger(__name__)


class SyncError(RuntimeError):
    """A sync that could not finish; what was written stays, and the next sync completes the job."""

    def __init__(self, message: str, report: SyncReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class UnknownLabel:
    """A label no PlantAI label set resolves for its control: kept on the sample, flagged, reported."""

    task_id: int
    field: str
    label: str


@dataclass
class SyncReport:
    """What one sync did."""

    project_id: int
    dataset: str
    full: bool = False
    since: str | None = None  # the cursor this sync started from (None: every task was read)
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    fetched: int = 0
    labels: Counter[str] = field(default_factory=Counter)  # labels written per field
    unknown_labels: list[UnknownLabel] = field(default_factory=list)
    unresolved_images: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (task id, why its labels were not read)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "dataset": self.dataset,
            "full": self.full,
            "since": self.since,
            "added": self.added,
            "updated": self.updated,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "fetched": self.fetched,
            "labels": dict(sorted(self.labels.items())),
            "unknown_labels": [vars(u) for u in self.unknown_labels],
            "unresolved_images": [{"task_id": t, "image": i} for t, i in self.unresolved_images],
            "errors": [{"task_id": t, "error": e} for t, e in self.errors],
            "seconds": round(self.seconds, 3),
        }


Progress = Callable[[int, int], None]  # (tasks done, tasks to do) after each committed batch


# ---------------------------------------------------------------------------------------------
# Pure parts: what a task becomes


def label_controls(label_config: str) -> dict[str, str]:
    """Control name -> field kind (``detections``, ``polylines``, ``classification``) of a label config.

    Per-region controls (the verdict), the sheet review and the comment boxes are not label fields.
    """
    root = ET.fromstring(label_config)
    controls: dict[str, str] = {}
    for element in root.iter():
        kind = _TAG_KINDS.get(element.tag.lower())
        name = element.get("name")
        if kind is None or not name or name in _NOT_LABEL_CONTROLS:
            continue
        if kind == "classification" and element.get("perRegion", "false").lower() == "true":
            continue
        controls[name] = kind
    return controls


def control_label_set(control: str | None) -> LabelSet | None:
    """The PlantAI label set a control's labels belong to, or None when the taxonomy has none."""
    if control is None:
        return None
    if control in _CONTROL_SETS:
        return _CONTROL_SETS[control]
    try:
        return label_set(control)
    except UnknownLabelError:
        return None


def in_taxonomy(label: Label) -> bool:
    """True when the label's name resolves (canonical or alias) in its control's label set."""
    return _resolves(label.control, label.label)


@functools.lru_cache(maxsize=4096)
def _resolves(control: str | None, name: str) -> bool:
    labels = control_label_set(control)
    if labels is None:
        return False
    try:
        labels.resolve(name)
    except UnknownLabelError:
        return False
    return True


def image_path(url: str, document_root: Path | None) -> Path | None:
    """The local file behind a ``/data/local-files/?d=...`` URL under ``document_root``, if it is one."""
    if document_root is None:
        return None
    try:
        return local_file(url, document_root)
    except LocalFilesError:
        return None  # not a file Label Studio would serve either


def task_record(data: Mapping[str, Any], image_key: str = IMAGE_KEY) -> dict[str, str]:
    """The task data's string values usable as sample fields (the Darwin Core record), image aside."""
    return {
        key: value
        for key, value in data.items()
        if key != image_key
        and isinstance(value, str)
        and _FIELD_NAME.match(key)
        and key not in _RESERVED_FIELDS
        and not key.startswith(_OWN_PREFIXES)
    }


def task_signature(task: Mapping[str, Any]) -> str:
    """What says a task changed: ``updated_at`` and its annotation and prediction counts."""
    return f"{task.get('updated_at')}|{task.get('total_annotations')}|{task.get('total_predictions')}"


def newest_annotation(annotations: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The annotation that speaks for the experts: the newest ``updated_at`` (then highest id); skips ignored."""
    usable = [a for a in annotations if not a.get("was_cancelled")]
    if not usable:
        return None
    return max(usable, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), int(a.get("id") or 0)))


def _digest(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _file_size(path: Path | None) -> tuple[int, int] | None:
    if path is None or not path.is_file():
        return None
    from herbarium.imaging import oriented_size

    try:
        width, height = oriented_size(path)
    except Exception:  # an unreadable file leaves the size unknown; it is not fatal
        return None
    return int(width), int(height)


@dataclass
class TaskFields:
    """One task as sample fields, in groups that change independently."""

    task_id: int
    signature: str
    filepath: str
    image_size: tuple[int, int] | None
    data: dict[str, Any]  # record fields, filepath-independent bookkeeping
    data_signature: str
    ai: dict[str, Any] | None  # field -> FiftyOne label (None: no label); None when not built
    ai_signature: str
    expert: dict[str, Any] | None
    expert_signature: str
    unknown: list[UnknownLabel]
    ai_unknown: bool
    expert_unknown: bool
    unresolved_image: str | None
    errors: list[str]


@dataclass
class _TaskBasics:
    """What a task's fields need besides its labels: image, record, signatures, the records to read."""

    task_id: int
    signature: str
    filepath: str
    size: tuple[int, int] | None
    width: int
    height: int
    unresolved: str | None
    record: dict[str, str]
    data_signature: str
    predictions: list[Mapping[str, Any]]  # oldest first
    ai_signature: str
    annotation: Mapping[str, Any] | None
    expert_signature: str


def _task_basics(task: Mapping[str, Any], document_root: Path | None) -> _TaskBasics:
    data = task.get("data") or {}
    url = str(data.get(IMAGE_KEY) or "")
    path = image_path(url, document_root)
    size = task_image_size(task) or _file_size(path)
    width, height = size if size is not None else (1, 1)  # no region to place: any size serves classifications
    predictions = [p for p in task.get("predictions") or () if isinstance(p, Mapping)]
    annotation = newest_annotation([a for a in task.get("annotations") or () if isinstance(a, Mapping)])
    record = task_record(data)
    filepath = str(path) if path is not None else (url if url.startswith("/") else "/" + url)
    return _TaskBasics(
        task_id=int(task["id"]),
        signature=task_signature(task),
        filepath=filepath,
        size=size,
        width=width,
        height=height,
        unresolved=None if path is not None and path.is_file() else url,
        record=record,
        data_signature=_digest([filepath, size, record]),
        predictions=sorted(predictions, key=lambda p: (str(p.get("updated_at") or ""), int(p.get("id") or 0))),
        ai_signature=_digest(sorted((p.get("id"), p.get("updated_at"), p.get("model_version")) for p in predictions)),
        annotation=annotation,
        expert_signature=_digest([annotation.get("id"), annotation.get("updated_at")] if annotation else None),
    )


def task_fields(
    task: Mapping[str, Any],
    controls: Mapping[str, str],
    document_root: Path | None,
    *,
    build_ai: bool = True,
    build_expert: bool = True,
    as_documents: bool = False,
) -> TaskFields:
    """Everything a sample holds for ``task`` (a Label Studio task with its annotations and predictions).

    ``build_ai``/``build_expert`` False skip building the FiftyOne labels of that group (its
    signature and unknown-label flags are still computed). ``as_documents``: each label field's
    value is the FiftyOne document as a dict (what ``label.to_dict()`` gives, ready for the
    database; see :func:`label_documents`) instead of a FiftyOne label object.
    """
    basics = _task_basics(task, document_root)
    return _task_fields(basics, controls, build_ai=build_ai, build_expert=build_expert, as_documents=as_documents)


def _task_fields(
    basics: _TaskBasics, controls: Mapping[str, str], *, build_ai: bool, build_expert: bool, as_documents: bool
) -> TaskFields:
    task_id, width, height = basics.task_id, basics.width, basics.height
    errors: list[str] = []
    ai_labels: dict[str, list[Label]] = defaultdict(list)
    chosen: dict[str, Mapping[str, Any]] = {}
    # Per control, the newest prediction that fills it speaks for the models.
    for prediction in basics.predictions:
        try:
            specimen = prediction_labels(prediction, width, height)
        except LabelError as error:
            errors.append(f"prediction {prediction.get('id')}: {error}")
            continue
        grouped = _by_control(specimen.labels)
        for control, labels in grouped.items():
            ai_labels[control] = labels
            chosen[control] = prediction

    annotation = basics.annotation
    expert_labels: dict[str, list[Label]] = {}
    review_state, review_comment, expert_source = UNREVIEWED, None, None
    if annotation is not None:
        review_state = ANNOTATED
        try:
            sheet = reviewed_sheet(annotation, width, height)
            expert_labels = _by_control(sheet.labels.labels)
            review_state = sheet.review or ANNOTATED
            review_comment = sheet.labels.comment
            expert_source = next((label.source for label in sheet.labels.labels), None)
        except LabelError as error:
            errors.append(f"annotation {annotation.get('id')}: {error}")

    unknown: list[UnknownLabel] = []
    flags = {}
    for prefix, groups in (("ai", ai_labels), ("expert", expert_labels)):
        found = [
            UnknownLabel(task_id, f"{prefix}_{control}", label.label)
            for control, labels in groups.items()
            for label in labels
            if not in_taxonomy(label)
        ]
        unknown += found
        flags[prefix] = bool(found)

    convert = _fo_documents if as_documents else _fo_fields
    ai = convert("ai", ai_labels, controls, width, height, errors) if build_ai else None
    expert = convert("expert", expert_labels, controls, width, height, errors) if build_expert else None
    if expert is not None:
        expert.update(_expert_extras(annotation, review_state, review_comment, expert_source))
    if ai is not None:
        ai["ai_model_versions"] = _model_versions(chosen)
    return _fields(basics, ai, expert, unknown, flags["ai"], flags["expert"], errors)


def _model_versions(chosen: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return sorted({src for p in chosen.values() for src in model_sources(str(p.get("model_version") or ""))})


def _expert_extras(
    annotation: Mapping[str, Any] | None, review_state: str, review_comment: str | None, expert_source: str | None
) -> dict[str, Any]:
    return {
        "review_state": review_state,
        "review_comment": review_comment,
        "expert_annotation_id": int(annotation["id"]) if annotation and annotation.get("id") is not None else None,
        "expert_updated_at": str(annotation.get("updated_at")) if annotation and annotation.get("updated_at") else None,
        "expert_source": expert_source,
    }


def _fields(
    basics: _TaskBasics,
    ai: dict[str, Any] | None,
    expert: dict[str, Any] | None,
    unknown: list[UnknownLabel],
    ai_unknown: bool,
    expert_unknown: bool,
    errors: list[str],
) -> TaskFields:
    return TaskFields(
        task_id=basics.task_id,
        signature=basics.signature,
        filepath=basics.filepath,
        image_size=basics.size,
        data=basics.record,
        data_signature=basics.data_signature,
        ai=ai,
        ai_signature=basics.ai_signature,
        expert=expert,
        expert_signature=basics.expert_signature,
        unknown=unknown,
        ai_unknown=ai_unknown,
        expert_unknown=expert_unknown,
        unresolved_image=basics.unresolved,
        errors=errors,
    )


def _by_control(labels: Sequence[Label]) -> dict[str, list[Label]]:
    grouped: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        grouped[label.control or "label"].append(label)
    return dict(grouped)


def _kind_of(labels: Sequence[Label]) -> str:
    if all(isinstance(label, (BoxLabel, MaskLabel)) for label in labels):
        return "detections"
    if all(isinstance(label, PolygonLabel) for label in labels):
        return "polylines"
    return "classification"


def _groups_of_declared_kind(
    prefix: str, groups: Mapping[str, list[Label]], controls: Mapping[str, str], errors: list[str]
) -> Iterator[tuple[str, str, list[Label]]]:
    """(control, kind, labels) for each group whose labels are of the kind the config declares; others noted."""
    for control, labels in groups.items():
        kind = controls.get(control) or _kind_of(labels)
        if kind != _kind_of(labels):
            errors.append(f"{prefix}_{control}: labels of another kind than the {kind} the config declares")
            continue
        yield control, kind, labels


def _fo_fields(
    prefix: str,
    groups: Mapping[str, list[Label]],
    controls: Mapping[str, str],
    width: int,
    height: int,
    errors: list[str],
) -> dict[str, Any]:
    """``<prefix>_<control>`` -> FiftyOne label (None for every config control without labels)."""
    out: dict[str, Any] = {f"{prefix}_{control}": None for control in controls}
    for control, kind, labels in _groups_of_declared_kind(prefix, groups, controls, errors):
        try:
            converted = as_fiftyone(SpecimenLabels(width=width, height=height, labels=list(labels)))
        except LabelError as error:
            errors.append(f"{prefix}_{control}: {error}")
            continue
        value: Any
        if kind == "detections":
            value, fo_labels = converted.detections, converted.detections.detections
        elif kind == "polylines":
            value, fo_labels = converted.polylines, converted.polylines.polylines
        else:
            value = converted.classifications[control]
            fo_labels = [value]
        for label, fo_label in zip(labels, fo_labels, strict=True):
            if not in_taxonomy(label):
                fo_label[UNKNOWN_ATTRIBUTE] = True
        out[f"{prefix}_{control}"] = value
    return out


def _fo_documents(
    prefix: str,
    groups: Mapping[str, list[Label]],
    controls: Mapping[str, str],
    width: int,
    height: int,
    errors: list[str],
) -> dict[str, Any]:
    """As :func:`_fo_fields`, each value the label's FiftyOne document (a dict) rather than the object."""
    out: dict[str, Any] = {f"{prefix}_{control}": None for control in controls}
    for control, kind, labels in _groups_of_declared_kind(prefix, groups, controls, errors):
        try:
            out[f"{prefix}_{control}"] = label_documents(kind, control, labels, width, height)
        except LabelError as error:
            errors.append(f"{prefix}_{control}: {error}")
    return out


def label_documents(kind: str, control: str, labels: Sequence[Label], width: int, height: int) -> dict[str, Any]:
    """The FiftyOne document (``Detections``, ``Polylines`` or ``Classification`` as a dict) of one control's labels.

    The very document :func:`herbarium.labels.fiftyone.as_fiftyone` builds, with the same custom
    attributes and the ``taxonomy_unknown`` flag of :func:`_fo_fields`, as ``to_dict()`` gives it
    (new label ids included), but without building FiftyOne objects for boxes, polygons and
    classifications: building 400,000 ``fo.Detection`` objects takes minutes on a small machine.
    Masks go through ``as_fiftyone`` itself (their encoding is FiftyOne's). A test holds the two
    equal for every kind.
    """
    if any(isinstance(label, MaskLabel) for label in labels):
        converted = as_fiftyone(SpecimenLabels(width=width, height=height, labels=list(labels)))
        value = converted.detections
        for label, fo_label in zip(labels, value.detections, strict=True):
            if not in_taxonomy(label):
                fo_label[UNKNOWN_ATTRIBUTE] = True
        documents: dict[str, Any] = value.to_dict()
        return documents
    if kind == "classification":
        if len(labels) > 1:
            raise LabelError(f"control: {control!r} has several values; a FiftyOne Classification holds one")
        [label] = labels
        if label.control is None:
            raise LabelError(f"control: classification {label.label!r} needs a control to name its field")
        return _label_document(label, {"_id": ObjectId(), "_cls": "Classification", "tags": []})
    items = []
    for label in labels:
        document: dict[str, Any] = {"_id": ObjectId()}
        if isinstance(label, BoxLabel):
            document.update(
                _cls="Detection",
                attributes={},
                tags=[],
                bounding_box=[label.x / width, label.y / height, label.width / width, label.height / height],
                rotation=label.rotation,
            )
        elif isinstance(label, PolygonLabel):
            document.update(
                _cls="Polyline",
                attributes={},
                tags=[],
                points=[[[px / width, py / height] for px, py in label.points]],
                closed=True,
                filled=True,
            )
        else:
            raise LabelError(f"{control}: a {type(label).__name__} is not a {kind} label")
        items.append(_label_document(label, document))
    if kind == "detections":
        return {"_cls": "Detections", "detections": items}
    return {"_cls": "Polylines", "polylines": items}


def _label_document(label: Label, document: dict[str, Any]) -> dict[str, Any]:
    """Label name, confidence and the custom attributes ``as_fiftyone`` writes (FiftyOne drops a None confidence)."""
    document["label"] = label.label
    if label.score is not None:
        document["confidence"] = label.score
    document.update(
        source=label.source,
        state=label.state.value,
        comment=label.comment,
        region_id=label.region_id,
        control=label.control,
        region_choices={key: list(values) for key, values in label.attributes.items()},
    )
    if not in_taxonomy(label):
        document[UNKNOWN_ATTRIBUTE] = True
    return document


def label_count(value: Any) -> int:
    """How many labels a FiftyOne label field value (an object or its document) holds."""
    if value is None:
        return 0
    if isinstance(value, Mapping):
        for attr in ("detections", "polylines"):
            if attr in value:
                return len(value[attr])
        return 1
    for attr in ("detections", "polylines"):
        if hasattr(value, attr):
            return len(getattr(value, attr))
    return 1


# ---------------------------------------------------------------------------------------------
# Fast path for new samples: Label Studio JSON straight to FiftyOne documents


class _FallbackError(Exception):
    """Input the fast path leaves to the general one: brush masks, and anything the general path reports."""


_FAST_REGIONS = {"rectanglelabels": "detections", "polygonlabels": "polylines"}
_FAST_TYPES = frozenset({*_FAST_REGIONS, "choices", "textarea"})
_SIZE_KEYS = ("original_width", "original_height")
_NUMBERS = (int, float)  # exactly: a bool is not a coordinate
_PREDICTED = LabelState.PREDICTED.value
_MIXED = "mixed"  # a control with labels of several kinds
# Control -> (field kind, documents of its labels), in the order the labels come.
_Groups = dict[str, tuple[str, list[dict[str, Any]]]]


class _LabelIds:
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


def _fast_task_fields(basics: _TaskBasics, controls: Mapping[str, str], new_id: _LabelIds) -> TaskFields | None:
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
    except _FallbackError:
        return None  # expected: brush masks and inputs the general path reports
    except Exception:  # a surprise is a bug of the fast path: the general path still decides, but it is said
        log.warning("sync fast path failed on task %s; the general path takes it", basics.task_id, exc_info=True)
        return None


def _fast_fields(basics: _TaskBasics, controls: Mapping[str, str], new_id: _LabelIds) -> TaskFields:
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
    ai["ai_model_versions"] = _model_versions(chosen)
    expert = _fast_documents("expert", expert_groups, controls)
    expert.update(_expert_extras(annotation, review_state, review_comment, expert_source))
    return _fields(basics, ai, expert, unknown, flags["ai"], flags["expert"], [])


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
    new_id: _LabelIds,
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
    regions: dict[str, list[Any]] = {}  # region key -> [attributes from per-region results, comment]
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
            region_key = item.get("id")
            if region_key is None:
                region_key = f"\0{i}"
            elif region_key in regions:
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
            attributes, region_comment = regions[f"\0{i}" if key is None else key]
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
    if not _resolves(control, document["label"]):
        document[UNKNOWN_ATTRIBUTE] = True
    group = groups.get(control)
    if group is None:
        groups[control] = (kind, [document])
    elif group[0] != kind:
        # Left to the general path if used: a newer prediction may fill the control instead.
        groups[control] = (_MIXED, [*group[1], document])
    else:
        group[1].append(document)


# ---------------------------------------------------------------------------------------------
# Label Studio reads


class TaskReader:
    """Raw JSON reads through the SDK client's own HTTP client (auth and token refresh included)."""

    def __init__(self, client: Any, project_id: int) -> None:
        self.http = client._client_wrapper.httpx_client
        self.project_id = project_id
        self.url = str(client._client_wrapper.get_base_url())

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.call("GET", path, params=params)

    def call(
        self, method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None, raw: bool = False
    ) -> Any:
        import httpx

        try:
            response = self.http.request(path, method=method, params=dict(params or {}), json=body)
        except httpx.HTTPError as error:
            raise SyncError(f"Label Studio at {self.url} did not answer ({error})") from error
        if response.status_code >= 400:
            raise SyncError(
                f"Label Studio at {self.url} answered {response.status_code} to {path}: {response.text[:300]}"
            )
        if raw:
            return response.content
        return response.json() if response.content else None

    def id_range(self) -> tuple[int, int] | None:
        """The lowest and highest task id of the project (None: no task)."""
        low = self.tasks([], page_size=1, include="id").get("tasks") or []
        high = self.tasks([], page_size=1, include="id", query={"ordering": ["-tasks:id"]}).get("tasks") or []
        if not low or not high:
            return None
        return int(low[0]["id"]), int(high[0]["id"])

    def snapshots(self, chunk: int, mark: str | None, predictions: int) -> Iterator[list[Mapping[str, Any]]]:
        """Every task, full, through Label Studio's snapshot JSON export, ``chunk`` ids at a time, in id order.

        One export per id range (a Data Manager view filtered on the id), the next one prepared in
        a thread while the caller writes this one. Serializing tasks for an export costs Label
        Studio about half what the Data Manager's task list does, and the pipeline keeps both
        processes busy on a 2-core machine.

        ``predictions`` (the project's count) at most ``_PREDICTION_LIST_MAX``: they come first, all
        in one request to the prediction list, and the exports carry their ids only. An export
        serializes predictions with one query per task and encodes them in pure Python; the list
        took Label Studio about half that time (a first sync's Label Studio time down 14%,
        measured). A task changed after ``mark`` (the newest ``updated_at`` before the sync read
        anything), or naming a prediction the list lacks, is read again from the task list: what is
        stored always matches the signature stored with it.
        """
        from concurrent.futures import Future, ThreadPoolExecutor

        bounds = self.id_range()
        if bounds is None:
            return
        # Several exports when there are enough tasks: the first export (nothing to write yet) and the
        # last write (nothing left to export) are the parts that do not overlap.
        chunk = max(_SNAPSHOT_CHUNK_MIN, min(chunk, (bounds[1] - bounds[0]) // 8 + 1))
        starts = list(range(bounds[0] - 1, bounds[1], chunk))
        listed = mark is not None and 0 < predictions <= _PREDICTION_LIST_MAX
        by_id: dict[int, Mapping[str, Any]] = {}

        def job(start: int) -> list[Mapping[str, Any]]:  # runs in the one export thread, in order
            if listed and start == starts[0]:
                everything = self.get("api/predictions/", {"task__project": self.project_id}) or []
                by_id.update((int(p["id"]), p) for p in everything)
            tasks = self.snapshot(start, start + chunk, full_predictions=not listed)
            if listed:
                tasks = self._with_listed(tasks, by_id, str(mark))
            return sorted(tasks, key=lambda t: int(t["id"]))

        with ThreadPoolExecutor(1, thread_name_prefix="plantai-sync-export") as pool:
            pending: list[Future[list[Mapping[str, Any]]]] = []
            try:
                for k, start in enumerate(starts):
                    if not pending:
                        pending.append(pool.submit(job, start))
                    tasks = pending.pop(0).result()
                    if k + 1 < len(starts):
                        pending.append(pool.submit(job, starts[k + 1]))
                    yield tasks
            finally:
                for future in pending:
                    future.cancel()

    def _with_listed(
        self, tasks: list[Mapping[str, Any]], by_id: dict[int, Mapping[str, Any]], mark: str
    ) -> list[Mapping[str, Any]]:
        """Exported tasks with their listed predictions in place of the ids; the others read again in full."""
        out: list[Mapping[str, Any]] = []
        again: list[int] = []
        for task in tasks:
            ids = task.get("predictions") or []
            if _changed_after(task.get("updated_at"), mark) or not all(type(i) is int and i in by_id for i in ids):
                again.append(int(task["id"]))
            else:
                out.append({**task, "predictions": [by_id.pop(i) for i in ids]})
        for start in range(0, len(again), _SELECT_BATCH):
            out += self.selected(again[start : start + _SELECT_BATCH])
        return out

    def snapshot(self, after_id: int, up_to_id: int, full_predictions: bool = True) -> list[Mapping[str, Any]]:
        """Tasks with ``after_id < id <= up_to_id`` as the snapshot export gives them (predictions: full or ids)."""
        filters = [
            _filter("id", "greater", "Number", after_id),
            _filter("id", "less_or_equal", "Number", up_to_id),
        ]
        view = self.call(
            "POST",
            "api/dm/views",
            body={"project": self.project_id, "data": {"filters": {"conjunction": "and", "items": filters}}},
        )
        exports = f"api/projects/{self.project_id}/exports"
        try:
            export = self.call(
                "POST",
                exports,
                body={
                    "title": "plantai sync",
                    "serialization_options": {
                        "predictions": {"only_id": not full_predictions},
                        "drafts": {"only_id": True},
                        "annotations__completed_by": {"only_id": True},
                    },
                    "task_filter_options": {"view": view["id"]},
                },
            )
            try:
                deadline = time.monotonic() + _EXPORT_TIMEOUT
                while export.get("status") not in ("completed", "failed"):
                    if time.monotonic() > deadline:
                        raise SyncError(f"Label Studio export {export.get('id')} did not finish in {_EXPORT_TIMEOUT} s")
                    time.sleep(0.2)
                    export = self.get(f"{exports}/{export['id']}")
                if export.get("status") != "completed":
                    raise SyncError(f"Label Studio export {export.get('id')} failed: {export}")
                content = self.call("GET", f"{exports}/{export['id']}/download", {"exportType": "JSON"}, raw=True)
            finally:
                self.call("DELETE", f"{exports}/{export['id']}")
        finally:
            self.call("DELETE", f"api/dm/views/{view['id']}")
        tasks: list[Mapping[str, Any]] = json.loads(content)
        return tasks

    def project(self) -> Mapping[str, Any]:
        result: Mapping[str, Any] = self.get(f"api/projects/{self.project_id}")
        return result

    def tasks(self, filters: list[dict[str, Any]], *, page_size: int, fields: str | None = None, **extra: Any) -> Any:
        query: dict[str, Any] = {"filters": {"conjunction": "and", "items": filters}, "ordering": ["tasks:id"]}
        query.update(extra.pop("query", {}))
        params = {"project": self.project_id, "page": 1, "page_size": page_size, "query": json.dumps(query), **extra}
        if fields:
            params["fields"] = fields
        return self.get("api/tasks", params)

    def newest_update(self) -> str | None:
        page = self.tasks([], page_size=1, include="id,updated_at", query={"ordering": ["-tasks:updated_at"]})
        tasks = page.get("tasks") or []
        return str(tasks[0]["updated_at"]) if tasks else None

    def pages(self, since: str | None, page_size: int) -> Iterator[tuple[list[Mapping[str, Any]], int]]:
        """Full tasks updated after ``since`` in id order, a page at a time, with the total to fetch.

        The next page is requested (in a thread) as soon as a page arrives, so Label Studio
        serializes it while the caller writes this one; a failed request raises when its page is due.
        """
        from concurrent.futures import Future, ThreadPoolExecutor

        def fetch(last_id: int) -> Any:
            filters = [_filter("id", "greater", "Number", last_id)]
            if since is not None:
                filters.append(_filter("updated_at", "greater", "Datetime", since))
            return self.tasks(filters, page_size=page_size, fields="all")

        with ThreadPoolExecutor(1, thread_name_prefix="plantai-sync-fetch") as pool:
            pending: Future[Any] | None = pool.submit(fetch, 0)
            try:
                while pending is not None:
                    page = pending.result()
                    pending = None
                    tasks = page.get("tasks") or []
                    if len(tasks) >= page_size:
                        pending = pool.submit(fetch, max(int(t["id"]) for t in tasks))
                    if tasks:
                        yield tasks, int(page.get("total") or 0)
            finally:
                if pending is not None:
                    pending.cancel()

    def selected(self, ids: Sequence[int]) -> list[Mapping[str, Any]]:
        page = self.tasks(
            [], page_size=len(ids), fields="all", query={"selectedItems": {"all": False, "included": list(ids)}}
        )
        return list(page.get("tasks") or [])

    def listing(self) -> list[Mapping[str, Any]]:
        """Every task's id, ``updated_at`` and counts (no results), in id order."""
        out: list[Mapping[str, Any]] = []
        last_id = 0
        while True:
            page = self.tasks(
                [_filter("id", "greater", "Number", last_id)], page_size=_LISTING_PAGE, include=_LISTING_FIELDS
            )
            tasks = page.get("tasks") or []
            out += tasks
            if len(tasks) < _LISTING_PAGE:
                return out
            last_id = max(int(t["id"]) for t in tasks)


def _changed_after(updated_at: Any, mark: str) -> bool:
    """True unless ``updated_at`` is surely not later than ``mark`` (both Label Studio timestamps)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(updated_at)) > datetime.fromisoformat(mark)
    except (TypeError, ValueError):  # unreadable or not comparable: read the task again
        return True


def _filter(column: str, operator: str, kind: str, value: Any) -> dict[str, Any]:
    return {"filter": f"filter:tasks:{column}", "operator": operator, "type": kind, "value": value}


# ---------------------------------------------------------------------------------------------
# FiftyOne writes


def _label_type(kind: str) -> Any:
    import fiftyone as fo

    return {"detections": fo.Detections, "polylines": fo.Polylines, "classification": fo.Classification}[kind]


def _open_dataset(name: str, project_id: int, url: str) -> fo.Dataset:
    import fiftyone as fo

    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        bound = (dataset.info or {}).get(INFO_KEY, {}).get("project_id")
        if bound is not None and int(bound) != project_id:
            raise SyncError(f"dataset {name!r} holds Label Studio project {bound}, not {project_id}; name another")
    else:
        dataset = fo.Dataset(name, persistent=True)
    schema = dataset.get_field_schema()
    fixed = {
        "ls_task_id": fo.IntField,
        "ls_project_id": fo.IntField,
        "ls_signature": fo.StringField,
        "ls_data_signature": fo.StringField,
        "ls_ai_signature": fo.StringField,
        "ls_expert_signature": fo.StringField,
        "ls_updated_at": fo.StringField,
        "ls_total_predictions": fo.IntField,
        "review_state": fo.StringField,
        "review_comment": fo.StringField,
        "expert_annotation_id": fo.IntField,
        "expert_updated_at": fo.StringField,
        "expert_source": fo.StringField,
        "ai_taxonomy_unknown": fo.BooleanField,
        "expert_taxonomy_unknown": fo.BooleanField,
        UNKNOWN_ATTRIBUTE: fo.BooleanField,
    }
    for name_, kind in fixed.items():
        if name_ not in schema:
            dataset.add_sample_field(name_, kind)
    if "ai_model_versions" not in schema:
        dataset.add_sample_field("ai_model_versions", fo.ListField, subfield=fo.StringField)
    if "ls_task_id" not in dataset.list_indexes():
        dataset.create_index("ls_task_id", unique=True)
    info = dict(dataset.info or {})
    state = dict(info.get(INFO_KEY) or {})
    if not state:
        info[INFO_KEY] = {"project_id": project_id, "label_studio_url": url, "cursor": None}
        dataset.info = info
        dataset.save()
    return dataset


def _declare(dataset: fo.Dataset, fields: Mapping[str, Any]) -> None:
    """Add the sample fields a batch needs that the dataset does not have yet (values: objects or documents)."""
    import fiftyone as fo

    kinds = {"Detections": fo.Detections, "Polylines": fo.Polylines, "Classification": fo.Classification}
    schema = dataset.get_field_schema()
    for name, value in fields.items():
        if name in schema:
            continue
        if isinstance(value, str):
            dataset.add_sample_field(name, fo.StringField)
        elif isinstance(value, (fo.Detections, fo.Polylines, fo.Classification)):
            dataset.add_sample_field(name, fo.EmbeddedDocumentField, embedded_doc_type=type(value))
        elif isinstance(value, Mapping) and value.get("_cls") in kinds:
            dataset.add_sample_field(name, fo.EmbeddedDocumentField, embedded_doc_type=kinds[value["_cls"]])
        else:
            continue
        schema = dataset.get_field_schema()


def _first_values(documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Field -> its first non-None value across ``documents``."""
    first: dict[str, Any] = {}
    for document in documents:
        for name, value in document.items():
            if value is not None and name not in first:
                first[name] = value
    return first


def _metadata(size: tuple[int, int] | None, document: bool) -> Any:
    """The sample's ``ImageMetadata`` (as its document when ``document``), or None without a size."""
    import fiftyone as fo

    if size is None:
        return None
    if document:
        return {"_cls": "ImageMetadata", "width": size[0], "height": size[1]}
    return fo.ImageMetadata(width=size[0], height=size[1])


def _declare_controls(dataset: fo.Dataset, controls: Mapping[str, str]) -> None:
    import fiftyone as fo

    schema = dataset.get_field_schema()
    for control, kind in controls.items():
        for prefix in ("ai", "expert"):
            name = f"{prefix}_{control}"
            if name not in schema:
                dataset.add_sample_field(name, fo.EmbeddedDocumentField, embedded_doc_type=_label_type(kind))


@dataclass
class _Stored:
    signature: str | None
    data: str | None
    ai: str | None
    expert: str | None
    ai_unknown: bool
    expert_unknown: bool


def _stored(dataset: fo.Dataset) -> dict[int, _Stored]:
    columns = [
        "ls_task_id",
        "ls_signature",
        "ls_data_signature",
        "ls_ai_signature",
        "ls_expert_signature",
        "ai_taxonomy_unknown",
        "expert_taxonomy_unknown",
    ]
    values = dataset.values(columns)
    return {
        int(task_id): _Stored(sig, data, ai, expert, bool(ai_u), bool(ex_u))
        for task_id, sig, data, ai, expert, ai_u, ex_u in zip(*values, strict=True)
        if task_id is not None
    }


class _Writer:
    def __init__(
        self,
        dataset: fo.Dataset,
        project_id: int,
        controls: Mapping[str, str],
        document_root: Path | None,
        report: SyncReport,
        full: bool,
    ) -> None:
        self.dataset = dataset
        self.project_id = project_id
        self.controls = controls
        self.document_root = document_root
        self.report = report
        self.full = full
        self.stored = _stored(dataset)
        self.seen: set[int] = set()
        self.new_id = _LabelIds()

    def write(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        """Write one batch: new samples in one bulk insert, changes with one ``set_values`` per field."""
        new: list[dict[str, Any]] = []
        updates: dict[str, dict[int, Any]] = defaultdict(dict)
        report = self.report
        for task in tasks:
            task_id = int(task["id"])
            if task_id in self.seen:
                continue
            self.seen.add(task_id)
            report.fetched += 1
            before = self.stored.get(task_id)
            signature = task_signature(task)
            if before is None:
                basics = _task_basics(task, self.document_root)
                fields = _fast_task_fields(basics, self.controls, self.new_id) or _task_fields(
                    basics, self.controls, build_ai=True, build_expert=True, as_documents=True
                )
                self._note(fields, True, True)
                new.append(self._document(fields, self._values(fields, True, True, True, documents=True)))
                report.added += 1
            elif not self.full and before.signature == signature:
                report.unchanged += 1
                continue
            else:
                fields = task_fields(task, self.controls, self.document_root, build_ai=False, build_expert=False)
                change_ai = self.full or before.ai != fields.ai_signature
                change_expert = self.full or before.expert != fields.expert_signature
                change_data = self.full or before.data != fields.data_signature
                if change_ai or change_expert:
                    fields = task_fields(
                        task, self.controls, self.document_root, build_ai=change_ai, build_expert=change_expert
                    )
                self._note(fields, change_ai, change_expert)
                for name, value in self._values(fields, change_ai, change_expert, change_data).items():
                    updates[name][task_id] = value
                if change_ai or change_expert or change_data:
                    report.updated += 1
                else:
                    report.unchanged += 1
            self.stored[task_id] = _Stored(
                signature, fields.data_signature, fields.ai_signature, fields.expert_signature,
                fields.ai_unknown, fields.expert_unknown,
            )  # fmt: skip
        if new:
            self._insert(new)
        for name, by_task in updates.items():
            _declare(self.dataset, {name: next((v for v in by_task.values() if v is not None), None)})
            self.dataset.set_values(name, by_task, key_field="ls_task_id", progress=False)

    def _document(self, fields: TaskFields, values: Mapping[str, Any]) -> dict[str, Any]:
        """A new sample's database document, as ``add_samples`` writes it (None values left out)."""
        from fiftyone.core.odm.sample import _generate_rand

        document = {name: value for name, value in values.items() if value is not None}
        document.update(
            _id=ObjectId(),
            filepath=fields.filepath,
            tags=[],
            _media_type="image",
            _rand=_generate_rand(),
            ls_task_id=fields.task_id,
        )
        return document

    def _insert(self, documents: list[dict[str, Any]]) -> None:
        """Insert new samples' documents in bulk, after declaring every field they carry.

        The private fast path of ``add_samples`` (FiftyOne 1.22.1 is pinned): ``add_samples`` builds
        a ``Sample`` and a mongoengine document per sample and validates every label, most of a
        first sync's time. The documents hold what ``add_samples`` would write; the fields are
        declared through the public API first, so the dataset loads back as any other.
        """
        from datetime import datetime

        from pymongo.errors import BulkWriteError

        dataset = self.dataset
        if dataset.media_type is None:
            dataset.media_type = "image"
        _declare(dataset, _first_values(documents))
        now = datetime.now(UTC).replace(tzinfo=None)  # FiftyOne stores naive UTC
        dataset_id = dataset._doc.id
        for document in documents:
            document.update(_dataset_id=dataset_id, created_at=now, last_modified_at=now)
        try:
            dataset._sample_collection.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            message = error.details["writeErrors"][0]["errmsg"]
            raise SyncError(f"dataset {dataset.name!r}: {message}") from error

    def _note(self, fields: TaskFields, change_ai: bool, change_expert: bool) -> None:
        report = self.report
        for unknown in fields.unknown:
            if (unknown.field.startswith("ai_") and change_ai) or (
                unknown.field.startswith("expert_") and change_expert
            ):
                report.unknown_labels.append(unknown)
        if fields.unresolved_image is not None:
            report.unresolved_images.append((fields.task_id, fields.unresolved_image))
        report.errors += [(fields.task_id, error) for error in fields.errors]
        for group in (fields.ai, fields.expert):
            for name, value in (group or {}).items():
                if name.startswith(("ai_", "expert_")) and not isinstance(value, (str, int, list)) and value:
                    report.labels[name] += label_count(value)

    def _values(
        self, fields: TaskFields, change_ai: bool, change_expert: bool, change_data: bool, documents: bool = False
    ) -> dict[str, Any]:

        values: dict[str, Any] = {"ls_signature": fields.signature, "ls_updated_at": fields.signature.split("|")[0]}
        values["ls_total_predictions"] = int(fields.signature.split("|")[2] or 0) if fields.signature else 0
        if change_data:
            values.update(fields.data)
            values.update(
                filepath=fields.filepath,
                ls_project_id=self.project_id,
                ls_data_signature=fields.data_signature,
                metadata=_metadata(fields.image_size, documents),
            )
        if change_ai and fields.ai is not None:
            values.update(fields.ai, ls_ai_signature=fields.ai_signature, ai_taxonomy_unknown=fields.ai_unknown)
        if change_expert and fields.expert is not None:
            values.update(
                fields.expert,
                ls_expert_signature=fields.expert_signature,
                expert_taxonomy_unknown=fields.expert_unknown,
            )
        if change_ai or change_expert:
            values[UNKNOWN_ATTRIBUTE] = fields.ai_unknown or fields.expert_unknown
        return values

    def delete(self, task_ids: Sequence[int]) -> None:
        from fiftyone import ViewField as F

        if not task_ids:
            return
        self.dataset.delete_samples(self.dataset.match(F("ls_task_id").is_in(list(task_ids))))
        for task_id in task_ids:
            self.stored.pop(task_id, None)
        self.report.deleted += len(task_ids)


# ---------------------------------------------------------------------------------------------
# The sync


def default_dataset_name(project_id: int) -> str:
    return f"plantai-ls-{project_id}"


def sync_project(
    client: Any,
    project_id: int,
    dataset_name: str | None = None,
    document_root: Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    full: bool = False,
    progress: Progress | None = None,
) -> SyncReport:
    """Bring the FiftyOne dataset of a Label Studio project up to date; see the module docstring.

    ``client``: a ``label_studio_sdk.LabelStudio``. ``document_root``: Label Studio's
    ``LOCAL_FILES_DOCUMENT_ROOT`` (image URLs resolve to files under it). ``full``: read and
    rewrite every task, ignoring the cursor and the stored signatures. ``progress(done, total)``
    runs after each committed batch. Raises :class:`SyncError` (carrying the partial report) when
    Label Studio stops answering; run the sync again to finish.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
    started = time.perf_counter()
    name = dataset_name or default_dataset_name(project_id)
    report = SyncReport(project_id=project_id, dataset=name, full=full)
    reader = TaskReader(client, project_id)
    try:
        with _collector_paused():
            _run(reader, report, name, document_root, batch_size, full, progress)
    except SyncError as error:
        report.seconds = time.perf_counter() - started
        error.report = report
        raise
    report.seconds = time.perf_counter() - started
    return report


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a sync runs, back on after (if it was on).

    A sync makes millions of dicts and lists (parsed JSON, documents) that all stay alive until
    written, and the collector went over them again and again: half of a first sync's own CPU time
    (measured with 3,000 tasks x 40 boxes). They hold no reference cycles; a cycle made meanwhile
    elsewhere in the process waits for the collector's next run.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _run(
    reader: TaskReader,
    report: SyncReport,
    name: str,
    document_root: Path | None,
    batch_size: int,
    full: bool,
    progress: Progress | None,
) -> None:
    project = reader.project()
    controls = label_controls(str(project.get("label_config") or "<View/>"))
    dataset = _open_dataset(name, reader.project_id, reader.url)
    _declare_controls(dataset, controls)
    state = dict(dataset.info.get(INFO_KEY) or {})
    since = None if full else state.get("cursor")
    report.since = since
    mark = reader.newest_update()
    writer = _Writer(dataset, reader.project_id, controls, document_root, report, full)
    stored_before = set(writer.stored)

    done = 0
    task_number = int(project.get("task_number") or 0)
    if since is None and task_number >= _SNAPSHOT_MIN_TASKS and len(writer.stored) < task_number // 2:
        # Mostly new tasks: Label Studio's snapshot export serializes them for half the cost of pages.
        predictions = int(project.get("total_predictions_number") or 0)
        for tasks in reader.snapshots(_SNAPSHOT_CHUNK, mark, predictions):
            for start in range(0, len(tasks), batch_size):
                writer.write(tasks[start : start + batch_size])
                done += len(tasks[start : start + batch_size])
                if progress is not None:
                    progress(done, max(task_number, done))
    else:
        for tasks, total in reader.pages(since, batch_size):
            writer.write(tasks)
            done += len(tasks)
            if progress is not None:
                progress(done, max(total, done))

    if since is None:
        gone = sorted(stored_before - writer.seen)
        writer.delete(gone)
    else:
        new_ids = writer.seen - stored_before
        predictions = int(dataset.sum("ls_total_predictions") or 0)
        tasks_ok = int(project.get("task_number") or 0) == len(stored_before) + len(new_ids)
        predictions_ok = int(project.get("total_predictions_number") or 0) == predictions

        if not (tasks_ok and predictions_ok):
            _reconcile(reader, writer, batch_size, progress, done)

    state.update(
        project_id=reader.project_id,
        label_studio_url=reader.url,
        cursor=mark if mark is not None else state.get("cursor"),
        synced_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        project_title=project.get("title"),
    )
    dataset.info = {**dict(dataset.info or {}), INFO_KEY: state}
    dataset.save()


def _reconcile(reader: TaskReader, writer: _Writer, batch_size: int, progress: Progress | None, done: int) -> None:
    """Counters disagree: list every task (ids and counts only), drop the gone, fetch the changed."""
    listing = reader.listing()
    present = {int(t["id"]): task_signature(t) for t in listing}
    writer.delete(sorted(set(writer.stored) - set(present)))
    stale = [
        task_id
        for task_id, signature in present.items()
        if task_id not in writer.seen
        and (task_id not in writer.stored or writer.stored[task_id].signature != signature)
    ]
    step = min(batch_size, _SELECT_BATCH)
    for start in range(0, len(stale), step):
        writer.write(reader.selected(stale[start : start + step]))
        done += len(stale[start : start + step])
        if progress is not None:
            progress(done, done + len(stale) - start - step)


def canonical_dump(dataset: fo.Dataset) -> list[dict[str, Any]]:
    """The dataset as plain data without ids or timestamps, sorted by task: for comparing two syncs."""
    skip = {"id", "_id", "created_at", "last_modified_at", "_dataset_id"}

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in sorted(value.items()) if k not in skip}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, bytes):
            return hashlib.sha1(value).hexdigest()
        return value

    rows = [clean(sample.to_dict()) for sample in dataset.sort_by("ls_task_id")]
    return rows


__all__ = [
    "INFO_KEY",
    "UNKNOWN_ATTRIBUTE",
    "SyncError",
    "SyncReport",
    "TaskFields",
    "UnknownLabel",
    "canonical_dump",
    "control_label_set",
    "default_dataset_name",
    "image_path",
    "in_taxonomy",
    "label_controls",
    "newest_annotation",
    "sync_project",
    "task_fields",
    "task_record",
    "task_signature",
]
