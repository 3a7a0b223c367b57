"""Retraining's gate, lock and failure handling, on generated sheets and the tiny cached detector (no services)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import TrainingBusyError
from catalog.registry import Catalog
from herbarium.labels import LabelState
from herbarium.labels.yolo_dataset import split_specimens
from tests.training.retraining_helpers import (
    FAST,
    MODEL,
    SEED_BASE,
    catalog_with_version_1,
    shuffled_classes,
    write_sheets,
)
from training.retraining import centre_squares, corrections_from_tasks, queue_run, retrain_specimens

REPO_ROOT = Path(__file__).resolve().parents[2]


def _box_item(label: str, verdict: str | None = None, region: str = "r1") -> list[dict[str, Any]]:
    value = {"x": 10.0, "y": 10.0, "width": 20.0, "height": 10.0, "rotation": 0, "rectanglelabels": [label]}
    size = {"original_width": 400, "original_height": 600, "image_rotation": 0}
    item = {"id": region, "from_name": "nonvegetal", "to_name": "image", "type": "rectanglelabels", "value": value}
    items: list[dict[str, Any]] = [{**item, **size}]
    if verdict:
        choice = {"choices": [verdict], **{k: v for k, v in value.items() if k != "rectanglelabels"}}
        items.append(
            {"id": region, "from_name": "verdict", "to_name": "image", "type": "choices", "value": choice, **size}
        )
    return items


def _review(state: str) -> dict[str, Any]:
    return {"from_name": "review", "to_name": "image", "type": "choices", "value": {"choices": [state]}}


def test_corrections_keep_validated_sheets_with_review_states(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("a", "b", "c", "d"):
        Image.new("RGB", (400, 600), "white").save(tmp_path / f"{name}.jpg")

    def task(i: int, name: str, result: list[dict[str, Any]] | None) -> dict[str, Any]:
        annotations = [{"id": 10 + i, "result": result}] if result is not None else []
        return {"id": i, "data": {"image": f"/data/local-files/?d={name}.jpg"}, "annotations": annotations}

    tasks = [
        task(1, "a", [*_box_item("barcode"), _review("validated")]),
        task(2, "b", [*_box_item("stamp", "not a plant part"), _review("validated")]),
        task(3, "c", [*_box_item("ruler"), _review("needs work")]),
        task(4, "d", None),
    ]
    specimens = corrections_from_tasks(tasks, tmp_path)
    assert [path.name for path, _ in specimens] == ["a.jpg", "b.jpg"]
    [a_box] = specimens[0][1].boxes
    assert (a_box.label, a_box.state) == ("barcode", LabelState.CORRECTED)  # drawn by the expert
    [b_box] = specimens[1][1].boxes
    assert b_box.state == LabelState.REJECTED  # exported as a negative: the exporters drop rejected regions
    assert len(corrections_from_tasks(tasks, tmp_path, only_validated=False)) == 3


def test_classification_images_become_their_centre_square_and_originals_stay(tmp_path: Path) -> None:
    from PIL import Image

    original = tmp_path / "scan.jpg"
    sheet = Image.new("RGB", (40, 60), "white")
    sheet.paste((255, 0, 0), (0, 0, 40, 10))  # a red top band, outside the centre square
    sheet.save(original, quality=95)
    root = tmp_path / "data"
    (root / "train" / "flowering").mkdir(parents=True)
    (root / "val" / "sterile").mkdir(parents=True)
    linked = root / "train" / "flowering" / "scan.jpg"
    linked.symlink_to(original)  # how the exporter places a file it need not reduce
    Image.new("RGB", (30, 30), "white").save(root / "val" / "sterile" / "square.jpg")

    assert centre_squares(root) == 1
    assert not linked.is_symlink()
    with Image.open(linked) as cut:
        assert cut.size == (40, 40)
        assert min(cut.getpixel((20, 0))) > 200  # white: the red band was cut off
    with Image.open(original) as kept:
        assert kept.size == (40, 60)


def test_one_job_per_model_and_stale_runs_fail(tmp_path: Path) -> None:
    catalog = Catalog.open(home=tmp_path)
    first = queue_run(catalog, MODEL)
    second = queue_run(catalog, MODEL)
    other_model = queue_run(catalog, "other-model")
    assert catalog.acquire_run(first.id).status == "running"
    with pytest.raises(TrainingBusyError):
        catalog.acquire_run(second.id)
    assert catalog.training_run(second.id).status == "cancelled"
    assert catalog.acquire_run(other_model.id).status == "running"  # the lock is per model

    # A run whose process is gone (killed) is failed by the next job, which may then start.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run = catalog.training_run(first.id)
    owner = {**run.parameters["owner"], "pid": int(dead.stdout)}
    catalog.update_training_run(first.id, parameters={**run.parameters, "owner": owner})
    third = queue_run(catalog, MODEL)
    assert catalog.acquire_run(third.id).status == "running"
    assert catalog.training_run(first.id).status == "failed"
    assert "died" in catalog.training_run(first.id).parameters["reason"]
    assert catalog.recover_stale_runs() == []


@pytest.fixture(scope="module")
def sheets(trained_models: Any, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    folder = tmp_path_factory.mktemp("retrain-sheets")
    return write_sheets(folder, list(range(SEED_BASE, SEED_BASE + 24)), trained_models.width, trained_models.height)


def test_gate_refuses_a_candidate_trained_on_corrupted_labels(
    trained_models: Any, sheets: list[Any], tmp_path: Path
) -> None:
    catalog = catalog_with_version_1(tmp_path, trained_models.detect)
    # Experts' corrections of the training sheets have shuffled classes; the held-out sheets stay right.
    split = split_specimens([path.stem for path, _ in sheets], FAST.val_fraction, FAST.seed)
    corrupted = [(p, shuffled_classes(s)) if p.stem in split["train"] else (p, s) for p, s in sheets]
    result = retrain_specimens(catalog, MODEL, corrupted, settings=replace(FAST, epochs=10, margin=0.0))
    print(f"corrupted: candidate {result.candidate_score} vs production {result.production_score}")
    assert result.status == "staged"
    assert result.candidate_score is not None
    assert result.production_score is not None
    assert result.candidate_score < result.production_score
    assert catalog.version(MODEL).version == "1.0.0"  # production untouched
    staged = catalog.version(MODEL, "1.1.0")
    assert staged.stage == "staging"
    assert staged.parent == "1.0.0"
    assert staged.training_run_id == result.run_id
    run = catalog.training_run(result.run_id)
    assert run.status == "succeeded"
    assert run.parameters["outcome"] == "staged"
    assert "left in staging" in run.parameters["reason"]
    assert run.dataset_snapshot == result.snapshot == staged.metrics_dataset
    # Both versions' figures on the same held-out snapshot are on their own catalog records.
    assert staged.metrics_on(result.snapshot)["mAP50-95"] == result.candidate_score
    production = catalog.version(MODEL, "1.0.0")
    assert production.metrics_on(result.snapshot)["mAP50-95"] == result.production_score
    assert production.metrics_dataset == result.snapshot  # version 1 was registered without metrics


def test_a_failing_job_is_marked_failed_and_production_untouched(
    trained_models: Any, sheets: list[Any], tmp_path: Path
) -> None:
    catalog = catalog_with_version_1(tmp_path, trained_models.detect)

    def progress(message: str, fraction: float) -> None:
        if message.startswith("epoch 2/"):
            raise RuntimeError("simulated crash in the middle of training")

    with pytest.raises(RuntimeError, match="simulated crash"):
        retrain_specimens(catalog, MODEL, sheets, settings=FAST, progress=progress)
    [run] = [catalog.training_run(1)]
    assert run.status == "failed"
    assert "simulated crash" in run.parameters["reason"]
    assert Path(str(run.log_path)).is_file()
    assert [v.version for v in catalog.versions(MODEL)] == ["1.0.0"]
    assert catalog.version(MODEL).version == "1.0.0"


_KILLED_JOB = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from catalog.registry import Catalog
    from training.retraining import retrain_specimens
    from tests.training.retraining_helpers import FAST, MODEL, write_sheets
    from dataclasses import replace
    home, folder, width, height = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sheets = write_sheets(folder, list(range(7000, 7012)), width, height)
    retrain_specimens(Catalog.open(home=home), MODEL, sheets, settings=replace(FAST, epochs=200))
    """
)


def test_a_killed_job_is_marked_failed_and_production_untouched(trained_models: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    catalog = catalog_with_version_1(home, trained_models.detect)
    argv = [sys.executable, "-c", _KILLED_JOB, str(home), str(tmp_path / "sheets")]
    argv += [str(trained_models.width), str(trained_models.height)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:  # until the job is training (an epoch done)
            assert process.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline, "the job never started training"
            runs = [catalog.training_run(1)] if _has_run(catalog) else []
            log = Path(str(runs[0].log_path)) if runs and runs[0].log_path else None
            if log is not None and log.is_file() and "epoch 1/" in log.read_text(encoding="utf-8"):
                break
            time.sleep(0.5)
        assert catalog.training_run(1).status == "running"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert catalog.recover_stale_runs(MODEL) == [1]
    run = catalog.training_run(1)
    assert run.status == "failed"
    assert "died" in run.parameters["reason"]
    assert [v.version for v in catalog.versions(MODEL)] == ["1.0.0"]
    assert catalog.version(MODEL).stage == "production"


def _has_run(catalog: Catalog) -> bool:
    try:
        catalog.training_run(1)
    except Exception:
        return False
    return True
