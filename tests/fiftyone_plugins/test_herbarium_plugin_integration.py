"""The ``@plantai/herbarium`` FiftyOne plugin, its operators run programmatically against real datasets.

Datasets are made from generated sheets and synced from a real Label Studio (the sync operator
itself); the catalog is a real one in the session's PLANTAI_HOME, its models really trained.
"""

from __future__ import annotations

import itertools
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from connectors.projects import SpecimenTask, create_project, import_specimens
from herbarium.labels import BoxLabel, ClassificationLabel, SpecimenLabels
from herbarium.labels.labelstudio import as_labelstudio
from herbarium.synth import generate_sheet
from local_services.fiftyone_db import LocalFiftyOneDatabase
from local_services.labelstudio import LocalLabelStudio

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "@plantai/herbarium"
OLD, NEW = "nonvegetal-detector@1.0.0", "nonvegetal-detector@1.1.0"
CLASSIFIER = "phenology-classifier@2.1.0"
REGION_CONTROLS = {"region_comment": "region_comment", "comment": "comment"}
_names = itertools.count()


def _unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{id(_names)}"


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch, fiftyone_db: LocalFiftyOneDatabase) -> Any:
    """FiftyOne finds the plugin in fiftyone_plugins/ (FIFTYONE_PLUGINS_DIR)."""
    import fiftyone as fo

    monkeypatch.setattr(fo.config, "plugins_dir", str(REPO_ROOT / "fiftyone_plugins"))
    return fo


def _run(uri: str, dataset: Any, params: dict[str, Any], view: Any = None) -> Any:
    import fiftyone.operators as foo

    ctx: dict[str, Any] = {"dataset": dataset, "params": params}
    if view is not None:
        ctx["view"] = view
    result = foo.execute_operator(f"{PLUGIN}/{uri}", ctx=ctx)
    assert result.error is None, result.error_message
    return result.result


def _box(sheet: Any, k: int, label: str | None = None, verdict: str | None = None) -> BoxLabel:
    box = [b for b in sheet.labels.boxes if b.control == "nonvegetal"][k]
    return BoxLabel(
        label=label or box.label,
        control="nonvegetal",
        x=box.x,
        y=box.y,
        width=box.width,
        height=box.height,
        region_id=f"e{k}",
        attributes={"verdict": (verdict,)} if verdict else {},
    )


def _review_project(ls_client: Any, label_studio: LocalLabelStudio) -> tuple[Any, list[int], list[Any]]:
    """Five sheets: two predicted by the old detector, three by the new; four reviewed; one without catalog number."""
    root = label_studio.server.document_root
    title = _unique("plugin")
    folder = root / title / "sheets"
    folder.mkdir(parents=True)
    sheets, specimens = [], []
    for seed in range(5):
        sheet = generate_sheet(300 + seed, 360, 512)
        path = folder / f"{sheet.catalog_number}.jpg"
        sheet.image.save(path)
        sheets.append(sheet)
        specimens.append(SpecimenTask(sheet.catalog_number, path, dict(sheet.darwin_core)))
    project = create_project(ls_client, title, folder, root)
    task_ids, _ = import_specimens(ls_client, project.id, specimens[:4], root)
    # The fifth sheet's barcode was never read: its task has the image and no record.
    extra = ls_client.projects.import_tasks(
        id=project.id,
        request=[{"data": {"image": f"/data/local-files/?d={title}/sheets/{sheets[4].catalog_number}.jpg"}}],
        return_task_ids=True,
    )
    task_ids.append(int(extra.task_ids[0]))
    for i, (task_id, sheet) in enumerate(zip(task_ids, sheets, strict=True)):
        boxes = [b for b in sheet.labels.boxes if b.control == "nonvegetal"]
        ai = SpecimenLabels(width=sheet.width, height=sheet.height, labels=boxes)
        version, score = (OLD, 0.9) if i < 2 else (NEW, 0.95)
        ls_client.predictions.create(task=task_id, result=as_labelstudio(ai), model_version=version, score=score)
        phenology = ClassificationLabel(label=sheet.traits["phenology"], control="phenology")
        trait = SpecimenLabels(width=sheet.width, height=sheet.height, labels=[phenology])
        ls_client.predictions.create(
            task=task_id, result=as_labelstudio(trait), model_version=CLASSIFIER, score=0.3 if i == 1 else 0.8
        )
    # Experts: sheet 0 one box relabelled, sheet 1 one box rejected, sheets 2 and 3 all validated.
    for i in range(4):
        sheet = sheets[i]
        n = len([b for b in sheet.labels.boxes if b.control == "nonvegetal"])
        labels: list[Any] = []
        for k in range(n):
            verdict = "correct"
            label = None
            if i == 0 and k == 0:
                verdict, label = "wrong label", ("stamp" if _box(sheet, 0).label != "stamp" else "ruler")
            if i == 1 and k == 0:
                verdict = "not a plant part"
            labels.append(_box(sheet, k, label=label, verdict=verdict))
        labels.append(ClassificationLabel(label=sheet.traits["phenology"], control="phenology"))
        labels.append(ClassificationLabel(label="validated", control="review"))
        specimen = SpecimenLabels(width=sheet.width, height=sheet.height, labels=labels)
        ls_client.annotations.create(id=task_ids[i], result=as_labelstudio(specimen, default_controls=REGION_CONTROLS))
    return project, task_ids, sheets


