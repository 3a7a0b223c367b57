"""Test session set-up: a private HOME, and real local services as session fixtures.

Environment is fixed in ``pytest_configure`` because FiftyOne and Ultralytics read it when
first imported. Services start only when a test asks for them, and stop by PID at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from local_services.fiftyone_db import LocalFiftyOneDatabase
from local_services.labelstudio import LABEL_STUDIO_VERSION, LabelStudioServer, LocalLabelStudio
from local_services.process import free_loopback_port

# Tiny models trained on generated sheets (cached in .cache/test-models) and real backend servers.
pytest_plugins = [
    "tests.fixtures.trained_models",
    "tests.fixtures.backend_server",
    "tests.fixtures.static_files",
    "tests.fixtures.iiif_reference",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT.parent / "shared" / "data" / "herbarium-samples"
# Kept between runs (ignored by git): the migrated Label Studio database every server copies.
LABEL_STUDIO_TEMPLATE = REPO_ROOT / ".cache" / f"label-studio-template-{LABEL_STUDIO_VERSION}"

_session_root = Path(tempfile.mkdtemp(prefix="plantai-tests-"))
_fiftyone_db = LocalFiftyOneDatabase(_session_root / "fiftyone-db", port=free_loopback_port())

# Property tests (hypothesis): a fixed seed, enough examples to matter, no deadline (the machine may be
# loaded), no example database, and its caches in the session's temporary folder, not in the clone.
# HYPOTHESIS_PROFILE=explore: random seeds and 10x the examples, to hunt for new failures.
settings.register_profile("ci", derandomize=True, max_examples=300, deadline=None, database=None, print_blob=True)
settings.register_profile("explore", settings.get_profile("ci"), derandomize=False, max_examples=3000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(_session_root / "hypothesis"))


def pytest_configure(config: pytest.Config) -> None:
    home = _session_root / "home"
    home.mkdir(exist_ok=True)
    os.environ.update(
        {
            "HOME": str(home),  # FiftyOne, matplotlib, the LS SDK and onnxruntime write under HOME
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
            "PLANTAI_HOME": str(_session_root / "plantai-home"),
            "FIFTYONE_DATABASE_URI": _fiftyone_db.uri,
            "FIFTYONE_DATABASE_VALIDATION": "false",  # mongod 6.0 is the oldest FiftyOne 1.22 accepts
            "FIFTYONE_DO_NOT_TRACK": "true",
        }
    )
    from catalog.ultralytics_offline import configure_offline_ultralytics

    configure_offline_ultralytics(_session_root / "ultralytics")


def pytest_unconfigure(config: pytest.Config) -> None:
    _fiftyone_db.stop()
    shutil.rmtree(_session_root, ignore_errors=True)


@pytest.fixture(scope="session")
def session_root() -> Path:
    return _session_root


@pytest.fixture(scope="session")
def label_studio() -> Iterator[LocalLabelStudio]:
    """A real Label Studio server on a copy of the template; files served from its document root."""
    server = LabelStudioServer(
        data_dir=_session_root / "label-studio",
        document_root=_session_root / "ls-files",
    )
    with LocalLabelStudio(server, LABEL_STUDIO_TEMPLATE) as running:
        yield running


@pytest.fixture(scope="session")
def ls_client(label_studio: LocalLabelStudio) -> Any:
    from connectors.labelstudio_client import label_studio_client

    return label_studio_client(label_studio.url, label_studio.token)


@pytest.fixture(scope="session")
def fiftyone_db() -> Iterator[LocalFiftyOneDatabase]:
    """FiftyOne's bundled MongoDB, private to this session (FIFTYONE_DATABASE_URI points at it)."""
    _fiftyone_db.start()
    yield _fiftyone_db
    _fiftyone_db.stop()


@pytest.fixture(scope="session")
def ultralytics_config_dir() -> Path:
    """Ultralytics' settings dir, offline (configured in pytest_configure)."""
    return Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real herbarium sheets in ../shared (used in place, never copied)."""
    if not (SAMPLES_DIR / "plant-masks").is_dir():
        pytest.skip(f"real herbarium samples not found at {SAMPLES_DIR}")
    return SAMPLES_DIR


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail any connection to a non-loopback address; returns the addresses that were refused."""
    refused: list[Any] = []
    original_connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not (
            str(host).startswith("127.") or host in ("::1", "localhost")
        ):
            refused.append(address)
            raise OSError(f"test refused a connection to {address}: network use outside loopback")
        return original_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return refused
