"""Label Studio -> FiftyOne: FiftyOne's built-in ``load_annotations`` beside PlantAI's sync, in one run.

A real Label Studio (copy of the template in ``.cache``, built if missing) and a private ``mongod``
(FiftyOne's bundled one, ``FIFTYONE_DATABASE_URI`` set before FiftyOne is imported), in a temporary
HOME, stopped by PID at the end. One review project of ``--tasks`` tasks (default 10,000), each with
one prediction and one expert annotation of ``--regions`` boxes (default 20 each), seeded through
``import_tasks`` with predictions and annotations inline. Then:

(c) floor: Label Studio's own JSON export of those tasks alone (snapshot export with full
    predictions: create, download, ``json.loads``);
(b) ours: :func:`connectors.sync.sync_project` of the project into a new dataset (first, full sync);
(a) baseline: FiftyOne 1.22.1's built-in Label Studio backend, ``load_annotations`` of the same
    tasks (annotation boxes only: it loads one field, the newest annotation). Stock FiftyOne asks for
    every task id in one GET URL; past about 1,800 tasks Label Studio answers 400 and it silently
    loads nothing. It is timed here with that call chunked (legacy ``Project.get_tasks`` patched to
    ask for 1,000 ids at a time). The run is bound to the seeded project's tasks (its upload step is
    replaced, since ``annotate`` would create a project without the experts' work). It can only
    reload everything. ``--builtin-tasks M`` times it on the first M tasks and extrapolates linearly
    (said so in the output);
(d) ours, incremental: 1% of the tasks get their annotation updated through the API, then a sync.

Last line: ``RESULT builtin_over_ours=<a/b> ours_over_export=<b/c> full_sync_s=<b> incremental_s=<d>``
(targets: a/b >= 3, b/c <= 1.5, b <= 60 s, d <= 5 s).

    python bench/sync_speed.py [--tasks 10000] [--regions 20] [--builtin-tasks N] [--changed 0.01]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DETECTOR = "nonvegetal-detector@1.0.0"
IMPORT_BATCH = 1000
CHUNK_IDS = 1000  # task ids per request in the chunked built-in fetch
ANNO_KEY = "bench"


def _private_environment(root: Path, database_uri: str) -> None:
    """A temporary HOME; FiftyOne pointed at our own mongod (before FiftyOne is imported)."""
    home = root / "home"
    home.mkdir()
    os.environ.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
            "PLANTAI_HOME": str(root / "plantai-home"),
            "FIFTYONE_DATABASE_URI": database_uri,
            "FIFTYONE_DATABASE_VALIDATION": "false",
            "FIFTYONE_DO_NOT_TRACK": "true",
        }
    )
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "LOCAL_FILES_DOCUMENT_ROOT"):
        os.environ.pop(name, None)


def _timed(what: str, run: Callable[[], Any]) -> tuple[float, Any]:
    print(f"... {what}", flush=True)
    started = time.perf_counter()
    value = run()
    seconds = time.perf_counter() - started
    print(f"    {seconds:.1f} s", flush=True)
    return seconds, value


def _boxes(rng: random.Random, classes: tuple[str, ...], n: int, prefix: str, width: int, height: int) -> list[Any]:
    results = []
    for k in range(n):
        w, h = rng.uniform(2, 12), rng.uniform(2, 12)
        results.append(
            {
                "id": f"{prefix}{k}",
                "type": "rectanglelabels",
                "from_name": "nonvegetal",
                "to_name": "image",
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": {
                    "x": rng.uniform(0, 100 - w),
                    "y": rng.uniform(0, 100 - h),
                    "width": w,
                    "height": h,
                    "rotation": 0,
                    "rectanglelabels": [rng.choice(classes)],
                },
            }
        )
    return results


def _seed(client: Any, document_root: Path, n_tasks: int, n_regions: int) -> tuple[Any, list[int]]:
    """A review project of ``n_tasks`` tasks, each with a prediction and an annotation of ``n_regions`` boxes."""
    from PIL import Image

    from connectors.projects import create_project, local_files_url
    from herbarium.taxonomy import NONVEGETAL

    folder = document_root / "bench" / "sheets"
    folder.mkdir(parents=True)
    width, height = 360, 512
    first = folder / "sheet-00000.jpg"
    Image.new("RGB", (width, height), (230, 225, 210)).save(first)
    project = create_project(client, "sync speed", folder, document_root, tasks=["detect-nonvegetal"])
    rng = random.Random(2026)
    classes = NONVEGETAL.classes
    task_ids: list[int] = []
    batch: list[dict[str, Any]] = []
    for i in range(n_tasks):
        path = folder / f"sheet-{i:05d}.jpg"
        if i:
            os.link(first, path)
        predicted = _boxes(rng, classes, n_regions, "p", width, height)
        reviewed = _boxes(rng, classes, n_regions, "e", width, height)
        data = {
            "image": local_files_url(path, document_root),
            "catalogNumber": f"BENCH{i:06d}",
            "scientificName": "Quercus robur",
            "country": "France",
        }
        batch.append(
            {
                "data": data,
                "predictions": [{"result": predicted, "model_version": DETECTOR, "score": 0.9}],
                "annotations": [{"result": reviewed, "completed_by": 1}],
            }
        )
        if len(batch) == IMPORT_BATCH or i == n_tasks - 1:
            response = client.projects.import_tasks(id=project.id, request=batch, return_task_ids=True)
            task_ids += [int(t) for t in response.task_ids or []]
            batch = []
    return project, sorted(task_ids)


def _export(client: Any, project_id: int) -> list[Any]:
    """Label Studio's snapshot JSON export with full predictions: create, wait, download, parse."""
    export = client.projects.exports.create(
        id=project_id,
        title="bench floor",
        serialization_options={
            "predictions": {"only_id": False},
            "drafts": {"only_id": True},
            "annotations__completed_by": {"only_id": True},
        },
    )
    deadline = time.monotonic() + 600
    while export.status not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        export = client.projects.exports.get(id=project_id, export_pk=export.id)
    if export.status != "completed":
        raise RuntimeError(f"export {export.id}: {export.status}")
    data = b"".join(client.projects.exports.download(id=project_id, export_pk=export.id, export_type="JSON"))
    client.projects.exports.delete(id=project_id, export_pk=export.id)
    tasks: list[Any] = json.loads(data)
    return tasks


