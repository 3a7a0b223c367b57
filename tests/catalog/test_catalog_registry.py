from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from catalog.errors import (
    ArtefactError,
    CatalogError,
    DuplicateVersionError,
    InvalidMetricsError,
    InvalidNameError,
    InvalidTaskError,
    InvalidVersionError,
    InvalidWeightsError,
    LabelMismatchError,
    StageError,
    UnknownModelError,
    UnknownTrainingRunError,
    UnknownVersionError,
)
from catalog.registry import Catalog
from catalog.store import sha256_file
from herbarium.taxonomy import NONVEGETAL as NONVEGETAL_SET

NONVEGETAL = list(NONVEGETAL_SET.classes)

Snapshot = Callable[[Catalog], dict[str, Any]]


def test_register_stores_the_weights_by_content_with_their_facts(catalog: Catalog, model_files: Any) -> None:
    metrics = {"dataset": "synth-val-v1", "mAP50": 0.71, "recall": 1}
    registered = catalog.register(
        "detector", "detect-nonvegetal", model_files.detect, metrics=metrics, registered_by="ana"
    )
    assert (registered.version, registered.stage, registered.framework) == ("1.0.0", "staging", "ultralytics")
    assert registered.sha256 == sha256_file(model_files.detect)
    assert registered.size == model_files.detect.stat().st_size
    assert registered.labels == tuple(NONVEGETAL)
    assert registered.metrics == {"mAP50": 0.71, "recall": 1.0}
    assert registered.metrics_dataset == "synth-val-v1"
    assert registered.registered_by == "ana"
    stored = catalog.store.path_for(registered.sha256, "pt")
    assert stored == catalog.home / "store" / registered.sha256[:2] / f"{registered.sha256}.pt"
    assert sha256_file(stored) == registered.sha256
    assert [(a.role, a.format, a.sha256) for a in registered.artefacts] == [("weights", "pt", registered.sha256)]
    model = catalog.get("detector")
    assert (model.task, model.kind, model.production, model.latest) == (
        "detect-nonvegetal",
        "detect-nonvegetal",
        None,
        "1.0.0",
    )


def test_versions_bump_unless_given_and_keep_their_lineage(catalog: Catalog, model_files: Any) -> None:
    catalog.register("detector", "detect-nonvegetal", model_files.detect)
    catalog.register("detector", "detect-nonvegetal", model_files.detect_retrained, parent="1.0.0")
    catalog.register("detector", "detect-nonvegetal", model_files.detect, version="2.0.0-rc.1")
    catalog.register("detector", "detect-nonvegetal", model_files.detect, version="1.10.0")
    assert [v.version for v in catalog.versions("detector")] == ["1.0.0", "1.1.0", "1.10.0", "2.0.0-rc.1"]
    assert catalog.version("detector", "1.1.0").parent == "1.0.0"
    assert catalog.register("detector", "detect-nonvegetal", model_files.detect).version == "2.1.0"
    # Identical content is stored once.
    assert len(catalog.store.files()) == 2


def test_recorded_metrics_stay_apart_per_dataset(catalog: Catalog, model_files: Any) -> None:
    own = {"dataset": "synth-val-v1", "mAP50": 0.71}
    catalog.register("detector", "detect-nonvegetal", model_files.detect, metrics=own, promote=True)
    catalog.register("detector", "detect-nonvegetal", model_files.detect_retrained)  # 1.1.0, no metrics

    # Measured again on a held-out snapshot: beside the registered figures, keyed by the snapshot.
    v1 = catalog.record_metrics("detector", "1.0.0", {"mAP50": 0.4, "mAP50-95": 0.2}, dataset="detect-abc")
    assert v1.metrics == {"mAP50": 0.71, "mAP50@detect-abc": 0.4, "mAP50-95@detect-abc": 0.2}
    assert v1.metrics_dataset == "synth-val-v1"
    assert v1.metrics_on("detect-abc") == {"mAP50": 0.4, "mAP50-95": 0.2}
    assert v1.metrics_on("synth-val-v1") == {"mAP50": 0.71}
    assert v1.metrics_on("elsewhere") == {}
    assert v1.stage == "production"

    # A version without metrics takes the snapshot as its own data set.
    v2 = catalog.record_metrics("detector", "1.1.0", {"mAP50": 0.5}, dataset="detect-abc")
    assert (v2.metrics, v2.metrics_dataset) == ({"mAP50": 0.5}, "detect-abc")
    assert v2.metrics_on("detect-abc") == {"mAP50": 0.5}

    # Measured again on the same snapshot: the newer figure replaces the older, the rest stay (stored).
    catalog.record_metrics("detector", "1.0.0", {"mAP50": 0.45}, dataset="detect-abc")
    stored = catalog.version("detector", "1.0.0")
    assert stored.metrics == {"mAP50": 0.71, "mAP50@detect-abc": 0.45, "mAP50-95@detect-abc": 0.2}
    assert catalog.version("detector", "1.1.0").metrics == {"mAP50": 0.5}


