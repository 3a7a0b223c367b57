"""Pure parts of the sync: what a Label Studio task becomes as FiftyOne sample fields (the general path)."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
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
from connectors.review import model_sources, prediction_labels, reviewed_sheet
from herbarium.labels import BoxLabel, Label, LabelError, MaskLabel, PolygonLabel, SpecimenLabels
from herbarium.labels.fiftyone import as_fiftyone
from herbarium.labels.labelstudio import (
    task_image_size,
)
from herbarium.labels.labelstudio_tags import LABEL_TAGS
from herbarium.labels.local_files import LocalFilesError, local_file
from herbarium.taxonomy import PLANT, LabelSet, UnknownLabelError, label_set

if TYPE_CHECKING:
    pass
from connectors.sync.report import UnknownLabel

UNKNOWN_ATTRIBUTE = "taxonomy_unknown"
UNREVIEWED, ANNOTATED = "unreviewed", "annotated"

# Label Studio control tag, lower-cased (a result's type) -> the FiftyOne field kind its labels become.
_TAG_KINDS = {tag.result_type: tag.field_kind for tag in LABEL_TAGS}
_NOT_LABEL_CONTROLS = frozenset({VERDICT_CONTROL, REGION_COMMENT_CONTROL, REVIEW_CONTROL, COMMENT_CONTROL})
# Control names whose label set is not their own name.
_CONTROL_SETS: Mapping[str, LabelSet] = {"plant_mask": PLANT, "plant_outline": PLANT}
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Sample fields FiftyOne or the sync owns: a task data key with one of these names is not copied.
_RESERVED_FIELDS = frozenset({"id", "filepath", "tags", "metadata", "media_type", "created_at", "last_modified_at"})
_OWN_PREFIXES = ("ls_", "ai_", "expert_", "review_", "_")


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
    return resolves(label.control, label.label)


@functools.lru_cache(maxsize=4096)
def resolves(control: str | None, name: str) -> bool:
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
class TaskBasics:
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


def task_basics(task: Mapping[str, Any], document_root: Path | None) -> TaskBasics:
    data = task.get("data") or {}
    url = str(data.get(IMAGE_KEY) or "")
    path = image_path(url, document_root)
    size = task_image_size(task) or _file_size(path)
    width, height = size if size is not None else (1, 1)  # no region to place: any size serves classifications
    predictions = [p for p in task.get("predictions") or () if isinstance(p, Mapping)]
    annotation = newest_annotation([a for a in task.get("annotations") or () if isinstance(a, Mapping)])
    record = task_record(data)
    filepath = str(path) if path is not None else (url if url.startswith("/") else "/" + url)
    return TaskBasics(
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
    basics = task_basics(task, document_root)
    return basics_fields(basics, controls, build_ai=build_ai, build_expert=build_expert, as_documents=as_documents)


def basics_fields(
    basics: TaskBasics, controls: Mapping[str, str], *, build_ai: bool, build_expert: bool, as_documents: bool
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
        expert.update(expert_extras(annotation, review_state, review_comment, expert_source))
    if ai is not None:
        ai["ai_model_versions"] = model_versions(chosen)
    return assembled_fields(basics, ai, expert, unknown, flags["ai"], flags["expert"], errors)


def model_versions(chosen: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return sorted({src for p in chosen.values() for src in model_sources(str(p.get("model_version") or ""))})


def expert_extras(
    annotation: Mapping[str, Any] | None, review_state: str, review_comment: str | None, expert_source: str | None
) -> dict[str, Any]:
    return {
        "review_state": review_state,
        "review_comment": review_comment,
        "expert_annotation_id": int(annotation["id"]) if annotation and annotation.get("id") is not None else None,
        "expert_updated_at": str(annotation.get("updated_at")) if annotation and annotation.get("updated_at") else None,
        "expert_source": expert_source,
    }


def assembled_fields(
    basics: TaskBasics,
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
