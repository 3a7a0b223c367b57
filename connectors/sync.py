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
   on the first or a ``full`` sync), and writes each batch at once (``add_samples`` for new tasks,
   ``set_values`` keyed by ``ls_task_id`` for changed ones, only the groups of fields whose source
   changed: predictions, annotation, task data);
3. when the counters do not add up (a task deleted, predictions imported in bulk), lists every
   task's id, ``updated_at`` and counts (ids only, no results), removes the samples whose task is
   gone and fetches the tasks whose signature differs;
4. moves the cursor to the mark in ``dataset.info`` only once everything is written.

A kill or a Label Studio outage leaves committed batches in place and the cursor where it was; the
next sync fetches the same window again, skips the tasks whose stored signature already matches,
and writes the rest: nothing is duplicated (the unique index) and nothing is lost (the cursor).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from connectors.label_config import (
    COMMENT_CONTROL,
    IMAGE_KEY,
    REGION_COMMENT_CONTROL,
    REVIEW_CONTROL,
    VERDICT_CONTROL,
)
from connectors.review import model_sources, prediction_labels, reviewed_sheet
from herbarium.labels import BoxLabel, Label, LabelError, MaskLabel, PolygonLabel, SpecimenLabels
from herbarium.labels.fiftyone import as_fiftyone
from herbarium.taxonomy import PLANT, LabelSet, UnknownLabelError, label_set

if TYPE_CHECKING:
    import fiftyone as fo

INFO_KEY = "plantai_sync"
DEFAULT_BATCH_SIZE = 250
UNKNOWN_ATTRIBUTE = "taxonomy_unknown"
LOCAL_FILES_PREFIX = "/data/local-files/"
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
_SELECT_BATCH = 500  # task ids per Data Manager request; keeps the URL far below Label Studio's 16 KiB limit


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
    labels = control_label_set(label.control)
    if labels is None:
        return False
    try:
        labels.resolve(label.label)
    except UnknownLabelError:
        return False
    return True


def image_path(url: str, document_root: Path | None) -> Path | None:
    """The local file behind a ``/data/local-files/?d=...`` URL under ``document_root``, if it is one."""
    parsed = urlparse(url)
    if document_root is None or not parsed.path.rstrip("/").endswith(LOCAL_FILES_PREFIX.rstrip("/")):
        return None
    relative = parse_qs(parsed.query).get("d")
    if not relative or not relative[0]:
        return None
    root = document_root.resolve()
    path = (root / relative[0]).resolve()
    return path if path.is_relative_to(root) else None


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


def _image_size(task: Mapping[str, Any]) -> tuple[int, int] | None:
    for record in (*(task.get("predictions") or ()), *(task.get("annotations") or ())):
        if not isinstance(record, Mapping):
            continue
        for item in record.get("result") or ():
            width, height = item.get("original_width"), item.get("original_height")
            if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
                return width, height
    return None


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


