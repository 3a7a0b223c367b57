"""Command-line options that fall back on a declared setting (:mod:`herbarium.settings`), as ``envvar`` would."""

from __future__ import annotations

from collections.abc import Callable
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
        attrs["callback"] = _required
    return click.option(*param_decls, default=lambda: setting(declared.name), help=text, **attrs)


__all__ = ["setting_option"]
