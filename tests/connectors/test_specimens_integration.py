"""`plantai specimens import` against a real Label Studio: a Darwin Core Archive becomes tasks, once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from connectors.dwca_writer import write_dwca
from connectors.projects import create_project
from herbarium.synth import write_sheets
from local_services.labelstudio import LocalLabelStudio
from plantai.cli import cli

pytestmark = pytest.mark.integration


def test_an_archive_is_imported_once_with_records_and_served_images(
    label_studio: LocalLabelStudio, ls_client: Any, tmp_path: Path
) -> None:
    manifest = write_sheets(tmp_path / "sheets", n=3, size=800, seed=70)
    archive = write_dwca(manifest.root, tmp_path / "herbarium-it.zip")
    root = label_studio.server.document_root
    extracted = root / "herbarium-it"  # where the command extracts it by default: DOCUMENT_ROOT/<archive name>
    extracted.mkdir(parents=True, exist_ok=True)
    project = create_project(ls_client, "specimens import it", extracted, root)
    args = ["specimens", "import", str(archive), "--project", str(project.id), "--document-root", str(root)]
    args += ["--label-studio-url", label_studio.url, "--api-key", label_studio.token, "--json"]

    first = CliRunner().invoke(cli, args)

    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert report["imported"] == 3
    assert report["already_present"] == []
    tasks = list(ls_client.tasks.list(project=project.id, fields="all"))
    by_number = {task.data["catalogNumber"]: task for task in tasks}
    assert sorted(by_number) == sorted(s.catalog_number for s in manifest.sheets)
    for sheet in manifest.sheets:
        data = by_number[sheet.catalog_number].data
        assert data["scientificName"] == sheet.darwin_core["scientificName"]
        assert data["locality"] == sheet.darwin_core["locality"]
        served = requests.get(
            f"{label_studio.url}{data['image']}", headers={"Authorization": f"Token {label_studio.token}"}, timeout=10
        )
        assert served.status_code == 200
        assert served.content == (manifest.root / sheet.image).read_bytes()

    again = CliRunner().invoke(cli, args)

    assert again.exit_code == 0, again.output
    rerun = json.loads(again.output)
    assert rerun["imported"] == 0
    assert sorted(rerun["already_present"]) == sorted(by_number)
    assert len(list(ls_client.tasks.list(project=project.id, fields="all"))) == 3
