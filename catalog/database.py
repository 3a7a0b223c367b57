"""Where the catalog's database lives, how to connect to it, and bringing its schema to head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from catalog.errors import CatalogConfigError
from herbarium.settings import configured, sqlite_catalog_url

SQLITE_BUSY_TIMEOUT_S = 30
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"


def default_catalog_url(home: Path) -> str:
    """``$PLANTAI_CATALOG_URL``, else SQLite at ``<home>/catalog.db``."""
    return configured("PLANTAI_CATALOG_URL") or sqlite_catalog_url(home)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _on_sqlite_begin(connection: Any) -> None:
    # Take the write lock up front: a deferred transaction that later upgrades to a writer
    # fails with "database is locked" instead of waiting when another process wrote meanwhile.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_catalog_engine(url: str) -> Engine:
    """An engine for SQLite (WAL, busy timeout, serialised writers) or PostgreSQL (psycopg 3)."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise CatalogConfigError(f"catalog URL {url!r} is not a database URL: {error}") from error
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise CatalogConfigError(
        f"catalog URL {parsed.render_as_string(hide_password=True)!r}: only sqlite:/// and postgresql+psycopg:// work"
    )


def alembic_config(url: str | None = None) -> Config:
    """Alembic's configuration for the catalog, built in code (``catalog/alembic.ini`` says the same)."""
    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Apply every pending migration, in one transaction per run (DDL is transactional on both backends)."""
    config = alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
