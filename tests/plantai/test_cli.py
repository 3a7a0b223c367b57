from __future__ import annotations

import json

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
