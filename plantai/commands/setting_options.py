"""Command-line options that fall back on a declared setting (:mod:`herbarium.settings`), as ``envvar`` would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from herbarium.settings import declaration, setting

F = TypeVar("F", bound=Callable[..., Any])


def _required(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    # A callable default that finds nothing gives None, which click does not count as missing.
    if value is None:
        raise click.MissingParameter(ctx=ctx, param=param)
    return value


def setting_option(name: str, *param_decls: str, help: str | None = None, **attrs: Any) -> Callable[[F], F]:
    """A click option whose value, when not given, is the setting ``name`` (its variable, else its default).

    The help text (the declaration's unless ``help`` is given) ends with ``[NAME]``; ``required=True``
    fails with click's "Missing option" when neither the option nor the setting gives a value.
    """
    declared = declaration(name)
    text = f"{help or declared.help} [{declared.name}]"
    if attrs.get("required"):
        if "callback" in attrs:
            raise TypeError("setting_option: required=True brings its own callback")
        attrs["callback"] = _required
    return click.option(*param_decls, default=lambda: setting(declared.name), help=text, **attrs)


def document_root_option(*, required: bool = False, exists: bool = False, help: str | None = None) -> Callable[[F], F]:
    """``--document-root``: Label Studio's local-files root (task images are files under it)."""
    return setting_option(
        "LOCAL_FILES_DOCUMENT_ROOT",
        "--document-root",
        required=required,
        type=click.Path(exists=exists, file_okay=False, path_type=Path),
        help=f"Label Studio's local-files root: {help}" if help else None,
    )


def label_studio_options(*, required: bool = True) -> Callable[[F], F]:
    """``--label-studio-url`` [LABEL_STUDIO_URL] and ``--api-key`` [LABEL_STUDIO_API_KEY]."""

    def add(command: F) -> F:
        command = setting_option(
            "LABEL_STUDIO_API_KEY", "--api-key", required=required, help="Legacy token or personal access token."
        )(command)
        return setting_option("LABEL_STUDIO_URL", "--label-studio-url", required=required, help="Label Studio's URL.")(
            command
        )

    return add


__all__ = ["document_root_option", "label_studio_options", "setting_option"]
