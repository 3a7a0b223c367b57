"""What an analyst does with a FiftyOne view of specimens; shared by the CLI and the FiftyOne plugin.

* :func:`send_view_for_review` creates Label Studio tasks for the view's specimens, their AI
  labels as predictions (one per model version), skipping specimens the project already has
  (same task, or same ``catalogNumber``);
* :func:`annotate_view` runs a catalog model over the view in batches and writes its labels to
  ``ai_<control>`` (the field the sync would fill from the same model's predictions), with
  provenance, and the model version to ``ai_model_versions``;
* :func:`export_view` writes the view as YOLO, COCO or a Darwin Core Archive through
  :mod:`connectors.exports`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.label_config import IMAGE_KEY
from connectors.projects import CATALOG_NUMBER_KEY, IMPORT_BATCH, existing_catalog_numbers
from herbarium.labels import Label, SpecimenLabels
from herbarium.labels.local_files import LocalFilesError, local_files_url

if TYPE_CHECKING:
    import fiftyone as fo

    from catalog.registry import Catalog

Progress = Callable[[int, int], None]  # (done, total)
# A catalog task -> the review config's control its labels fill (connectors.label_config.review_config).
TASK_CONTROLS: Mapping[str, str] = {
    "detect-nonvegetal": "nonvegetal",
    "detect-organs": "organs",
    "segment-plant": "plant_mask",
}
# Labels without a control (made by other tools) go to these controls in Label Studio.
DEFAULT_CONTROLS = {"box": "label", "polygon": "outline", "mask": "mask"}
EXPORT_FORMATS = ("yolo", "coco", "dwca")


def _ensure_metadata(view: fo.SampleCollection) -> None:
    missing = view.match({"$or": [{"metadata": None}, {"metadata.width": None}]})
    if missing.count():
        missing.compute_metadata()


# ---------------------------------------------------------------------------------------------
# Send to Label Studio


@dataclass
class SendReport:
    project_id: int
    created: list[int] = dataclass_field(default_factory=list)  # new task ids
    predictions: int = 0
    skipped: list[str] = dataclass_field(default_factory=list)  # catalog numbers (or sample ids) already in the project
    refused: list[tuple[str, str]] = dataclass_field(default_factory=list)  # (sample id, why)

    def as_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "created": len(self.created),
            "task_ids": list(self.created),
            "predictions": self.predictions,
            "skipped": list(self.skipped),
            "refused": [{"sample": s, "reason": r} for s, r in self.refused],
        }


def predictions_of(labels: SpecimenLabels) -> list[dict[str, Any]]:
    """The model labels of a specimen as Label Studio predictions, one per ``source`` (model version)."""
    from herbarium.labels.labelstudio import as_labelstudio

    by_source: dict[str, list[Label]] = defaultdict(list)
    for label in labels.labels:
        if not label.is_expert:
            by_source[label.source or ""].append(label)
    out = []
    for source, group in sorted(by_source.items()):
        scores = [label.score for label in group if label.score is not None]
        specimen = SpecimenLabels(width=labels.width, height=labels.height, labels=group)
        prediction: dict[str, Any] = {"result": as_labelstudio(specimen, default_controls=DEFAULT_CONTROLS)}
        if source:
            prediction["model_version"] = source
        if scores:
            prediction["score"] = sum(scores) / len(scores)
        out.append(prediction)
    return out


def send_view_for_review(
    view: fo.SampleCollection,
    client: Any,
    project_id: int,
    document_root: Path,
    progress: Progress | None = None,
) -> SendReport:
    """Create a task per specimen of ``view`` not yet in project ``project_id``, AI labels as predictions.

    A sample synced from this very project (``ls_project_id``) or whose ``catalogNumber`` a task of
    the project already has is skipped, so sending the same view twice creates nothing the second
    time. Images must lie under ``document_root`` (Label Studio's ``LOCAL_FILES_DOCUMENT_ROOT``).
    """
    from connectors.exports import specimens_from_samples

    report = SendReport(project_id=project_id)
    present = existing_catalog_numbers(client, project_id)
    _ensure_metadata(view)
    total = view.count()
    batch: list[dict[str, Any]] = []
    done = 0

    def flush() -> None:
        nonlocal batch
        if batch:
            response = client.projects.import_tasks(id=project_id, request=batch, return_task_ids=True)
            report.created += [int(t) for t in (response.task_ids or [])]
            batch = []

    for sample in view.iter_samples():
        done += 1
        catalog_number = sample.get_field(CATALOG_NUMBER_KEY) if sample.has_field(CATALOG_NUMBER_KEY) else None
        own_project = sample.get_field("ls_project_id") if sample.has_field("ls_project_id") else None
        if own_project == project_id and sample.get_field("ls_task_id") is not None:
            report.skipped.append(str(catalog_number or sample.id))
            continue
        if catalog_number and catalog_number in present:
            report.skipped.append(str(catalog_number))
            continue
        try:
            url = local_files_url(Path(sample.filepath), document_root)
        except LocalFilesError as error:
            report.refused.append((str(sample.id), str(error)))
            continue
        [specimen] = specimens_from_samples([sample])
        data = {**specimen.record, IMAGE_KEY: url}
        if catalog_number:
            data[CATALOG_NUMBER_KEY] = catalog_number
            present.add(str(catalog_number))
        predictions = predictions_of(specimen.labels)
        report.predictions += len(predictions)
        batch.append({"data": data, "predictions": predictions})
        if len(batch) >= IMPORT_BATCH:
            flush()
        if progress is not None:
            progress(done, total)
    flush()
    if progress is not None:
        progress(total, total)
    return report


# ---------------------------------------------------------------------------------------------
# Annotate with a catalog model


@dataclass
class AnnotateReport:
    model_version: str
    field: str
    samples: int = 0
    labels: int = 0
    errors: list[tuple[str, str]] = dataclass_field(default_factory=list)  # (sample id, why)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "field": self.field,
            "samples": self.samples,
            "labels": self.labels,
            "errors": [{"sample": s, "error": e} for s, e in self.errors],
        }


def annotate_view(
    view: fo.SampleCollection,
    model_ref: str,
    catalog: Catalog | None = None,
    conf: float = 0.25,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> AnnotateReport:
    """Predict every sample of ``view`` with catalog model ``model_ref`` (``name`` = production, or ``name@version``).

    Writes ``ai_<control>`` (its labels' ``source`` the model's ``name@version``, ``state``
    predicted) and adds the version to ``ai_model_versions``, one batch at a time; then refreshes
    the search indexes and saved views so the new field and version are found.
    """
    import fiftyone as fo

    from catalog.predictors import load_model
    from catalog.registry import Catalog
    from catalog.tasks import resolve_task
    from connectors.search import prepare
    from herbarium.imaging import ImageReadError, read_image
    from herbarium.labels.fiftyone import as_fiftyone
    from ml_backends.adapters import adapter_for, organ_prompter

    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
    catalog = catalog or Catalog.open()
    loaded = load_model(model_ref, catalog=catalog)
    prompter = organ_prompter(catalog, conf) if loaded.framework == "sam" else None  # SAM needs box prompts
    adapter = adapter_for(loaded, resolve_task(loaded.task).kind, conf=conf, prompter=prompter)
    control = TASK_CONTROLS.get(loaded.task, loaded.task)
    name = f"ai_{control}"
    report = AnnotateReport(model_version=loaded.ref, field=name)
    dataset = view._dataset
    classification = resolve_task(loaded.task).kind.startswith("classify")
    label_type = fo.Classification if classification else fo.Detections
    schema = dataset.get_field_schema()
    if name not in schema:
        dataset.add_sample_field(name, fo.EmbeddedDocumentField, embedded_doc_type=label_type)
    if "ai_model_versions" not in schema:
        dataset.add_sample_field("ai_model_versions", fo.ListField, subfield=fo.StringField)

    ids, paths, versions = view.values(["id", "filepath", "ai_model_versions"])
    no_metadata = set(view.match({"metadata": None}).values("id"))
    total = len(ids)
    side = adapter.decode_side(None)
    for start in range(0, total, batch_size):
        chunk = list(zip(ids[start : start + batch_size], paths[start : start + batch_size], strict=True))
        pictures, kept = [], []
        for sample_id, path in chunk:
            try:
                pictures.append(read_image(Path(path), max_side=side))
                kept.append(sample_id)
            except ImageReadError as error:
                report.errors.append((sample_id, str(error)))
        values: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        for sample_id, picture, labels in zip(kept, pictures, adapter.predict(pictures), strict=True):
            labels = labels.with_labels(replace(label, control=control) for label in labels.labels)
            converted = as_fiftyone(labels)
            value: Any = converted.classifications.get(control) if classification else converted.detections
            values[sample_id] = value
            report.labels += 1 if classification else len(converted.detections.detections)
            metadata[sample_id] = fo.ImageMetadata(width=picture.original_width, height=picture.original_height)
        if values:
            dataset.set_values(name, values, key_field="id", progress=False)
            old = dict(zip(ids, versions, strict=True))
            merged = {i: sorted({*(old.get(i) or []), loaded.ref}) for i in values}
            dataset.set_values("ai_model_versions", merged, key_field="id", progress=False)
            missing = {i: m for i, m in metadata.items() if i in no_metadata}
            if missing:
                dataset.set_values("metadata", missing, key_field="id", progress=False)
        report.samples += len(values)
        if progress is not None:
            progress(min(start + batch_size, total), total)
    prepare(dataset)
    return report


# ---------------------------------------------------------------------------------------------
# Export


def export_view(view: fo.SampleCollection, fmt: str, out: Path, labels: str = "nonvegetal") -> dict[str, Any]:
    """Write ``view`` as ``yolo`` (validated boxes of label set ``labels``), ``coco`` or ``dwca``."""
    from connectors.exports import export_coco, export_dwca, export_yolo, specimens_from_samples
    from herbarium.taxonomy import label_set

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    _ensure_metadata(view)
    specimens = specimens_from_samples(view.iter_samples())
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "yolo":
        exported = export_yolo(specimens, out / "yolo", label_set(labels))
        return {"format": fmt, "path": str(exported.data), "specimens": len(specimens)}
    if fmt == "coco":
        path = export_coco(specimens, out / "coco.json", label_set(labels))
        return {"format": fmt, "path": str(path), "specimens": len(specimens)}
    path = export_dwca(specimens, out / "specimens-dwca.zip")
    return {"format": fmt, "path": str(path), "specimens": len(specimens)}


__all__ = [
    "EXPORT_FORMATS",
    "TASK_CONTROLS",
    "AnnotateReport",
    "SendReport",
    "annotate_view",
    "export_view",
    "predictions_of",
    "send_view_for_review",
]
