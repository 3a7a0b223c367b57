"""``plantai synth``: write synthetic herbarium sheets with exact ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from herbarium.synth import SynthParameterError, parse_size, write_sheets
from herbarium.synth.params import MAX_COUNT, check_count, check_seed


def _size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        return parse_size(value, parameter="--size")
    except SynthParameterError as exc:
        raise click.BadParameter(str(exc).removeprefix("--size: "), ctx=ctx, param=param) from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--n",
    "n",
    type=int,
    default=20,
    show_default=True,
    help=f"How many sheets to write (1 to {MAX_COUNT}).",
)
@click.option(
    "--size",
    default="1024",
    show_default=True,
    callback=_size,
    help="Long side in px (width follows the 29 x 42 cm sheet), or WIDTHxHEIGHT; 512 up to 6900x9900.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write into (created if needed; files with the same names are replaced).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sheet 0; sheet i uses seed + i.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary for scripts (no progress bar).")
def synth(n: int, size: tuple[int, int], out: Path, seed: int, as_json: bool) -> None:
    """Generate synthetic herbarium sheets with exact labels.

    Each sheet has plants (stems, leaves, flowers or fruits, seeds, roots) and a label, a Code 128
    barcode of its catalogue number, a colour chart, a ruler, often an envelope and a stamp.
    Written under OUT: images/<catalogNumber>.jpg, masks/ (0/255 plant mask), instance-masks/
    (one mask per plant), manifest.json (boxes per element and organ, traits, Darwin Core) and
    occurrence.csv (Darwin Core). The same seed always gives the same sheets.

    \b
    Example:
      plantai synth --n 20 --size 1024 --out synthetic-sheets
    """
    for check, value, name in ((check_count, n, "--n"), (check_seed, seed, "--seed")):
        try:
            check(value, parameter=name)
        except SynthParameterError as exc:
            raise click.BadParameter(str(exc).removeprefix(f"{name}: "), param_hint=name) from None
    if as_json:
        manifest = write_sheets(out, n, size, seed)
    else:
        console = Console(stderr=True)
        columns = (
            TextColumn("[bold]synth[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("sheets", total=n)
            manifest = write_sheets(out, n, size, seed, progress=lambda done, _total: bar.update(task, completed=done))
    seconds = manifest.seconds or 0.0
    rate = n / max(seconds, 1e-9)
    summary = {
        "sheets": n,
        "width": manifest.width,
        "height": manifest.height,
        "seed": seed,
        "seconds": round(seconds, 3),
        "sheets_per_s": round(rate, 2),
        "out": str(out),
        "manifest": str(manifest.manifest_path),
        "occurrence": str(manifest.occurrence_path),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(
        f"Wrote {n} sheets of {manifest.width}x{manifest.height} px in {seconds:.1f} s ({rate:.1f} sheets/s)\n"
        f"  images, masks, instance-masks under {out}\n"
        f"  manifest: {manifest.manifest_path}\n"
        f"  Darwin Core: {manifest.occurrence_path}"
    )
