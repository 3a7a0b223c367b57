"""The Label Studio connection options every command that talks to it shares (one name per setting)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def label_studio_options(command: F) -> F:
    """Add ``--label-studio-url`` [LABEL_STUDIO_URL] and ``--api-key`` [LABEL_STUDIO_API_KEY]."""
    command = click.option(
        "--api-key",
        envvar="LABEL_STUDIO_API_KEY",
        required=True,
        help="Legacy token or personal access token [LABEL_STUDIO_API_KEY].",
    )(command)
    command = click.option(
        "--label-studio-url", envvar="LABEL_STUDIO_URL", required=True, help="Label Studio's URL [LABEL_STUDIO_URL]."
    )(command)
    return command


def label_studio_client(url: str, api_key: str) -> Any:
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=url, api_key=api_key)  # type: ignore[no-untyped-call]
