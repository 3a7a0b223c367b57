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
texts (:mod:`connectors.sync.fast_path`, held equal to the general path on generated tasks by a
test), and
Python's cyclic garbage collector is paused while a sync runs: the two halved a first sync's own
CPU time, which on 2 cores competes with Label Studio's.

A kill or a Label Studio outage leaves committed batches in place and the cursor where it was; the
next sync fetches the same window again, skips the tasks whose stored signature already matches,
and writes the rest: nothing is duplicated (the unique index) and nothing is lost (the cursor).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.sync.reader import SELECT_BATCH, TaskReader
from connectors.sync.report import Progress, SyncError, SyncReport, UnknownLabel
from connectors.sync.task_fields import (
    UNKNOWN_ATTRIBUTE,
    TaskFields,
    control_label_set,
    image_path,
    in_taxonomy,
    label_controls,
    newest_annotation,
    task_fields,
    task_record,
    task_signature,
)
from connectors.sync.writer import INFO_KEY, SampleWriter, declare_controls, open_dataset

if TYPE_CHECKING:
    import fiftyone as fo

DEFAULT_BATCH_SIZE = 250
_SNAPSHOT_MIN_TASKS = 1000  # a first sync of at least this many new tasks reads snapshot exports, not pages
_SNAPSHOT_CHUNK = 2500  # task ids per snapshot export (at most)


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
    dataset = open_dataset(name, reader.project_id, reader.url)
    declare_controls(dataset, controls)
    state = dict(dataset.info.get(INFO_KEY) or {})
    since = None if full else state.get("cursor")
    report.since = since
    mark = reader.newest_update()
    writer = SampleWriter(dataset, reader.project_id, controls, document_root, report, full)
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


def _reconcile(reader: TaskReader, writer: SampleWriter, batch_size: int, progress: Progress | None, done: int) -> None:
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
    step = min(batch_size, SELECT_BATCH)
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