def task_fields(
    task: Mapping[str, Any],
    controls: Mapping[str, str],
    document_root: Path | None,
    *,
    build_ai: bool = True,
    build_expert: bool = True,
) -> TaskFields:
    """Everything a sample holds for ``task`` (a Label Studio task with its annotations and predictions).

    ``build_ai``/``build_expert`` False skip building the FiftyOne labels of that group (its
    signature and unknown-label flags are still computed).
    """
    task_id = int(task["id"])
    data = task.get("data") or {}
    url = str(data.get(IMAGE_KEY) or "")
    path = image_path(url, document_root)
    unresolved = None if path is not None and path.is_file() else url
    size = _image_size(task) or _file_size(path)
    width, height = size if size is not None else (1, 1)  # no region to place: any size serves classifications
    errors: list[str] = []

    predictions = [p for p in task.get("predictions") or () if isinstance(p, Mapping)]
    ai_signature = _digest(sorted((p.get("id"), p.get("updated_at"), p.get("model_version")) for p in predictions))
    ai_labels: dict[str, list[Label]] = defaultdict(list)
    chosen: dict[str, Mapping[str, Any]] = {}
    # Per control, the newest prediction that fills it speaks for the models.
    for prediction in sorted(predictions, key=lambda p: (str(p.get("updated_at") or ""), int(p.get("id") or 0))):
        try:
            specimen = prediction_labels(prediction, width, height)
        except LabelError as error:
            errors.append(f"prediction {prediction.get('id')}: {error}")
            continue
        grouped = _by_control(specimen.labels)
        for control, labels in grouped.items():
            ai_labels[control] = labels
            chosen[control] = prediction
    versions = sorted({src for p in chosen.values() for src in model_sources(str(p.get("model_version") or ""))})

    annotation = newest_annotation([a for a in task.get("annotations") or () if isinstance(a, Mapping)])
    expert_signature = _digest([annotation.get("id"), annotation.get("updated_at")] if annotation else None)
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

    ai = _fo_fields("ai", ai_labels, controls, width, height, errors) if build_ai else None
    expert = _fo_fields("expert", expert_labels, controls, width, height, errors) if build_expert else None
    if expert is not None:
        expert.update(
            review_state=review_state,
            review_comment=review_comment,
            expert_annotation_id=int(annotation["id"]) if annotation and annotation.get("id") is not None else None,
            expert_updated_at=str(annotation.get("updated_at"))
            if annotation and annotation.get("updated_at")
            else None,
            expert_source=expert_source,
        )
    if ai is not None:
        ai["ai_model_versions"] = versions
    record = task_record(data)
    filepath = str(path) if path is not None else (url if url.startswith("/") else "/" + url)
    return TaskFields(
        task_id=task_id,
        signature=task_signature(task),
        filepath=filepath,
        image_size=size,
        data=record,
        data_signature=_digest([filepath, size, record]),
        ai=ai,
        ai_signature=ai_signature,
        expert=expert,
        expert_signature=expert_signature,
        unknown=unknown,
        ai_unknown=flags["ai"],
        expert_unknown=flags["expert"],
        unresolved_image=unresolved,
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
    for control, labels in groups.items():
        kind = controls.get(control) or _kind_of(labels)
        if kind != _kind_of(labels):
            errors.append(f"{prefix}_{control}: labels of another kind than the {kind} the config declares")
            continue
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


def label_count(value: Any) -> int:
    """How many labels a FiftyOne label field value holds."""
    if value is None:
        return 0
    for attr in ("detections", "polylines"):
        if hasattr(value, attr):
            return len(getattr(value, attr))
    return 1


# ---------------------------------------------------------------------------------------------
# Label Studio reads


class _Reader:
    """Raw JSON reads through the SDK client's own HTTP client (auth and token refresh included)."""

    def __init__(self, client: Any, project_id: int) -> None:
        self.http = client._client_wrapper.httpx_client
        self.project_id = project_id
        self.url = str(client._client_wrapper.get_base_url())

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        import httpx

        try:
            response = self.http.request(path, method="GET", params=dict(params or {}))
        except httpx.HTTPError as error:
            raise SyncError(f"Label Studio at {self.url} did not answer ({error})") from error
        if response.status_code >= 400:
            raise SyncError(
                f"Label Studio at {self.url} answered {response.status_code} to {path}: {response.text[:300]}"
            )
        return response.json()

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
        """Full tasks updated after ``since`` in id order, a page at a time, with the total to fetch."""
        last_id = 0
        while True:
            filters = [_filter("id", "greater", "Number", last_id)]
            if since is not None:
                filters.append(_filter("updated_at", "greater", "Datetime", since))
            page = self.tasks(filters, page_size=page_size, fields="all")
            tasks = page.get("tasks") or []
            total = int(page.get("total") or 0)
            if tasks:
                yield tasks, total
                last_id = max(int(t["id"]) for t in tasks)
            if len(tasks) < page_size:
                return

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
    """Add the sample fields a batch needs that the dataset does not have yet."""
    import fiftyone as fo

    schema = dataset.get_field_schema()
    for name, value in fields.items():
        if name in schema:
            continue
        if isinstance(value, str):
            dataset.add_sample_field(name, fo.StringField)
        elif isinstance(value, (fo.Detections, fo.Polylines, fo.Classification)):
            dataset.add_sample_field(name, fo.EmbeddedDocumentField, embedded_doc_type=type(value))
        else:
            continue
        schema = dataset.get_field_schema()


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

    def write(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        """Write one batch: new samples in one ``add_samples``, changes with one ``set_values`` per field."""
        new: list[fo.Sample] = []
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
            if before is not None and not self.full and before.signature == signature:
                report.unchanged += 1
                continue
            fields = task_fields(task, self.controls, self.document_root, build_ai=False, build_expert=False)
            change_ai = before is None or self.full or before.ai != fields.ai_signature
            change_expert = before is None or self.full or before.expert != fields.expert_signature
            change_data = before is None or self.full or before.data != fields.data_signature
            if change_ai or change_expert:
                fields = task_fields(
                    task, self.controls, self.document_root, build_ai=change_ai, build_expert=change_expert
                )
            self._note(fields, change_ai, change_expert)
            values = self._values(fields, change_ai, change_expert, change_data)
            if before is None:
                new.append(self._sample(fields, values))
                report.added += 1
            else:
                for name, value in values.items():
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
            _declare(self.dataset, {k: v for s in new for k, v in s.iter_fields() if v is not None})
            self.dataset.add_samples(new, progress=False)
        for name, by_task in updates.items():
            _declare(self.dataset, {name: next((v for v in by_task.values() if v is not None), None)})
            self.dataset.set_values(name, by_task, key_field="ls_task_id", progress=False)

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

    def _values(self, fields: TaskFields, change_ai: bool, change_expert: bool, change_data: bool) -> dict[str, Any]:
        import fiftyone as fo

        values: dict[str, Any] = {"ls_signature": fields.signature, "ls_updated_at": fields.signature.split("|")[0]}
        values["ls_total_predictions"] = int(fields.signature.split("|")[2] or 0) if fields.signature else 0
        if change_data:
            values.update(fields.data)
            values.update(
                filepath=fields.filepath,
                ls_project_id=self.project_id,
                ls_data_signature=fields.data_signature,
                metadata=fo.ImageMetadata(width=fields.image_size[0], height=fields.image_size[1])
                if fields.image_size
                else None,
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

    def _sample(self, fields: TaskFields, values: Mapping[str, Any]) -> fo.Sample:
        import fiftyone as fo

        sample_values = {k: v for k, v in values.items() if k != "filepath" and v is not None}
        return fo.Sample(filepath=fields.filepath, ls_task_id=fields.task_id, **sample_values)

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
    reader = _Reader(client, project_id)
    try:
        _run(reader, report, name, document_root, batch_size, full, progress)
    except SyncError as error:
        report.seconds = time.perf_counter() - started
        error.report = report
        raise
    report.seconds = time.perf_counter() - started
    return report


def _run(
    reader: _Reader,
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


def _reconcile(reader: _Reader, writer: _Writer, batch_size: int, progress: Progress | None, done: int) -> None:
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
