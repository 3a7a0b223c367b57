"""A first sync through Label Studio's snapshot exports writes what the paged sync writes."""

from __future__ import annotations

from typing import Any

import pytest

import connectors.sync as sync
from connectors.local_fiftyone_db import LocalFiftyOneDatabase
from connectors.local_labelstudio import LocalLabelStudio
from connectors.sync import canonical_dump, sync_project

from .test_sync_integration import _expert_review, _project, _unique

pytestmark = pytest.mark.integration


def test_snapshot_exports_and_pages_give_the_same_dataset(
    label_studio: LocalLabelStudio,
    ls_client: Any,
    fiftyone_db: LocalFiftyOneDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fiftyone as fo

    root = label_studio.server.document_root
    project, task_ids, sheets = _project(ls_client, label_studio, 5)
    ls_client.annotations.create(id=task_ids[1], result=_expert_review(sheets[1]))
    paged = _unique("paged")
    sync_project(ls_client, project.id, paged, root, batch_size=2)

    monkeypatch.setattr(sync, "_SNAPSHOT_MIN_TASKS", 1)
    monkeypatch.setattr(sync, "_SNAPSHOT_CHUNK_MIN", 2)  # three exports of 2, 2 and 1 tasks
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