def _chunked_get_tasks() -> Callable[[], None]:
    """Patch the legacy ``Project.get_tasks`` to ask for ``selected_ids`` 1,000 at a time; returns the undo."""
    from label_studio_sdk._legacy.project import Project

    original = Project.get_tasks

    def get_tasks(self: Any, *args: Any, selected_ids: Any = None, **kwargs: Any) -> Any:
        if not selected_ids or len(selected_ids) <= CHUNK_IDS:
            return original(self, *args, selected_ids=selected_ids, **kwargs)
        out: list[Any] = []
        for start in range(0, len(selected_ids), CHUNK_IDS):
            out += original(self, *args, selected_ids=selected_ids[start : start + CHUNK_IDS], **kwargs)
        return out

    Project.get_tasks = get_tasks

    def undo() -> None:
        Project.get_tasks = original

    return undo


def _builtin_dataset(name: str, document_root: Path, task_ids: list[int], project_id: int, url: str, token: str) -> Any:
    """A FiftyOne dataset of the tasks' images with a Label Studio annotation run bound to ``task_ids``."""
    import fiftyone as fo
    import fiftyone.utils.labelstudio as fouls

    from herbarium.taxonomy import NONVEGETAL

    folder = document_root / "bench" / "sheets"
    dataset = fo.Dataset(name)
    dataset.add_samples(
        [fo.Sample(filepath=str(folder / f"sheet-{i:05d}.jpg")) for i in range(len(task_ids))], progress=False
    )
    sample_ids = dataset.values("id")

    def bind(self: Any, samples: Any, anno_key: str, backend: Any) -> Any:
        uploaded = dict(zip(task_ids, sample_ids, strict=True))
        return fouls.LabelStudioAnnotationResults(samples, backend.config, anno_key, {}, project_id, uploaded, backend)

    upload = fouls.LabelStudioAnnotationAPI.upload_samples
    fouls.LabelStudioAnnotationAPI.upload_samples = bind
    try:
        dataset.annotate(
            ANNO_KEY,
            backend="labelstudio",
            label_field="nonvegetal",
            label_type="detections",
            classes=list(NONVEGETAL.classes),
            url=url,
            api_key=token,
        )
    finally:
        fouls.LabelStudioAnnotationAPI.upload_samples = upload
    return dataset


