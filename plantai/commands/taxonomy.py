"""``plantai taxonomy``: the label sets models speak, with aliases."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from herbarium.taxonomy import all_label_sets


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def taxonomy(as_json: bool) -> None:
    """List PlantAI's label sets, their classes and the aliases imported data may use."""
    sets = all_label_sets()
    if as_json:
        payload = [
            {"name": s.name, "description": s.description, "classes": list(s.classes), "aliases": dict(s.aliases)}
            for s in sets
        ]
        click.echo(json.dumps(payload, indent=2))
        return
    table = Table(title="PlantAI label sets")
    table.add_column("set")
    table.add_column("classes (index order)")
    table.add_column("aliases")
    for s in sets:
        aliases = ", ".join(f"{a}→{t}" for a, t in sorted(s.aliases.items()))
        table.add_row(f"{s.name}\n[dim]{s.description}[/dim]", ", ".join(s.classes), aliases or "-")
    Console().print(table)
