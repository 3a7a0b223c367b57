"""PlantAI workspaces in Label Studio: review projects over a folder of specimen images.

Images stay where they are, under Label Studio's ``LOCAL_FILES_DOCUMENT_ROOT``; a local storage
covering their folder lets Label Studio serve them, and each task carries the specimen's
Darwin Core record next to its image URL, so the sync can put both on the FiftyOne sample.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.label_config import IMAGE_KEY, REVIEW_TASKS, review_config
from herbarium.labels.local_files import LocalFilesError, local_files_url

CATALOG_NUMBER_KEY = "catalogNumber"
IMPORT_BATCH = 500  # Label Studio imports thousands of tasks per request; batches keep requests bounded


class ProjectError(ValueError):
    """A project operation that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class SpecimenTask:
    """What a task is made of: the image (a file under the document root, or a URL Label Studio shows, such
    as a IIIF Image API request) and the specimen's Darwin Core record."""

    catalog_number: str
    image: Path | str
    record: Mapping[str, str] = field(default_factory=dict)


def _served_url(image: Path | str, document_root: Path | None) -> str:
    if isinstance(image, str):
        return image  # remote: Label Studio shows it, backends fetch it under PLANTAI_REMOTE_HOSTS
    if document_root is None:
        raise ProjectError(f"{image}: a local image needs Label Studio's document root (LOCAL_FILES_DOCUMENT_ROOT)")
    try:
        return local_files_url(image, document_root)
    except LocalFilesError as error:
        raise ProjectError(str(error)) from None


def create_project(
    client: Any,
    title: str,
    images_dir: Path,
    document_root: Path,
    tasks: Sequence[str] = REVIEW_TASKS,
    description: str = "",
) -> Any:
    """A review project for ``tasks`` with a local storage over ``images_dir`` (nothing imported yet)."""
    images_dir = images_dir.resolve()
    _served_url(images_dir, document_root)  # refuses folders Label Studio could not serve
    project = client.projects.create(title=title, label_config=review_config(tasks), description=description)
    client.import_storage.local.create(
        project=project.id, path=str(images_dir), use_blob_urls=True, title=f"{title} images", regex_filter=r"^$"
    )
    return project


def existing_catalog_numbers(client: Any, project: int) -> set[str]:
    return {
        str(task.data[CATALOG_NUMBER_KEY])
        for task in client.tasks.list(project=project, fields="all")
        if isinstance(task.data, dict) and task.data.get(CATALOG_NUMBER_KEY)
    }


def import_specimens(
    client: Any, project: int, specimens: Iterable[SpecimenTask], document_root: Path | None
) -> tuple[list[int], list[str]]:
    """Add one task per specimen not yet in the project; returns (new task ids, catalog numbers skipped)."""
    present = existing_catalog_numbers(client, project)
    counts = Counter[str]()
    batch: list[dict[str, Any]] = []
    new_ids: list[int] = []
    skipped: list[str] = []
    for specimen in specimens:
        counts[specimen.catalog_number] += 1
        if specimen.catalog_number in present or counts[specimen.catalog_number] > 1:
            skipped.append(specimen.catalog_number)
            continue
        data = {**specimen.record, CATALOG_NUMBER_KEY: specimen.catalog_number}
        data[IMAGE_KEY] = _served_url(specimen.image, document_root)
        batch.append({"data": data})
        if len(batch) >= IMPORT_BATCH:
            new_ids += _import(client, project, batch)
            batch = []
    if batch:
        new_ids += _import(client, project, batch)
    return new_ids, skipped


def _import(client: Any, project: int, batch: list[dict[str, Any]]) -> list[int]:
    response = client.projects.import_tasks(id=project, request=batch, return_task_ids=True)
    return [int(task_id) for task_id in (response.task_ids or [])]


@dataclass(frozen=True)
class ProjectStatus:
    """Where a project stands: tasks, how many are predicted and reviewed, predictions per model version."""

    id: int
    title: str
    tasks: int
    predicted: int
    reviewed: int
    predictions_by_version: Mapping[str, int]
    backends: Sequence[str]


def project_status(client: Any, project: int) -> ProjectStatus:
    details = client.projects.get(id=project)
    # Label Studio counts predictions per model_version itself (GET /api/projects/<id>/model-versions).
    response = client._client_wrapper.httpx_client.request(f"api/projects/{project}/model-versions", method="GET")
    response.raise_for_status()
    by_version = {str(k): int(v) for k, v in response.json().items() if int(v) > 0}
    predicted = sum(1 for task in client.tasks.list(project=project, fields="task_only") if task.total_predictions)
    return ProjectStatus(
        id=int(details.id),
        title=str(details.title),
        tasks=int(details.task_number or 0),
        predicted=predicted,
        reviewed=int(details.num_tasks_with_annotations or 0),
        predictions_by_version=by_version,
        backends=[str(b.url) for b in client.ml.list(project=project)],
    )


def invite_link(client: Any, label_studio_url: str) -> str:
    """The organisation's sign-up link: whoever opens it joins and sees its projects."""
    invite = client.organizations.invites.get_invite_link()
    return label_studio_url.rstrip("/") + str(invite.invite_url)