def test_class_names_match_through_taxonomy_aliases(catalog: Catalog, model_files: Any) -> None:
    registered = catalog.register("aliased", "detect-nonvegetal", model_files.detect_aliased)
    assert registered.labels == tuple(NONVEGETAL)
    given = catalog.register(
        "given", "detect-nonvegetal", model_files.detect, labels=["Barcode", "note", *NONVEGETAL[2:]]
    )
    assert given.labels == tuple(NONVEGETAL)


def test_traits_known_and_new(catalog: Catalog, model_files: Any) -> None:
    known = catalog.register("margin", "classify-trait:leaf_margin", model_files.classify)
    assert (known.task, known.labels) == ("leaf_margin", ("smooth", "toothed"))
    assert catalog.get("margin").kind == "classify-trait"
    new = catalog.register("edge", "leaf_edge", model_files.classify, labels=["Entire", "Toothed"])
    assert (new.task, new.labels) == ("leaf_edge", ("entire", "toothed"))


def test_promote_rollback_archive(catalog: Catalog, model_files: Any) -> None:
    for _ in range(3):
        catalog.register("detector", "detect-nonvegetal", model_files.detect)
    catalog.promote("detector", "1.0.0")
    catalog.promote("detector", "1.1.0")
    catalog.promote("detector", "1.2.0")
    stages = {v.version: v.stage for v in catalog.versions("detector")}
    assert stages == {"1.0.0": "staging", "1.1.0": "staging", "1.2.0": "production"}
    assert catalog.rollback("detector").version == "1.1.0"
    assert catalog.rollback("detector").version == "1.0.0"
    with pytest.raises(StageError, match="no earlier production version"):
        catalog.rollback("detector")
    assert catalog.get("detector").production == "1.0.0"
    catalog.promote("detector", "1.2.0")
    catalog.archive("detector", "1.0.0")
    with pytest.raises(StageError, match="no earlier production version"):
        catalog.rollback("detector")  # 1.0.0, the only earlier one, is archived
    with pytest.raises(StageError, match=r"detector@1\.2\.0 is in production"):
        catalog.archive("detector", "1.2.0")
    actions = [(h.version, h.action) for h in catalog.history("detector")][-3:]
    assert actions == [("1.0.0", "demote"), ("1.2.0", "promote"), ("1.0.0", "archive")]
    assert sum(v.stage == "production" for v in catalog.versions("detector")) == 1


def test_register_with_promote_replaces_production(catalog: Catalog, model_files: Any) -> None:
    catalog.register("detector", "detect-nonvegetal", model_files.detect, promote=True)
    catalog.register("detector", "detect-nonvegetal", model_files.detect_retrained, promote=True)
    assert catalog.get("detector").production == "1.1.0"
    assert catalog.rollback("detector").version == "1.0.0"


def test_training_runs(catalog: Catalog, model_files: Any) -> None:
    run = catalog.create_training_run("detector", {"epochs": 3, "imgsz": 320}, "synth-v1@2026-11-01", "/logs/1.log")
    assert (run.status, run.started_at, run.finished_at) == ("queued", None, None)
    running = catalog.update_training_run(run.id, status="running")
    assert running.started_at is not None
    done = catalog.update_training_run(run.id, status="succeeded", log_path="/logs/1-final.log")
    assert done.finished_at is not None
    assert done.finished_at >= running.started_at
    assert catalog.training_run(run.id).parameters == {"epochs": 3, "imgsz": 320}
    version = catalog.register("detector", "detect-nonvegetal", model_files.detect, training_run_id=run.id)
    assert version.training_run_id == run.id
    with pytest.raises(UnknownTrainingRunError):
        catalog.update_training_run(run.id + 100, status="failed")
    with pytest.raises(CatalogError, match="training status"):
        catalog.update_training_run(run.id, status="exploded")


BadCall = Callable[[Catalog, Any], Any]

