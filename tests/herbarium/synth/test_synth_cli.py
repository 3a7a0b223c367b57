"""``plantai synth`` through click's test runner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from herbarium.synth import load_manifest
from plantai.commands.synth import synth


def test_synth_json_writes_files_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "tmp"
    result = CliRunner().invoke(synth, ["--n", "3", "--size", "600", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["sheets"], summary["width"], summary["height"], summary["seed"]) == (3, 414, 600, 0)
    assert summary["sheets_per_s"] > 0
    assert Path(summary["manifest"]) == out / "manifest.json"
    assert len(list((out / "images").glob("*.jpg"))) == 3
    assert len(list((out / "masks").glob("*.png"))) == 3
    manifest = load_manifest(out)
    assert [s.seed for s in manifest.sheets] == [0, 1, 2]
    assert sum(len(s.instance_masks) for s in manifest.sheets) == len(list((out / "instance-masks").glob("*.png")))
    for record in manifest.sheets:
        assert (out / record.image).is_file()
        assert record.boxes


def test_synth_human_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(synth, ["--n", "2", "--size", "353x512", "--out", str(tmp_path), "--seed", "9"])
    assert result.exit_code == 0, result.output
    assert "Wrote 2 sheets of 353x512 px" in result.output
    assert "sheets/s" in result.output
    assert str(tmp_path / "manifest.json") in result.output


def test_synth_rejects_bad_size_and_count(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_size = runner.invoke(synth, ["--n", "1", "--size", "100", "--out", str(tmp_path)])
    assert bad_size.exit_code == 2
    assert "--size" in bad_size.output
    assert "long side" in bad_size.output
    bad_n = runner.invoke(synth, ["--n", "0", "--out", str(tmp_path)])
    assert bad_n.exit_code == 2
    assert "--n" in bad_n.output
    assert "1 to 100000" in bad_n.output
    assert not (tmp_path / "manifest.json").exists()


def test_synth_help() -> None:
    result = CliRunner().invoke(synth, ["--help"])
    assert result.exit_code == 0
    for text in ("--n", "--size", "--out", "--seed", "--json", "WIDTHxHEIGHT", "occurrence.csv"):
        assert text in result.output
