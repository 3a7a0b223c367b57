from __future__ import annotations

from pathlib import Path

import pytest

from herbarium.settings import (
    SETTINGS,
    UnknownSettingError,
    configured,
    declaration,
    document_root,
    plantai_home,
    real_samples_dir,
    retrain_every,
    setting,
)

MUST_DECLARE = (
    "LABEL_STUDIO_URL",
    "LABEL_STUDIO_API_KEY",
    "LOCAL_FILES_DOCUMENT_ROOT",
    "PLANTAI_CATALOG_URL",
    "PLANTAI_HOME",
    "PLANTAI_REAL_SAMPLES",
    "PLANTAI_RETRAIN_EVERY",
    "DEMO_IMAGES",
)


def test_every_setting_is_declared_once_with_help() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert set(MUST_DECLARE) <= set(names)
    assert all(s.help.strip() for s in SETTINGS)
    assert [s.name for s in SETTINGS if s.secret] == ["LABEL_STUDIO_API_KEY", "BASIC_AUTH_PASS"]


def test_an_undeclared_name_is_refused() -> None:
    with pytest.raises(UnknownSettingError, match="'LABEL_STUDIO_TOKEN' is not a PlantAI setting"):
        setting("LABEL_STUDIO_TOKEN")
    with pytest.raises(KeyError):
        configured("PATH")
    with pytest.raises(UnknownSettingError):
        declaration("plantai_home")


def test_the_environment_value_wins_over_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTAI_RETRAIN_EVERY", "25")
    assert setting("PLANTAI_RETRAIN_EVERY") == configured("PLANTAI_RETRAIN_EVERY") == "25"
    assert retrain_every() == 25


@pytest.mark.parametrize("value", [None, ""])
def test_unset_or_empty_takes_the_default(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    for name in ("PLANTAI_RETRAIN_EVERY", "LABEL_STUDIO_URL"):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert configured("PLANTAI_RETRAIN_EVERY") is None
    assert setting("PLANTAI_RETRAIN_EVERY") == "0"
    assert retrain_every() == 0
    assert setting("LABEL_STUDIO_URL") is None


def test_computed_defaults_follow_plantai_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PLANTAI_HOME", str(tmp_path))
    monkeypatch.delenv("PLANTAI_CATALOG_URL", raising=False)
    monkeypatch.delenv("YOLO_CONFIG_DIR", raising=False)
    assert plantai_home() == tmp_path
    assert setting("PLANTAI_CATALOG_URL") == f"sqlite:///{tmp_path / 'catalog.db'}"
    assert configured("PLANTAI_CATALOG_URL") is None
    assert setting("YOLO_CONFIG_DIR") == str(tmp_path / "ultralytics")


def test_plantai_home_defaults_to_the_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PLANTAI_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert plantai_home() == tmp_path / "plantai"
    monkeypatch.setenv("PLANTAI_HOME", "~/elsewhere")
    assert plantai_home() == Path.home() / "elsewhere"


def test_path_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LOCAL_FILES_DOCUMENT_ROOT", raising=False)
    monkeypatch.delenv("PLANTAI_REAL_SAMPLES", raising=False)
    assert document_root() is None
    assert real_samples_dir() is None
    monkeypatch.setenv("LOCAL_FILES_DOCUMENT_ROOT", str(tmp_path))
    monkeypatch.setenv("PLANTAI_REAL_SAMPLES", str(tmp_path / "samples"))
    assert document_root() == tmp_path
    assert real_samples_dir() == tmp_path / "samples"
