"""Review projects in a real Label Studio: config accepted, images served, specimens not duplicated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.projects import ProjectError, SpecimenTask, create_project, import_specimens
from herbarium.synth import generate_sheet
from local_services.labelstudio import LocalLabelStudio

pytestmark = pytest.mark.integration


def test_specimens_become_tasks_once_with_their_record_and_a_served_image(
    label_studio: LocalLabelStudio, ls_client: Any
) -> None:
    root = label_studio.server.document_root
    folder = root / "projects-it" / "collection A"
    folder.mkdir(parents=True, exist_ok=True)
    specimens = []
    for seed in (1, 2):
        sheet = generate_sheet(seed, 400, 580)
        path = folder / f"{sheet.catalog_number}.jpg"
        sheet.image.save(path)
        specimens.append(
            SpecimenTask(sheet.catalog_number, path, {"scientificName": sheet.darwin_core["scientificName"]})
        )

    project = create_project(ls_client, "projects it", folder, root)
    new_ids, skipped = import_specimens(ls_client, project.id, specimens, root)
    assert len(new_ids) == 2
    assert skipped == []
    again_ids, again_skipped = import_specimens(ls_client, project.id, specimens, root)
    assert again_ids == []
    assert sorted(again_skipped) == sorted(s.catalog_number for s in specimens)

    task = ls_client.tasks.get(id=new_ids[0])
    assert task.data["catalogNumber"] == specimens[0].catalog_number
    assert task.data["scientificName"] == specimens[0].record["scientificName"]
    served = requests.get(
        f"{label_studio.url}{task.data['image']}", headers={"Authorization": f"Token {label_studio.token}"}, timeout=10
    )
    assert served.status_code == 200
    assert served.content == specimens[0].image.read_bytes()


def test_images_outside_the_document_root_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="not under LOCAL_FILES_DOCUMENT_ROOT"):
        create_project(None, "outside", tmp_path / "images", tmp_path / "root")  # refused before any request


def test_projects_cli_creates_lists_reports_status_and_invites(
    label_studio: LocalLabelStudio, ls_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from click.testing import CliRunner

    from plantai.cli import cli

    root = label_studio.server.document_root
    folder = root / "projects-cli"
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    monkeypatch.setenv("LOCAL_FILES_DOCUMENT_ROOT", str(root))
    runner = CliRunner()

    created = runner.invoke(cli, ["projects", "create", "--title", "cli project", "--images", str(folder), "--json"])
    assert created.exit_code == 0, created.output
    project = json.loads(created.output)["id"]
    sheet = generate_sheet(5, 400, 580)
    sheet.image.save(folder / "s.jpg")
    [task_id], _ = import_specimens(ls_client, project, [SpecimenTask("X1", folder / "s.jpg", {})], root)
    ls_client.predictions.create(task=task_id, result=[], model_version="nonvegetal-detector@1.0.0", score=0.5)

    listed = runner.invoke(cli, ["projects", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {"id": project, "title": "cli project"}.items() <= next(
        row for row in json.loads(listed.output) if row["id"] == project
    ).items()

    state = runner.invoke(cli, ["projects", "status", "--project", str(project), "--json"])
    assert state.exit_code == 0, state.output
    report = json.loads(state.output)
    assert (report["tasks"], report["predicted"], report["reviewed"]) == (1, 1, 0)
    assert report["predictions_by_version"] == {"nonvegetal-detector@1.0.0": 1}

    link = runner.invoke(cli, ["projects", "invite"])
    assert link.exit_code == 0, link.output
    assert link.output.strip().startswith(f"{label_studio.url}/user/signup/?token=")


def test_project_over_a_folder_outside_the_document_root_is_refused(
    label_studio: LocalLabelStudio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from plantai.cli import cli

    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    result = CliRunner().invoke(
        cli,
        [
            "projects",
            "create",
            "--title",
            "x",
            "--images",
            str(tmp_path),
            "--document-root",
            str(label_studio.server.document_root),
        ],
    )
    assert result.exit_code != 0
    assert "not under LOCAL_FILES_DOCUMENT_ROOT" in result.output
