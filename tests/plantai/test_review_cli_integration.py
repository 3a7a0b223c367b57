"""`plantai review send` refuses what it cannot do, before touching Label Studio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from plantai.cli import cli

pytestmark = pytest.mark.integration

LS = ["--label-studio-url", "http://127.0.0.1:9", "--api-key", "unused"]


def test_unknown_dataset_and_unknown_view_are_clear_errors(fiftyone_db: Any, tmp_path: Path) -> None:
    import fiftyone as fo

    runner = CliRunner()
    base = ["review", "send", "--project", "1", "--document-root", str(tmp_path), *LS]
    missing = runner.invoke(cli, [*base, "--dataset", "no-such-dataset"])
    assert missing.exit_code != 0
    assert "no FiftyOne dataset named 'no-such-dataset'" in missing.output

    fo.Dataset("review-cli", overwrite=True)
    unknown_view = runner.invoke(cli, [*base, "--dataset", "review-cli", "--view", "prettiest"])
    assert unknown_view.exit_code != 0
    assert "saved view 'prettiest'" in unknown_view.output
