from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError

from catalog.database import ALEMBIC_INI, alembic_config, create_catalog_engine, default_catalog_url
from catalog.registry import Catalog
from catalog.schema import Base, ModelVersion

REPO_ROOT = Path(__file__).resolve().parents[2]


def _schema_diff(url: str) -> list[object]:
    engine = create_catalog_engine(url)
    try:
        with engine.connect() as connection:
            return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))
    finally:
        engine.dispose()


def test_opening_migrates_an_empty_database_to_the_orm_schema(catalog: Catalog) -> None:
    assert _schema_diff(catalog.engine.url.render_as_string(hide_password=False)) == []
    with catalog.engine.connect() as connection:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert revision == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_alembic_command_line_upgrades_the_configured_catalog(catalog_home: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "alembic"), "-c", str(ALEMBIC_INI), "upgrade", "head"],
        cwd=REPO_ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert _schema_diff(default_catalog_url(catalog_home)) == []


def test_the_database_itself_refuses_a_second_production_version(catalog: Catalog, model_files: Any) -> None:
    catalog.register("detector", "detect-nonvegetal", model_files.detect, promote=True)
    catalog.register("detector", "detect-nonvegetal", model_files.detect_retrained)
    with pytest.raises(IntegrityError), catalog.engine.begin() as connection:
        connection.execute(update(ModelVersion).where(ModelVersion.version == "1.1.0").values(stage="production"))
    assert [v.stage for v in catalog.versions("detector")] == ["production", "staging"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(catalog: Catalog) -> None:
    with catalog.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 10_000
    assert (catalog.home / "catalog.db").is_file()
