"""FiftyOne writes for the sync: the dataset, its declared fields, and batches of samples."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bson import ObjectId

if TYPE_CHECKING:
    import fiftyone as fo
from connectors.sync.fast_path import LabelIds, fast_task_fields
from connectors.sync.report import SyncError, SyncReport
from connectors.sync.task_fields import (
    UNKNOWN_ATTRIBUTE,
    TaskFields,
    basics_fields,
    label_count,
    task_basics,
    task_fields,
    task_signature,
)

INFO_KEY = "plantai_sync"


def _label_type(kind: str) -> Any:
    import fiftyone as fo

    return {"detections": fo.Detections, "polylines": fo.Polylines, "classification": fo.Classification}[kind]


def open_dataset(name: str, project_id: int, url: str) -> fo.Dataset:
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


def declare_controls(dataset: fo.Dataset, controls: Mapping[str, str]) -> None:
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


class SampleWriter:
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
        self.new_id = LabelIds()

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
                basics = task_basics(task, self.document_root)
                fields = fast_task_fields(basics, self.controls, self.new_id) or basics_fields(
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
