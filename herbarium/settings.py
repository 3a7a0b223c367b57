"""Where PlantAI keeps its state. One environment variable per setting."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PLANTAI_HOME_ENV = "PLANTAI_HOME"


def plantai_home() -> Path:
    """``$PLANTAI_HOME``, else the user's data dir (``~/.local/share/plantai`` on Linux)."""
    configured = os.environ.get(PLANTAI_HOME_ENV)
    return Path(configured).expanduser() if configured else Path(platformdirs.user_data_dir("plantai"))
