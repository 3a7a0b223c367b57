"""``plantai models`` through click's runner, on both databases (the catalog comes from the environment)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from catalog.registry import Catalog
from plantai.commands.models import models

COMMANDS = ["register", "list", "show", "promote", "rollback", "archive", "verify", "export-onnx"]


def _run(*args: Any) -> Result:
    return CliRunner().invoke(models, [str(a) for a in args])


def _json(*args: Any) -> Any:
    result = _run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_explains_with_examples(command: str | None) -> None:
    result = _run(*([command] if command else []), "--help")
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert "plantai models" in result.output


def test_a_model_lifecycle_from_the_command_line(catalog_home: Path, model_files: Any) -> None:
    metrics = json.dumps({"dataset": "synth-val-v1", "mAP50": 0.61})
    result = _run(
        "register", "sheet", "--task", "detect-nonvegetal", "--weights", model_files.detect, "--metrics", metrics
    )
    assert result.exit_code == 0, result.output
    assert "Registered sheet@1.0.0 (staging" in result.output
    second = _json(
        "register", "sheet", "--task", "detect-nonvegetal", "--weights", model_files.detect_retrained, "--promote"
    )
    assert (second["version"], second["stage"]) == ("1.1.0", "production")

    listed = _run("list")
    assert listed.exit_code == 0, listed.output
    assert "sheet" in listed.output
    assert "1.1.0" in listed.output
    [model] = _json("list")
    assert (model["name"], model["production"], model["version_count"]) == ("sheet", "1.1.0", 2)

    assert _run("promote", "sheet", "1.0.0").output.strip() == "sheet@1.0.0 is now in production"
    assert _json("rollback", "sheet")["version"] == "1.1.0"
    assert "1.0.0 archived" in _run("archive", "sheet", "1.0.0").output

    shown = _json("show", "sheet")
    assert [(v["version"], v["stage"]) for v in shown["versions"]] == [("1.0.0", "archived"), ("1.1.0", "production")]
    assert "production" in _run("show", "sheet").output
    version = _json("show", "sheet", "1.0.0")
    assert (version["metrics"], version["metrics_dataset"]) == ({"mAP50": 0.61}, "synth-val-v1")
    assert "synth-val-v1" in _run("show", "sheet", "1.0.0").output

    exported = _json("export-onnx", "sheet", "1.1.0")
    assert exported["role"] == "onnx"
    assert "All 3 artefacts intact" in _run("verify").output
    assert _json("verify") == {"ok": True, "checked": 3, "problems": []}


def test_verify_exits_non_zero_on_a_tampered_store(catalog_home: Path, model_files: Any) -> None:
    registered = _json("register", "sheet", "--task", "detect-nonvegetal", "--weights", model_files.detect)
    with Catalog.open() as catalog:
        catalog.store.path_for(registered["sha256"], "pt").write_bytes(b"tampered")
    result = _run("verify")
    assert result.exit_code == 1
    assert "1 of 1 artefacts are bad" in result.output
    assert "content changed" in result.output
    report = json.loads(_run("verify", "--json").stdout)
    assert report["ok"] is False
    assert report["problems"][0]["version"] == "1.0.0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promote", "ghost", "1.0.0"], "no model named 'ghost'"),
        (["promote", "sheet", "4.0.0"], "model 'sheet' has no version '4.0.0'"),
        (["promote", "sheet", "four"], "'four' is not a semantic version"),
        (["rollback", "sheet"], "no production version to roll back from"),
        (["show", "sheet", "9.0.0"], "no version '9.0.0'"),
        (["register", "plant", "--task", "segment-plant", "--weights", "DETECT"], "needs a segment model"),
        (
            ["register", "sheet", "--task", "detect-nonvegetal", "--weights", "DETECT", "--version", "1.0.0"],
            "already",
        ),
        (["register", "x", "--task", "detect-organs", "--weights", "DETECT"], "do not match label set 'organs'"),
        (["register", "x", "--task", "detect-nonvegetal", "--weights", "GARBAGE"], "does not load"),
        (["register", "x", "--task", "detect-nonvegetal", "--weights", "DETECT", "--metrics", "{"], "not JSON"),
        (["register", "x", "--task", "detect-nonvegetal", "--weights", "/nonexistent.pt"], "does not exist"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_non_zero_exit(
    catalog_home: Path, model_files: Any, args: list[str], message: str
) -> None:
    assert _run("register", "sheet", "--task", "detect-nonvegetal", "--weights", model_files.detect).exit_code == 0
    with Catalog.open() as catalog:
        before = (catalog.versions("sheet"), catalog.store.files())
    files = {"DETECT": model_files.detect, "GARBAGE": model_files.garbage}
    result = _run(*(files.get(a, a) for a in args))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    with Catalog.open() as catalog:
        assert (catalog.versions("sheet"), catalog.store.files()) == before
