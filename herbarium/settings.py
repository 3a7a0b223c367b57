"""PlantAI's settings: every environment variable it reads, declared once with its default and help.

:data:`SETTINGS` is the list (``plantai info`` shows it); :func:`setting` reads one by name, and is
the only place PlantAI reads these variables. A variable that is unset or empty takes its default.
The typed helpers below say what the values mean.

>>> setting("PLANTAI_RETRAIN_EVERY")  # doctest: +SKIP
'0'
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import platformdirs


class UnknownSettingError(KeyError):
    """A name that :data:`SETTINGS` does not declare."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Setting:
    """One environment variable PlantAI reads."""

    name: str
    default: str | Callable[[], str] | None  # a callable default is computed when asked (it depends on the machine)
    help: str
    secret: bool = False  # never shown: ``plantai info`` says only whether it is set

    def default_value(self) -> str | None:
        return self.default() if callable(self.default) else self.default


def _default_home() -> str:
    return platformdirs.user_data_dir("plantai")


def sqlite_catalog_url(home: Path) -> str:
    """The catalog PlantAI keeps in ``home`` when PLANTAI_CATALOG_URL names none."""
    return f"sqlite:///{home / 'catalog.db'}"


def _default_catalog_url() -> str:
    return sqlite_catalog_url(plantai_home())


def _default_ultralytics_dir() -> str:
    return str(plantai_home() / "ultralytics")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "PLANTAI_HOME",
        _default_home,
        "Where PlantAI keeps its state: the catalog (catalog.db), model weights (store/), the demo, "
        "retraining triggers.",
    ),
    Setting(
        "PLANTAI_CATALOG_URL",
        _default_catalog_url,
        "The model catalog's database: sqlite:///path or postgresql+psycopg://user@host/db "
        "(default: SQLite in PLANTAI_HOME).",
    ),
    Setting(
        "LABEL_STUDIO_URL",
        None,
        "Label Studio's URL, e.g. http://127.0.0.1:8080 (commands, backends and retraining jobs talk to it).",
    ),
    Setting(
        "LABEL_STUDIO_API_KEY",
        None,
        "Label Studio legacy token or personal access token.",
        secret=True,
    ),
    Setting(
        "LOCAL_FILES_DOCUMENT_ROOT",
        None,
        "Label Studio's local-files root: task images are files under it (/data/local-files/?d=...).",
    ),
    Setting(
        "BASIC_AUTH_USER",
        None,
        "Backends: the HTTP basic auth user every endpoint but /health requires (Label Studio's convention; "
        "with BASIC_AUTH_PASS).",
    ),
    Setting(
        "BASIC_AUTH_PASS",
        None,
        "Backends: the HTTP basic auth password (with BASIC_AUTH_USER).",
        secret=True,
    ),
    Setting(
        "PLANTAI_MAX_REQUEST_BYTES",
        str(256 * 1024 * 1024),
        "Backends: the largest request body, in bytes (Label Studio sends each task with its annotations and "
        "predictions, masks included).",
    ),
    Setting("PLANTAI_MAX_PREDICT_TASKS", "1000", "Backends: the most tasks one /predict request may send."),
    Setting(
        "PLANTAI_PREDICT_SECONDS",
        "600",
        "Backends: seconds one /predict may work before it is answered 408 (Label Studio sends a whole "
        "'Retrieve predictions' selection in one request).",
    ),
    Setting(
        "PLANTAI_REMOTE_HOSTS",
        None,
        "Hosts PlantAI may fetch images and manifests from: names, *.suffix patterns, addresses or networks, "
        "comma-separated (default: none). A private, loopback or link-local address needs its address or "
        "network listed, whatever name leads to it.",
    ),
    Setting(
        "PLANTAI_REMOTE_MAX_BYTES",
        str(512 * 1024 * 1024),
        "The most bytes one remote fetch may bring (a 600-ppi TIFF master is 100-200 MB).",
    ),
    Setting("PLANTAI_REMOTE_SECONDS", "120", "Seconds one remote fetch may take, redirects included."),
    Setting(
        "PLANTAI_RETRAIN_EVERY",
        "0",
        "Queue a retraining job every N validated annotations of a project without its own trigger (0: never).",
    ),
    Setting(
        "PLANTAI_REAL_SAMPLES",
        None,
        "The real herbarium sample sheets (default: ../shared/data/herbarium-samples beside the checkout, "
        "when present).",
    ),
    Setting("DEMO_IMAGES", None, "Your own sheet images for `plantai demo`, added to the generated ones."),
    Setting(
        "YOLO_CONFIG_DIR",
        _default_ultralytics_dir,
        "Ultralytics' config dir; PlantAI sets it (offline, fonts in place) before Ultralytics is imported.",
    ),
)
_BY_NAME = {declared.name: declared for declared in SETTINGS}


def declaration(name: str) -> Setting:
    """The declared setting ``name``; :class:`UnknownSettingError` for one :data:`SETTINGS` lacks."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise UnknownSettingError(f"{name!r} is not a PlantAI setting (declared: {known})") from None


def configured(name: str) -> str | None:
    """The value the environment gives the declared setting ``name``; None when unset or empty (no default)."""
    return os.environ.get(declaration(name).name) or None


def setting(name: str) -> str | None:
    """The declared setting ``name``: its environment variable when set and not empty, else its default."""
    value = configured(name)
    return value if value is not None else declaration(name).default_value()


def _path(name: str) -> Path | None:
    value = setting(name)
    return Path(value).expanduser() if value else None


def plantai_home() -> Path:
    """``$PLANTAI_HOME``, else the user's data dir (``~/.local/share/plantai`` on Linux)."""
    home = _path("PLANTAI_HOME")
    assert home is not None  # it has a default
    return home


def document_root() -> Path | None:
    """``$LOCAL_FILES_DOCUMENT_ROOT`` (Label Studio's local-files root), else None."""
    value = setting("LOCAL_FILES_DOCUMENT_ROOT")
    return Path(value) if value else None


def retrain_every() -> int:
    """``$PLANTAI_RETRAIN_EVERY``: the default retraining trigger, in validated annotations (0: never)."""
    return int(setting("PLANTAI_RETRAIN_EVERY") or 0)


def ultralytics_config_dir() -> Path:
    """``$YOLO_CONFIG_DIR``, else ``$PLANTAI_HOME/ultralytics``."""
    configured_dir = _path("YOLO_CONFIG_DIR")
    assert configured_dir is not None  # it has a default
    return configured_dir


def real_samples_dir() -> Path | None:
    """``$PLANTAI_REAL_SAMPLES``, else None (:mod:`herbarium.real_sheets` then looks beside the checkout)."""
    return _path("PLANTAI_REAL_SAMPLES")


__all__ = [
    "SETTINGS",
    "Setting",
    "UnknownSettingError",
    "configured",
    "declaration",
    "document_root",
    "plantai_home",
    "real_samples_dir",
    "retrain_every",
    "setting",
    "sqlite_catalog_url",
    "ultralytics_config_dir",
]
