"""Alembic environment of the catalog: runs on the connection Catalog.open() passes, else on the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from catalog.database import create_catalog_engine, default_catalog_url
from catalog.schema import Base
from herbarium.settings import plantai_home

# Any constant works: it only has to be the same in every process migrating this database.
_PG_MIGRATION_LOCK = 7_302_115


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes opening a fresh catalog at once must not both create the tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        context.run_migrations()


def run_migrations_online() -> None:
    passed = context.config.attributes.get("connection")
    if passed is not None:
        _run(passed)
        return
    url = context.config.get_main_option("sqlalchemy.url") or default_catalog_url(plantai_home())
    engine = create_catalog_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("the catalog's migrations run online only (they need the database)")
run_migrations_online()
