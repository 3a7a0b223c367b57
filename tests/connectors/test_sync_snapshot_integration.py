"""A first sync through Label Studio's snapshot exports writes what the paged sync writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import connectors.sync as sync
import connectors.sync.reader as sync_reader
from connectors.sync import canonical_dump, sync_project
from local_services.fiftyone_db import LocalFiftyOneDatabase
from local_services.labelstudio import LocalLabelStudio

from .test_sync_integration import _expert_review, _project, _unique

pytestmark = pytest.mark.integration


def _paged_reference(ls_client: Any, label_studio: LocalLabelStudio) -> tuple[Any, list[int], Path, str]:
    """Five tasks, one with an expert review, synced the plain way (pages of 2): the dataset to compare with."""
    root = label_studio.server.document_root
    project, task_ids, sheets = _project(ls_client, label_studio, 5)
    ls_client.annotations.create(id=task_ids[1], result=_expert_review(sheets[1]))
    paged = _unique("paged")
    sync_project(ls_client, project.id, paged, root, batch_size=2)
    return project, task_ids, root, paged


def test_snapshot_exports_and_pages_give_the_same_dataset(
    label_studio: LocalLabelStudio,
    ls_client: Any,
    fiftyone_db: LocalFiftyOneDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fiftyone as fo

    project, _, root, paged = _paged_reference(ls_client, label_studio)

    monkeypatch.setattr(sync, "_SNAPSHOT_MIN_TASKS", 1)
    monkeypatch.setattr(sync_reader, "_SNAPSHOT_CHUNK_MIN", 2)  # three exports of 2, 2 and 1 tasks
    exported = _unique("exported")
    done: list[int] = []
    report = sync_project(ls_client, project.id, exported, root, batch_size=2, progress=lambda d, t: done.append(d))
    assert (report.added, report.fetched) == (5, 5)
    assert done[-1] == 5
    assert canonical_dump(fo.load_dataset(exported)) == canonical_dump(fo.load_dataset(paged))
    assert ls_client.projects.exports.list(id=project.id) == []  # its exports are removed

    # The signatures stored from the export say "unchanged" to the task list: nothing is refetched.
    monkeypatch.setattr(sync, "_SNAPSHOT_MIN_TASKS", 10**9)
    again = sync_project(ls_client, project.id, exported, root, full=False)
    assert (again.added, again.updated, again.deleted) == (0, 0, 0)


def test_listed_predictions_and_tasks_read_again_give_the_same_dataset(
    label_studio: LocalLabelStudio,
    ls_client: Any,
    fiftyone_db: LocalFiftyOneDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fiftyone as fo

    project, task_ids, root, paged = _paged_reference(ls_client, label_studio)
    expected = canonical_dump(fo.load_dataset(paged))
    monkeypatch.setattr(sync, "_SNAPSHOT_MIN_TASKS", 1)
    monkeypatch.setattr(sync_reader, "_SNAPSHOT_CHUNK_MIN", 2)

    listed: list[int] = []
    read_again: list[int] = []
    get, selected = sync.TaskReader.get, sync.TaskReader.selected

    def spy_get(self: Any, path: str, params: Any = None) -> Any:
        answer = get(self, path, params)
        if path == "api/predictions/":
            listed.append(len(answer))
            return [p for p in answer if p["task"] != task_ids[2]]  # as if made after the list was read
        return answer

    def spy_selected(self: Any, ids: Any) -> Any:
        read_again.extend(ids)
        return selected(self, ids)

    monkeypatch.setattr(sync.TaskReader, "get", spy_get)
    monkeypatch.setattr(sync.TaskReader, "selected", spy_selected)

    # The predictions come from one list; the task whose predictions the list lacks is read again.
    exported = _unique("listed")
    sync_project(ls_client, project.id, exported, root, batch_size=2)
    assert listed == [10]  # 5 tasks x (detector + classifier), in one request
    assert read_again == [task_ids[2]]
    assert canonical_dump(fo.load_dataset(exported)) == expected

    # Tasks changed after the sync's mark (here: all but the oldest) are read again too.
    oldest = min(fo.load_dataset(paged).values("ls_updated_at"))
    monkeypatch.setattr(sync.TaskReader, "newest_update", lambda self: oldest)
    listed.clear()
    read_again.clear()
    changed = _unique("changed")
    sync_project(ls_client, project.id, changed, root, batch_size=2)
    assert listed == [10]
    assert len(read_again) == 4
    assert canonical_dump(fo.load_dataset(changed)) == expected

    # Past the list's bound, each export carries the predictions in full: no list, nothing read again.
    monkeypatch.setattr(sync_reader, "_PREDICTION_LIST_MAX", 9)
    listed.clear()
    read_again.clear()
    full = _unique("full")
    sync_project(ls_client, project.id, full, root, batch_size=2)
    assert (listed, read_again) == ([], [])
    assert canonical_dump(fo.load_dataset(full)) == expected
    assert ls_client.projects.exports.list(id=project.id) == []
