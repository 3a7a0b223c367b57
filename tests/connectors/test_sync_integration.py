"""Label Studio -> FiftyOne sync against a real Label Studio and a real FiftyOne database."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.projects import SpecimenTask, create_project, import_specimens
from connectors.sync import INFO_KEY, SyncError, canonical_dump, sync_project
from herbarium.labels import BoxLabel, ClassificationLabel, SpecimenLabels
from herbarium.labels.labelstudio import as_labelstudio
from herbarium.synth import generate_sheet
from local_services.fiftyone_db import LocalFiftyOneDatabase
from local_services.labelstudio import LocalLabelStudio

pytestmark = pytest.mark.integration

_names = itertools.count()
DETECTOR = "nonvegetal-detector@1.0.0"
CLASSIFIER = "phenology-classifier@2.1.0"
REGION_CONTROLS = {"region_comment": "region_comment", "comment": "comment"}


def _unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{id(_names)}"


def _project(ls_client: Any, label_studio: LocalLabelStudio, n: int) -> tuple[Any, list[int], list[Any]]:
    """A review project over ``n`` generated sheets, each with a detector and a classifier prediction."""
    root = label_studio.server.document_root
    title = _unique("sync")
    folder = root / title / "sheets"
    folder.mkdir(parents=True)
    sheets, specimens = [], []
    for seed in range(n):
        sheet = generate_sheet(100 + seed, 360, 512)
        path = folder / f"{sheet.catalog_number} scan.jpg"  # a space: URLs carry %20
        sheet.image.save(path)
        sheets.append(sheet)
        specimens.append(SpecimenTask(sheet.catalog_number, path, dict(sheet.darwin_core)))
    project = create_project(ls_client, title, folder, root)
    task_ids, _ = import_specimens(ls_client, project.id, specimens, root)
    for task_id, sheet in zip(task_ids, sheets, strict=True):
        boxes = [box for box in sheet.labels.boxes if box.control == "nonvegetal"]
        ai = SpecimenLabels(width=sheet.width, height=sheet.height, labels=boxes)
        ls_client.predictions.create(task=task_id, result=as_labelstudio(ai), model_version=DETECTOR, score=0.9)
        phenology = ClassificationLabel(label=sheet.traits["phenology"], control="phenology")
        trait = SpecimenLabels(width=sheet.width, height=sheet.height, labels=[phenology])
        ls_client.predictions.create(task=task_id, result=as_labelstudio(trait), model_version=CLASSIFIER, score=0.7)
    return project, task_ids, sheets


def _box(sheet: Any, k: int, label: str | None = None, **extra: Any) -> BoxLabel:
    box = [b for b in sheet.labels.boxes if b.control == "nonvegetal"][k]
    return BoxLabel(
        label=label or box.label,
        control="nonvegetal",
        x=box.x,
        y=box.y,
        width=box.width,
        height=box.height,
        region_id=f"e{k}",
        **extra,
    )


def _expert_review(sheet: Any) -> list[dict[str, Any]]:
    """Validated, corrected, rejected and out-of-taxonomy boxes, a sheet review and a comment."""
    labels = [
        _box(sheet, 0, attributes={"verdict": ("correct",)}, comment="barcode fine"),
        _box(sheet, 1, label="stamp", attributes={"verdict": ("wrong label",)}),
        _box(sheet, 2, attributes={"verdict": ("not a plant part",)}),
        _box(sheet, 3, label="sticker"),
        ClassificationLabel(label="needs work", control="review"),
    ]
    specimen = SpecimenLabels(width=sheet.width, height=sheet.height, labels=labels, comment="check the stamp")
    return as_labelstudio(specimen, default_controls=REGION_CONTROLS)


def _sample(dataset: Any, task_id: int) -> Any:
    from fiftyone import ViewField as F

    return dataset.match(F("ls_task_id") == task_id).first()


def test_sync_carries_predictions_reviews_and_provenance_then_follows_changes(
    label_studio: LocalLabelStudio, ls_client: Any, fiftyone_db: LocalFiftyOneDatabase
) -> None:
    import fiftyone as fo

    root = label_studio.server.document_root
    project, task_ids, sheets = _project(ls_client, label_studio, 3)
    ls_client.annotations.create(id=task_ids[0], result=_expert_review(sheets[0]))
    name = _unique("ds")

    report = sync_project(ls_client, project.id, name, root, batch_size=2)
    assert (report.added, report.updated, report.deleted) == (3, 0, 0)
    assert report.unresolved_images == []
    assert [(u.task_id, u.field, u.label) for u in report.unknown_labels] == [
        (task_ids[0], "expert_nonvegetal", "sticker")
    ]
    dataset = fo.load_dataset(name)
    assert len(dataset) == 3
    assert dataset.info[INFO_KEY]["project_id"] == project.id

    reviewed = _sample(dataset, task_ids[0])
    assert Path(reviewed.filepath) == (root / project.title / "sheets" / f"{sheets[0].catalog_number} scan.jpg")
    assert reviewed.catalogNumber == sheets[0].catalog_number
    assert reviewed.scientificName == sheets[0].darwin_core["scientificName"]
    assert (reviewed.metadata.width, reviewed.metadata.height) == (360, 512)
    assert reviewed.review_state == "needs work"
    assert reviewed.review_comment == "check the stamp"
    assert reviewed.taxonomy_unknown is True
    expert = {d.region_id: d for d in reviewed.expert_nonvegetal.detections}
    assert {k: (d.label, d.state) for k, d in expert.items()} == {
        "e0": (sheets[0].labels.boxes[0].label, "validated"),
        "e1": ("stamp", "corrected"),
        "e2": (expert["e2"].label, "rejected"),
        "e3": ("sticker", "corrected"),
    }
    assert expert["e0"].region_choices["verdict"] == ["correct"]
    assert expert["e1"].region_choices["verdict"] == ["wrong label"]
    assert expert["e0"].comment == "barcode fine"
    assert {d.source for d in expert.values()} == {"expert:1"}
    assert expert["e3"].taxonomy_unknown is True
    assert not expert["e0"].has_field("taxonomy_unknown")
    ai = reviewed.ai_nonvegetal.detections
    assert len(ai) == len([b for b in sheets[0].labels.boxes if b.control == "nonvegetal"])
    assert {(d.source, d.state, d.confidence) for d in ai} == {(DETECTOR, "predicted", 0.9)}
    assert reviewed.ai_phenology.label == sheets[0].traits["phenology"]
    assert reviewed.ai_phenology.source == CLASSIFIER
    assert reviewed.ai_phenology.confidence == pytest.approx(0.7)
    assert reviewed.ai_model_versions == sorted([DETECTOR, CLASSIFIER])
    assert reviewed.ai_phenology.state == "predicted"
    unreviewed = _sample(dataset, task_ids[1])
    assert unreviewed.review_state == "unreviewed"
    assert unreviewed.expert_nonvegetal is None
    assert unreviewed.taxonomy_unknown is False

    # Nothing changed: nothing written.
    before = canonical_dump(dataset)
    again = sync_project(ls_client, project.id, name, root)
    assert (again.added, again.updated, again.deleted) == (0, 0, 0)
    assert canonical_dump(dataset) == before

    # A newer annotation replaces the older one; the AI labels stay the very same documents.
    ai_ids = [d.id for d in _sample(dataset, task_ids[0]).ai_nonvegetal.detections]
    other = canonical_dump(dataset.match({"ls_task_id": {"$ne": task_ids[0]}}))
    newer = SpecimenLabels(
        width=sheets[0].width,
        height=sheets[0].height,
        labels=[
            _box(sheets[0], 0, attributes={"verdict": ("correct",)}),
            ClassificationLabel(label="validated", control="review"),
        ],
    )
    ls_client.annotations.create(id=task_ids[0], result=as_labelstudio(newer, default_controls=REGION_CONTROLS))
    changed = sync_project(ls_client, project.id, name, root)
    assert (changed.added, changed.updated, changed.deleted) == (0, 1, 0)
    assert dict(changed.labels) == {"expert_nonvegetal": 1}
    reviewed = _sample(dataset, task_ids[0])
    assert [(d.region_id, d.state) for d in reviewed.expert_nonvegetal.detections] == [("e0", "validated")]
    assert reviewed.review_state == "validated"
    assert reviewed.review_comment is None
    assert reviewed.taxonomy_unknown is False
    assert [d.id for d in reviewed.ai_nonvegetal.detections] == ai_ids
    assert canonical_dump(dataset.match({"ls_task_id": {"$ne": task_ids[0]}})) == other

    # A deleted annotation takes its expert labels along; a deleted task leaves the dataset.
    for annotation in ls_client.annotations.list(id=task_ids[0]):
        ls_client.annotations.delete(id=annotation.id)
    ls_client.tasks.delete(id=task_ids[2])
    gone = sync_project(ls_client, project.id, name, root)
    assert (gone.added, gone.updated, gone.deleted) == (0, 1, 1)
    assert sorted(dataset.distinct("ls_task_id")) == task_ids[:2]
    reviewed = _sample(dataset, task_ids[0])
    assert reviewed.expert_nonvegetal is None
    assert reviewed.review_state == "unreviewed"
    assert len(reviewed.ai_nonvegetal.detections) == len(ai_ids)


def test_predictions_imported_in_bulk_are_found_though_they_leave_updated_at_alone(
    label_studio: LocalLabelStudio, ls_client: Any, fiftyone_db: LocalFiftyOneDatabase
) -> None:
    import fiftyone as fo

    root = label_studio.server.document_root
    project, task_ids, sheets = _project(ls_client, label_studio, 2)
    name = _unique("bulk")
    sync_project(ls_client, project.id, name, root)
    before = ls_client.tasks.get(id=task_ids[1]).updated_at
    organs = SpecimenLabels(
        width=sheets[1].width,
        height=sheets[1].height,
        labels=[replace(b, attributes={}) for b in sheets[1].labels.boxes if b.control == "organs"],
    )
    imported = ls_client.projects.import_predictions(
        id=project.id,
        request=[{"task": task_ids[1], "result": as_labelstudio(organs), "model_version": "organ-detector@0.3.0"}],
    )
    assert imported.created == 1
    assert ls_client.tasks.get(id=task_ids[1]).updated_at == before  # the cursor alone would miss it
    report = sync_project(ls_client, project.id, name, root)
    assert (report.added, report.updated, report.deleted) == (0, 1, 0)
    sample = _sample(fo.load_dataset(name), task_ids[1])
    assert len(sample.ai_organs.detections) == len(organs.labels)
    assert {d.source for d in sample.ai_organs.detections} == {"organ-detector@0.3.0"}
    assert "organ-detector@0.3.0" in sample.ai_model_versions


class _KillError(Exception):
    pass


def _outage_after(requests_ok: int) -> httpx.Client:
    """An HTTP client that stops reaching Label Studio after ``requests_ok`` requests."""
    count = itertools.count()
    real = httpx.HTTPTransport()

    def handle(request: httpx.Request) -> httpx.Response:
        if next(count) >= requests_ok:
            raise httpx.ConnectError("connection refused", request=request)
        return real.handle_request(request)

    class Transport(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return handle(request)

    return httpx.Client(transport=Transport(), timeout=60)


def test_an_interrupted_sync_is_finished_by_the_next_run_without_duplicates(
    label_studio: LocalLabelStudio, ls_client: Any, fiftyone_db: LocalFiftyOneDatabase
) -> None:
    import fiftyone as fo

    from connectors.labelstudio_client import label_studio_client

    root = label_studio.server.document_root
    project, task_ids, sheets = _project(ls_client, label_studio, 5)
    ls_client.annotations.create(id=task_ids[3], result=_expert_review(sheets[3]))
    straight = _unique("straight")
    sync_project(ls_client, project.id, straight, root, batch_size=2)
    expected = canonical_dump(fo.load_dataset(straight))
    assert len(expected) == 5

    # Killed after the first committed batch.
    killed = _unique("killed")

    def kill(done: int, total: int) -> None:
        raise _KillError

    with pytest.raises(_KillError):
        sync_project(ls_client, project.id, killed, root, batch_size=2, progress=kill)
    assert len(fo.load_dataset(killed)) == 2
    assert fo.load_dataset(killed).info[INFO_KEY]["cursor"] is None
    sync_project(ls_client, project.id, killed, root, batch_size=2)
    assert canonical_dump(fo.load_dataset(killed)) == expected

    # Label Studio goes away after the first page (project, newest update, page 1).
    down = _unique("down")
    broken = label_studio_client(label_studio.url, label_studio.token, httpx_client=_outage_after(3))
    with pytest.raises(SyncError, match="did not answer") as raised:
        sync_project(broken, project.id, down, root, batch_size=2)
    assert raised.value.report is not None
    assert raised.value.report.added == 2
    assert len(fo.load_dataset(down)) == 2
    resumed = sync_project(ls_client, project.id, down, root, batch_size=2)
    assert (resumed.added, resumed.unchanged) == (3, 2)
    assert canonical_dump(fo.load_dataset(down)) == expected
    assert len(fo.load_dataset(down).distinct("ls_task_id")) == 5


def test_an_image_that_cannot_be_resolved_is_reported_not_fatal(
    label_studio: LocalLabelStudio, ls_client: Any, fiftyone_db: LocalFiftyOneDatabase, tmp_path: Path
) -> None:
    import fiftyone as fo

    project, _, _ = _project(ls_client, label_studio, 1)
    ls_client.projects.import_tasks(id=project.id, request=[{"data": {"image": "https://example.org/x.jpg"}}])
    name = _unique("unresolved")
    report = sync_project(ls_client, project.id, name, tmp_path / "elsewhere")
    assert report.added == 2
    assert len(report.unresolved_images) == 2
    assert len(fo.load_dataset(name)) == 2