def _label_count(dataset: Any, field: str) -> int:
    from fiftyone import ViewField as F

    return int(dataset.sum(F(f"{field}.detections").length()) or 0)


def _check_signatures(client: Any, project_id: int, dataset: Any) -> None:
    """What the sync stored says "unchanged" for every task as Label Studio's task list shows it."""
    from connectors.sync import task_signature
    from connectors.sync.reader import TaskReader

    listing = {int(t["id"]): task_signature(t) for t in TaskReader(client, project_id).listing()}
    stored = dict(zip(*dataset.values(["ls_task_id", "ls_signature"]), strict=True))
    differ = [(task_id, stored.get(task_id), sig) for task_id, sig in listing.items() if stored.get(task_id) != sig]
    assert not differ, f"{len(differ)} stored signatures differ from the task list, e.g. {differ[:2]}"


def _update_annotations(client: Any, project_id: int, task_ids: list[int], n_regions: int) -> None:
    """Replace the annotation of each task in ``task_ids`` with new boxes, through the API (4 threads)."""
    from herbarium.taxonomy import NONVEGETAL

    def update(task_id: int) -> None:
        rng = random.Random(task_id)
        [annotation] = list(client.annotations.list(id=task_id))
        result = _boxes(rng, NONVEGETAL.classes, n_regions, "u", 360, 512)
        client.annotations.update(id=annotation.id, result=result)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(update, task_ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in the project (default 10,000)")
    parser.add_argument("--regions", type=int, default=20, help="boxes per prediction and per annotation (20)")
    parser.add_argument(
        "--builtin-tasks", type=int, default=None, help="time the built-in on the first N tasks and extrapolate"
    )
    parser.add_argument("--changed", type=float, default=0.01, help="share of tasks changed before the resync")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the full sync here")
    args = parser.parse_args()
    n_builtin = min(args.builtin_tasks or args.tasks, args.tasks)

    root = Path(tempfile.mkdtemp(prefix="plantai-sync-bench-"))
    services: list[Any] = []
    try:
        from local_services.fiftyone_db import LocalFiftyOneDatabase
        from local_services.process import free_loopback_port

        database = LocalFiftyOneDatabase(root / "fiftyone-db", port=free_loopback_port())
        _private_environment(root, database.uri)
        services.append(database)
        database.start()

        from local_services.labelstudio import LABEL_STUDIO_VERSION, LabelStudioServer, LocalLabelStudio

        document_root = root / "files"
        template = REPO_ROOT / ".cache" / f"label-studio-template-{LABEL_STUDIO_VERSION}"
        label_studio = LocalLabelStudio(
            LabelStudioServer(data_dir=root / "label-studio", document_root=document_root), template
        )
        services.append(label_studio)
        _timed(f"starting Label Studio {LABEL_STUDIO_VERSION} and mongod", label_studio.start)

        import fiftyone as fo

        from connectors.labelstudio_client import label_studio_client
        from connectors.sync import sync_project

        client = label_studio_client(label_studio.url, label_studio.token, timeout=600)
        seed_s, (project, task_ids) = _timed(
            f"seeding {args.tasks} tasks x ({args.regions} predicted + {args.regions} reviewed boxes), inline import",
            lambda: _seed(client, document_root, args.tasks, args.regions),
        )
        assert len(task_ids) == args.tasks, f"seeded {len(task_ids)} tasks"

        # (c) The floor: the tasks as Label Studio's own export gives them.
        c, exported = _timed(
            "(c) Label Studio JSON export (snapshot, full predictions)", lambda: _export(client, project.id)
        )
        assert len(exported) == args.tasks
        del exported

        # (b) Ours, first sync.
        def ours() -> Any:
            if args.profile is None:
                return sync_project(client, project.id, "ours", document_root)
            import cProfile

            profiler = cProfile.Profile()
            try:
                return profiler.runcall(sync_project, client, project.id, "ours", document_root)
            finally:
                profiler.dump_stats(str(args.profile))

        b, report = _timed("(b) ours: full sync", ours)
        ours_ds = fo.load_dataset("ours")
        assert (report.added, len(ours_ds)) == (args.tasks, args.tasks), report.as_dict()
        expected = args.tasks * args.regions
        assert _label_count(ours_ds, "ai_nonvegetal") == expected
        assert _label_count(ours_ds, "expert_nonvegetal") == expected
        _check_signatures(client, project.id, ours_ds)

        # (a) The built-in, its task fetch chunked.
        builtin = _builtin_dataset(
            "builtin", document_root, task_ids[:n_builtin], project.id, label_studio.url, label_studio.token
        )
        undo = _chunked_get_tasks()
        try:
            a_measured, _ = _timed(
                f"(a) FiftyOne built-in load_annotations, {n_builtin} tasks, fetch chunked {CHUNK_IDS} ids",
                lambda: builtin.load_annotations(
                    ANNO_KEY, url=label_studio.url, api_key=label_studio.token, unexpected="ignore", progress=False
                ),
            )
        finally:
            undo()
        loaded = _label_count(builtin, "nonvegetal")
        assert loaded == n_builtin * args.regions, f"the built-in loaded {loaded} labels"
        a = a_measured * args.tasks / n_builtin

        # (d) Ours, incremental, after 1% of the annotations changed.
        changed = random.Random(7).sample(task_ids, max(1, round(args.tasks * args.changed)))
        _timed(
            f"updating the annotations of {len(changed)} tasks through the API",
            lambda: _update_annotations(client, project.id, changed, args.regions),
        )
        d, again = _timed("(d) ours: incremental sync", lambda: sync_project(client, project.id, "ours", document_root))
        assert (again.added, again.updated, again.deleted) == (0, len(changed), 0), again.as_dict()
        assert again.fetched == len(changed), again.as_dict()

        print(
            f"machine: {os.cpu_count()} CPUs; Label Studio {LABEL_STUDIO_VERSION} (SQLite), FiftyOne {fo.__version__}"
        )
        print(
            f"project: {args.tasks} tasks x ({args.regions} predicted + {args.regions} reviewed boxes);"
            f" seeded in {seed_s:.1f} s"
        )
        print(f"(c) floor, Label Studio JSON export alone: {c:.1f} s")
        print(
            f"(b) ours, full sync: {b:.1f} s ({report.added} samples, "
            f"{2 * expected} labels in ai_nonvegetal + expert_nonvegetal)"
        )
        if n_builtin == args.tasks:
            print(
                f"(a) built-in load_annotations (stock: 0 labels past ~1,800 tasks; here its fetch chunked by "
                f"{CHUNK_IDS} ids), {args.tasks} tasks, {loaded} labels in one field: {a:.1f} s"
            )
        else:
            print(
                f"(a) built-in load_annotations (stock: 0 labels past ~1,800 tasks; here its fetch chunked by "
                f"{CHUNK_IDS} ids): measured {a_measured:.1f} s for {n_builtin} tasks ({loaded} labels); "
                f"EXTRAPOLATED linearly to {args.tasks} tasks: {a:.1f} s"
            )
        print(f"(d) ours, incremental after {len(changed)} annotations changed: {d:.2f} s")
        print(
            f"a/b = {a / b:.2f} (target >= 3); b/c = {b / c:.2f} (target <= 1.5); "
            f"b = {b:.1f} s (target <= 60); d = {d:.2f} s (target <= 5)"
        )
        print(
            f"RESULT builtin_over_ours={a / b:.3f} ours_over_export={b / c:.3f}"
            f" full_sync_s={b:.3f} incremental_s={d:.3f}"
        )
    finally:
        for service in reversed(services):
            service.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
