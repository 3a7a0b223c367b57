from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from plantai.cli import cli


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import click

    found = [prefix]
    if isinstance(group, click.Group):
        for name, command in group.commands.items():
            found += _commands(command, (*prefix, name))
    return found


@pytest.mark.parametrize("path", _commands(cli))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert len(result.output.splitlines()) > 3


def test_taxonomy_json_lists_every_set() -> None:
    result = CliRunner().invoke(cli, ["taxonomy", "--json"])
    assert result.exit_code == 0, result.output
    sets = {s["name"]: s for s in json.loads(result.output)}
    assert sets["organs"]["classes"] == ["leaf", "flower", "fruit", "seed", "stem", "root"]
    assert sets["nonvegetal"]["aliases"]["colorcard"] == "colour_chart"


def test_info_reports_the_pinned_stack() -> None:
    result = CliRunner().invoke(cli, ["info", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["stack"]["label-studio"] == "1.23.2"
    assert report["stack"]["fiftyone"] == "1.22.1"
    assert report["plantai_home"]


def test_info_lists_every_setting_and_never_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from herbarium.settings import SETTINGS

    token = "tok-0123456789abcdef0123456789abcdef0123"
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    monkeypatch.setenv("LOCAL_FILES_DOCUMENT_ROOT", "/srv/scans")
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    result = CliRunner().invoke(cli, ["info", "--json"])
    assert result.exit_code == 0, result.output
    assert token not in result.output
    listed = {s["name"]: s for s in json.loads(result.output)["settings"]}
    assert list(listed) == [s.name for s in SETTINGS]
    assert listed["LOCAL_FILES_DOCUMENT_ROOT"]["value"] == "/srv/scans"
    assert listed["LABEL_STUDIO_API_KEY"]["value"] == "set"
    assert listed["LABEL_STUDIO_URL"]["value"] is None
    assert listed["PLANTAI_RETRAIN_EVERY"]["default"] == "0"
    assert all(s["help"] for s in listed.values())

    table = CliRunner().invoke(cli, ["info"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert token not in table.output
    [key_row] = [line for line in table.output.splitlines() if "LABEL_STUDIO_API_KEY" in line and "│" in line]
    assert "│ set " in key_row
    assert "/srv/scans" in table.output
    for declared in SETTINGS:
        assert declared.name in table.output


def test_setting_options_name_their_variable_in_help() -> None:
    result = CliRunner().invoke(cli, ["sync", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("LOCAL_FILES_DOCUMENT_ROOT", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        assert f"[{name}]" in result.output


def test_required_setting_options_fail_when_neither_flag_nor_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    result = CliRunner().invoke(cli, ["sync", "--project", "1"])
    assert result.exit_code == 2
    assert "Missing option '--label-studio-url'" in result.output
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:1")
    result = CliRunner().invoke(cli, ["sync", "--project", "1"])
    assert result.exit_code == 2
    assert "Missing option '--api-key'" in result.output


def test_setting_options_fall_back_on_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOCAL_FILES_DOCUMENT_ROOT", str(tmp_path / "missing"))
    args = ["review", "send", "--dataset", "d", "--project", "1", "--label-studio-url", "u", "--api-key", "k"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "'--document-root'" in result.output
    assert "does not exist" in result.output
    monkeypatch.delenv("LOCAL_FILES_DOCUMENT_ROOT")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "Missing option '--document-root'" in result.output