def test_plugin_declares_its_operators_panel_and_secrets(plugin: Any) -> None:
    import fiftyone.operators as foo
    import fiftyone.plugins as fop
    import yaml

    declared = yaml.safe_load((REPO_ROOT / "fiftyone_plugins" / "herbarium" / "fiftyone.yml").read_text())
    assert declared["secrets"] == ["LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"]
    assert PLUGIN in [p.name for p in fop.list_plugins()]
    found = {op.uri for op in foo.list_operators(enabled=True)}
    for name in [*declared["operators"], *declared["panels"]]:
        assert f"{PLUGIN}/{name}" in found


def test_sync_search_saved_views_send_export_and_dashboard(
    plugin: Any,
    label_studio: LocalLabelStudio,
    ls_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import fiftyone as fo

    from connectors.search import SAVED_VIEWS, dashboard
    from fiftyone_plugins.herbarium.figures import dashboard_figures

    root = label_studio.server.document_root
    project, task_ids, sheets = _review_project(ls_client, label_studio)
    # The plugin's secrets, as FiftyOne resolves them (from the environment).
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    name = _unique("plugin-ds")

    # Sync (the operator needs no dataset of its own: it makes one).
    holder = fo.Dataset(_unique("holder"))
    synced = _run("sync_from_label_studio", holder, {"project_id": project.id, "dataset_name": name,
                                                     "document_root": str(root)})  # fmt: skip
    assert synced["added"] == 5
    dataset = fo.load_dataset(name)
    assert len(dataset) == 5
    indexes = set(dataset.list_indexes())
    for field in ("scientificName", "family", "institutionCode", "recordedBy", "country", "eventDate",
                  "ai_model_versions", "review_state"):  # fmt: skip
        assert field in indexes
    assert set(SAVED_VIEWS) <= set(dataset.list_saved_views())

    # Saved views, loaded as the App loads them.
    def ids(view: Any) -> list[int]:
        return sorted(view.values("ls_task_id"))

    assert ids(dataset.load_saved_view("not-yet-reviewed")) == [task_ids[4]]
    assert ids(dataset.load_saved_view("ai-and-expert-disagree")) == task_ids[:2]
    assert ids(dataset.load_saved_view("low-confidence")) == [task_ids[1]]
    flowering = sorted(t for t, s in zip(task_ids, sheets, strict=True) if s.traits["phenology"] == "flowering")
    assert ids(dataset.load_saved_view("flowering-specimens")) == flowering
    assert ids(dataset.load_saved_view("barcode-not-read")) == [task_ids[4]]

    # Search: metadata + AI label, metadata + model version, expert label.
    family = sheets[2].darwin_core["family"]
    year = int(sheets[2].darwin_core["eventDate"][:4])
    found = _run("search_specimens", dataset, {"family": family, "year": year, "label": "barcode",
                                               "label_source": "ai", "min_confidence": 0.5})  # fmt: skip
    expected = [
        s.catalog_number
        for s in sheets[:4]
        if s.darwin_core["family"] == family and s.darwin_core["eventDate"].startswith(str(year))
    ]
    assert found["count"] == len(expected) >= 1
    by_version = _run("search_specimens", dataset, {"model_version": OLD})
    assert by_version["count"] == 2
    relabelled = [d.label for d in dataset.match({"ls_task_id": task_ids[0]}).first().expert_nonvegetal.detections]
    assert _run("search_specimens", dataset, {"label": relabelled[0], "label_source": "expert"})["count"] >= 1

    # Send the unreviewed and the disagreeing specimens to a second project: tasks with predictions, once.
    other = create_project(ls_client, _unique("second"), root / project.title / "sheets", root)
    view = dataset.match({"ls_task_id": {"$in": [task_ids[0], task_ids[2]]}})
    sent = _run("send_view_for_review", dataset, {"project_id": other.id, "document_root": str(root)}, view=view)
    assert sent["created"] == 2
    assert sent["skipped"] == []
    tasks = list(ls_client.tasks.list(project=other.id, fields="all"))
    assert sorted(t.data["catalogNumber"] for t in tasks) == sorted([sheets[0].catalog_number,
                                                                    sheets[2].catalog_number])  # fmt: skip
    versions = sorted(p.model_version for t in tasks for p in t.predictions)
    assert versions == sorted([OLD, CLASSIFIER, NEW, CLASSIFIER])
    assert all(t.data["scientificName"] for t in tasks)
    again = _run("send_view_for_review", dataset, {"project_id": other.id, "document_root": str(root)}, view=view)
    assert again["created"] == 0
    assert sorted(again["skipped"]) == sorted([sheets[0].catalog_number, sheets[2].catalog_number])
    own = _run("send_view_for_review", dataset, {"project_id": project.id, "document_root": str(root)}, view=view)
    assert own["created"] == 0
    assert len(list(ls_client.tasks.list(project=other.id))) == 2

    # Exports of the reviewed view.
    reviewed = dataset.match({"review_state": "validated"})
    dwca = _run("export_view", dataset, {"format": "dwca", "out_dir": str(tmp_path / "dwca")}, view=reviewed)
    with zipfile.ZipFile(dwca["path"]) as archive:
        names = archive.namelist()
        assert "meta.xml" in names
        assert any("measurement" in n.lower() for n in names)
    assert dwca["specimens"] == 4
    coco = _run("export_view", dataset, {"format": "coco", "out_dir": str(tmp_path / "coco")}, view=reviewed)
    annotations = json.loads(Path(coco["path"]).read_text())["annotations"]
    validated = sum(
        1
        for s in reviewed.iter_samples()
        for d in s.expert_nonvegetal.detections
        if d.state in ("validated", "corrected")
    )
    assert len(annotations) == validated
    yolo = _run("export_view", dataset, {"format": "yolo", "out_dir": str(tmp_path / "yolo")}, view=reviewed)
    assert Path(yolo["path"]).is_file()

    # Dashboard: FiftyOne's evaluation per model version, rates, change between versions.
    stats = dashboard([name])
    assert stats["totals"]["specimens"] == 5
    assert stats["totals"]["reviewed"] == 4
    assert sum(stats["totals"]["by_institution"].values()) == 4
    rows = {(a["model_version"], a["control"]): a for a in stats["agreement"]}
    assert set(rows) >= {(OLD, "nonvegetal"), (NEW, "nonvegetal"), (CLASSIFIER, "phenology")}
    old, new = rows[(OLD, "nonvegetal")], rows[(NEW, "nonvegetal")]
    assert (old["samples"], new["samples"]) == (2, 2)
    assert (old["corrected"], old["rejected"]) == (1, 1)
    assert (new["corrected"], new["rejected"]) == (0, 0)
    assert new["metrics"]["mAP"] == pytest.approx(1.0, abs=0.02)
    assert new["metrics"]["precision"] == pytest.approx(1.0)
    assert old["metrics"]["precision"] < 1.0
    assert old["rejection_rate"] > 0
    phenology = rows[(CLASSIFIER, "phenology")]
    assert phenology["metrics"]["accuracy"] == pytest.approx(1.0)
    assert (phenology["samples"], phenology["corrected"], phenology["correction_rate"]) == (4, 0, 0.0)
    [change] = [c for c in stats["version_changes"] if c["control"] == "nonvegetal"]
    assert (change["from"], change["to"]) == (OLD, NEW)
    assert change["delta"]["precision"] > 0
    figures = dashboard_figures(stats)
    assert {"summary", "by_taxon", "by_institution", "by_year", "labels_per_class", "agreement_by_version"} <= set(
        figures
    )

    # A new AI field from a later sync is found by search and the views with no manual step.
    organs = SpecimenLabels(
        width=sheets[3].width,
        height=sheets[3].height,
        labels=[b for b in sheets[3].labels.boxes if b.control == "organs"][:2],
    )
    ls_client.predictions.create(
        task=task_ids[3], result=as_labelstudio(organs), model_version="organ-detector@0.3.0", score=0.2
    )
    _run("sync_from_label_studio", holder, {"project_id": project.id, "dataset_name": name,
                                            "document_root": str(root)})  # fmt: skip
    assert task_ids[3] in ids(dataset.load_saved_view("low-confidence"))
    assert _run("search_specimens", dataset, {"model_version": "organ-detector@0.3.0"})["count"] == 1
    assert "organ-detector@0.3.0" in dashboard([name], evaluate=False)["datasets"][0]["model_versions"]


def test_annotate_with_a_catalog_model_then_promote_and_roll_back(
    plugin: Any, trained_models: Any, tmp_path: Path
) -> None:
    import fiftyone as fo

    from catalog.registry import Catalog

    model = _unique("detector").replace("-", "_")
    with Catalog.open() as catalog:
        first = catalog.register(model, "detect-nonvegetal", trained_models.detect, version="1.0.0", promote=True)
        second = catalog.register(model, "detect-nonvegetal", trained_models.detect, version="1.1.0")
    folder = tmp_path / "sheets"
    folder.mkdir()
    samples = []
    for seed in trained_models.val_seeds[:3]:
        sheet = generate_sheet(seed, trained_models.width, trained_models.height)
        path = folder / f"{sheet.catalog_number}.jpg"
        sheet.image.save(path)
        samples.append(fo.Sample(filepath=str(path), **dict(sheet.darwin_core)))
    dataset = fo.Dataset(_unique("annotate"))
    dataset.add_samples(samples)

    result = _run("annotate_with_model", dataset, {"model": model, "batch_size": 2, "confidence": 0.1})
    assert result["model_version"] == first.ref
    assert result["samples"] == 3
    assert result["labels"] > 0
    dataset.reload()
    assert dataset.distinct("ai_nonvegetal.detections.source") == [first.ref]
    assert dataset.distinct("ai_nonvegetal.detections.state") == ["predicted"]
    assert all(v == [first.ref] for v in dataset.values("ai_model_versions"))
    assert _run("search_specimens", dataset, {"model_version": first.ref})["count"] == 3
    assert "low-confidence" in dataset.list_saved_views()  # refreshed after annotating

    promoted = _run("promote_model", dataset, {"model": model, "version": second.version})
    assert (promoted["version"], promoted["stage"]) == ("1.1.0", "production")
    rolled = _run("rollback_model", dataset, {"model": model})
    assert (rolled["version"], rolled["stage"]) == ("1.0.0", "production")
    with Catalog.open() as catalog:
        assert catalog.get(model).production == "1.0.0"