BAD_INPUTS: list[tuple[str, BadCall, type[CatalogError], str]] = [
    (
        "detect weights as segment-plant",
        lambda c, f: c.register("plant", "segment-plant", f.detect),
        InvalidWeightsError,
        "is a detect model",
    ),
    (
        "random bytes as .pt",
        lambda c, f: c.register("x", "detect-nonvegetal", f.garbage),
        InvalidWeightsError,
        "garbage.pt",
    ),
    (
        "random bytes as .onnx",
        lambda c, f: c.register("x", "detect-nonvegetal", f.garbage_onnx),
        InvalidWeightsError,
        "garbage.onnx",
    ),
    (
        "non-vegetal classes for organs",
        lambda c, f: c.register("organs", "detect-organs", f.detect),
        LabelMismatchError,
        "organs",
    ),
    (
        "labels out of order",
        lambda c, f: c.register("x", "detect-nonvegetal", f.detect, labels=[*reversed(NONVEGETAL)]),
        LabelMismatchError,
        "index order",
    ),
    (
        "new trait with too many labels",
        lambda c, f: c.register("x", "leaf_edge", f.classify, labels=["a", "b", "c"]),
        LabelMismatchError,
        "class names",
    ),
    (
        "new trait without labels",
        lambda c, f: c.register("x", "leaf_edge", f.classify),
        LabelMismatchError,
        "leaf_edge",
    ),
    (
        "duplicate version",
        lambda c, f: c.register("detector", "detect-nonvegetal", f.detect_retrained, version="1.0.0"),
        DuplicateVersionError,
        "detector",
    ),
    (
        "other task for an existing model",
        lambda c, f: c.register("detector", "leaf_margin", f.classify),
        InvalidTaskError,
        "detect-nonvegetal",
    ),
    (
        "unknown task",
        lambda c, f: c.register("x", "detect-everything", f.detect),
        InvalidTaskError,
        "detect-everything",
    ),
    (
        "bad version",
        lambda c, f: c.register("x", "detect-nonvegetal", f.detect, version="v2"),
        InvalidVersionError,
        "v2",
    ),
    ("bad name", lambda c, f: c.register("a@b", "detect-nonvegetal", f.detect), InvalidNameError, "a@b"),
    (
        "metrics without dataset",
        lambda c, f: c.register("x", "detect-nonvegetal", f.detect, metrics={"mAP50": 0.5}),
        InvalidMetricsError,
        "dataset",
    ),
    (
        "unknown parent",
        lambda c, f: c.register("detector", "detect-nonvegetal", f.detect_retrained, parent="0.9.0"),
        UnknownVersionError,
        "0.9.0",
    ),
    (
        "unknown training run (fails inside the transaction, after the copy)",
        lambda c, f: c.register("x", "detect-nonvegetal", f.detect_retrained, training_run_id=999),
        UnknownTrainingRunError,
        "999",
    ),
    ("promote unknown version", lambda c, f: c.promote("detector", "9.9.9"), UnknownVersionError, "9.9.9"),
    (
        "metrics for an unknown version",
        lambda c, f: c.record_metrics("detector", "9.9.9", {"mAP50": 0.5}, dataset="held-out"),
        UnknownVersionError,
        "9.9.9",
    ),
    (
        "a non-finite metric",
        lambda c, f: c.record_metrics("detector", "1.0.0", {"mAP50": float("nan")}, dataset="held-out"),
        InvalidMetricsError,
        "mAP50",
    ),
    (
        "metrics on no dataset",
        lambda c, f: c.record_metrics("detector", "1.0.0", {"mAP50": 0.5}, dataset=""),
        InvalidMetricsError,
        "dataset",
    ),
    (
        "no metrics to record",
        lambda c, f: c.record_metrics("detector", "1.0.0", {}, dataset="held-out"),
        InvalidMetricsError,
        "no metrics",
    ),
    (
        "a metric name with the dataset separator",
        lambda c, f: c.record_metrics("detector", "1.0.0", {"mAP50@other": 0.5}, dataset="held-out"),
        InvalidMetricsError,
        "must not contain",
    ),
    ("promote unknown model", lambda c, f: c.promote("nobody", "1.0.0"), UnknownModelError, "nobody"),
    ("rollback without history", lambda c, f: c.rollback("detector"), StageError, "detector"),
    ("archive production", lambda c, f: c.archive("detector", "1.0.0"), StageError, "in production"),
    ("export unknown version", lambda c, f: c.export_onnx("detector", "3.0.0"), UnknownVersionError, "3.0.0"),
]


@pytest.mark.parametrize(("case", "call", "error", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_and_changes_nothing(
    catalog: Catalog,
    model_files: Any,
    snapshot: Snapshot,
    case: str,
    call: BadCall,
    error: type[CatalogError],
    message: str,
) -> None:
    catalog.register("detector", "detect-nonvegetal", model_files.detect, promote=True)
    before = snapshot(catalog)
    with pytest.raises(error, match=message):
        call(catalog, model_files)
    assert snapshot(catalog) == before, case


def test_export_twice_is_refused(catalog: Catalog, model_files: Any, snapshot: Snapshot) -> None:
    catalog.register("detector", "detect-nonvegetal", model_files.detect)
    catalog.export_onnx("detector", "1.0.0")
    before = snapshot(catalog)
    with pytest.raises(ArtefactError, match="already has an ONNX artefact"):
        catalog.export_onnx("detector", "1.0.0")
    assert snapshot(catalog) == before
