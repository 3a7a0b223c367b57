"""Run Ultralytics with no network: no connectivity probe, no font or package downloads.

Ultralytics reads its settings when first imported, so :func:`configure_offline_ultralytics`
must run before anything imports it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from herbarium.settings import configured, ultralytics_config_dir

# check_font() asks github.com for these unless they are in the config dir.
_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")


class UltralyticsAlreadyImportedError(RuntimeError):
    """Ultralytics was imported before being configured, with another config dir."""


def _bundled_font() -> Path:
    import matplotlib  # ships DejaVuSans, which covers what training plots need

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def configure_offline_ultralytics(config_dir: Path | None = None) -> Path:
    """Point Ultralytics at ``config_dir`` with fonts in place and sync off; return its settings dir.

    ``config_dir`` defaults to ``$YOLO_CONFIG_DIR``, else ``$PLANTAI_HOME/ultralytics``. Calling it
    again with the same dir does nothing more.
    """
    if config_dir is None:
        config_dir = ultralytics_config_dir()
    settings_dir = config_dir / "Ultralytics"  # Ultralytics appends this to YOLO_CONFIG_DIR
    if "ultralytics" in sys.modules and configured("YOLO_CONFIG_DIR") != str(config_dir):
        raise UltralyticsAlreadyImportedError(
            "ultralytics was imported before configure_offline_ultralytics(); call it first"
        )
    settings_dir.mkdir(parents=True, exist_ok=True)
    font = _bundled_font()
    for name in _FONTS:
        target = settings_dir / name
        if not target.exists():
            shutil.copyfile(font, target)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["YOLO_OFFLINE"] = "1"  # no import-time connectivity probe
    os.environ["YOLO_AUTOINSTALL"] = "false"  # never pip-install at run time
    # Its first import prints a settings banner on stdout, where scripts read --json: send it to stderr
    # (its log handler, created then, keeps writing there).
    with contextlib.redirect_stdout(sys.stderr):
        from ultralytics.utils import SETTINGS

    SETTINGS.update({"sync": False})  # type: ignore[no-untyped-call]
    return settings_dir
