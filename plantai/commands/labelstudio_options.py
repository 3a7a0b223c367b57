"""The Label Studio connection options every command that talks to it shares (one name per setting)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from plantai.commands.setting_options import setting_option

F = TypeVar("F", bound=Callable[..., Any])


def label_studio_options(command: F) -> F:
    """Add ``--label-studio-url`` [LABEL_STUDIO_URL] and ``--api-key`` [LABEL_STUDIO_API_KEY], both required."""
    command = setting_option(
        "LABEL_STUDIO_API_KEY", "--api-key", required=True, help="Legacy token or personal access token."
    )(command)
    return setting_option("LABEL_STUDIO_URL", "--label-studio-url", required=True, help="Label Studio's URL.")(command)
