"""Each local Label Studio data dir has its own SECRET_KEY, made on first start, private, and kept."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from local_services.labelstudio import (
    SECRET_KEY_FILE,
    LabelStudioAccount,
    LabelStudioServer,
    LocalLabelStudio,
    copy_template,
    label_studio_env,
    secret_key,
)
from local_services.process import ServiceStartError

ACCOUNT = LabelStudioAccount()


def _fake_template(template_dir: Path) -> str:
    """A template as ``build_template`` leaves it (``label-studio init`` ran with this env); returns its key."""
    key = label_studio_env(template_dir, ACCOUNT)["SECRET_KEY"]
    (template_dir / "label_studio.sqlite3").write_bytes(b"migrated")
    (template_dir / ".plantai-template").write_text("label-studio\n", encoding="utf-8")
    return key


def test_each_data_dir_gets_its_own_key_and_keeps_it(tmp_path: Path) -> None:
    first = label_studio_env(tmp_path / "one", ACCOUNT)["SECRET_KEY"]
    second = label_studio_env(tmp_path / "two", ACCOUNT)["SECRET_KEY"]

    assert first != second
    assert len(first) >= 50
    assert len(second) >= 50
    assert "plantai-local-label-studio" not in (first, second)
    assert label_studio_env(tmp_path / "one", ACCOUNT, tmp_path / "files")["SECRET_KEY"] == first  # a later start
    assert secret_key(tmp_path / "two") == second
    assert (tmp_path / "one" / SECRET_KEY_FILE).read_text(encoding="utf-8").strip() == first


def test_the_key_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0)  # the mode must not depend on the caller's umask
    try:
        secret_key(tmp_path / "data")
    finally:
        os.umask(previous)

    mode = (tmp_path / "data" / SECRET_KEY_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert [p.name for p in (tmp_path / "data").iterdir()] == [SECRET_KEY_FILE]  # no staging file left


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    for round_ in range(20):
        data_dir = tmp_path / f"data-{round_}"
        with ThreadPoolExecutor(max_workers=8) as pool:
            keys = set(pool.map(secret_key, [data_dir] * 8))
        assert keys == {(data_dir / SECRET_KEY_FILE).read_text(encoding="utf-8").strip()}
        assert [p.name for p in data_dir.iterdir()] == [SECRET_KEY_FILE]


def test_a_copy_of_the_template_does_not_keep_the_templates_key(tmp_path: Path) -> None:
    template = tmp_path / "template"
    template_key = _fake_template(template)
    (template / f"{SECRET_KEY_FILE}.1234.leftover").write_text("half-written\n", encoding="utf-8")

    copy_template(template, tmp_path / "data")

    assert (tmp_path / "data" / "label_studio.sqlite3").read_bytes() == b"migrated"
    assert not (tmp_path / "data" / SECRET_KEY_FILE).exists()
    assert not (tmp_path / "data" / f"{SECRET_KEY_FILE}.1234.leftover").exists()
    assert secret_key(tmp_path / "data") != template_key
    assert secret_key(template) == template_key  # the template keeps its own


def test_servers_started_from_one_template_each_have_their_own_key(tmp_path: Path) -> None:
    template = tmp_path / "template"
    template_key = _fake_template(template)

    def launched_key(name: str) -> str:
        server = LabelStudioServer(data_dir=tmp_path / name, document_root=tmp_path / "files", port=1)
        process = LocalLabelStudio(server, template).launch()  # the process is made, not started
        return process.env["SECRET_KEY"]

    first, second = launched_key("one"), launched_key("two")

    assert len({template_key, first, second}) == 3
    assert launched_key("one") == first  # a restart on the same data dir
    assert (tmp_path / "one" / "label_studio.sqlite3").exists()


def test_an_empty_key_file_is_an_error_not_an_empty_key(tmp_path: Path) -> None:
    (tmp_path / SECRET_KEY_FILE).write_text("\n", encoding="utf-8")

    with pytest.raises(ServiceStartError, match="holds no secret key"):
        secret_key(tmp_path)
