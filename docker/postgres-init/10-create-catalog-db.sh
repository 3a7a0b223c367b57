#!/bin/bash
# Runs once, when the postgres container starts on an empty pgdata volume (the official image's
# /docker-entrypoint-initdb.d hook). POSTGRES_DB (Label Studio's database) already exists by then;
# this adds the PlantAI model catalog's database, owned by the same user. PlantAI creates the
# catalog's tables itself (Alembic migrations, applied when the backend first opens the catalog).
#
# To add it to an existing pgdata volume (created before this script existed), run the same
# statement by hand: docker compose exec postgres createdb -U "$POSTGRES_USER" plantai_catalog
set -euo pipefail

: "${PLANTAI_CATALOG_DB:?PLANTAI_CATALOG_DB must name the catalog database}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=catalog_db="$PLANTAI_CATALOG_DB" --set=owner="$POSTGRES_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'catalog_db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'catalog_db')\gexec
SQL
