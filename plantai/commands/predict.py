"""``plantai predict``: run a catalog model on local images."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.progress import Progress


@click.command()
@click.argument("model")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option(
    "--conf",
    type=float,
    default=None,
    help="Minimum score of a prediction [the model's threshold, calibrated on its held-out set, else 0.25].",
)
@click.option("--tiling", is_flag=True, help="Detect on overlapping tiles (small organs on big sheets).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary for scripts.")
def predict(
    model: str, images: tuple[Path, ...], out_dir: Path, conf: float | None, tiling: bool, as_json: bool
) -> None:
    """Predict IMAGES with catalog MODEL (its production version, or MODEL@VERSION).

    Writes one Label Studio task JSON per image (importable as is, with the prediction), and a
    0/255 PNG plant mask per image for segmentation models. Unreadable images are reported,
    not fatal.

    \b
    Example:
      plantai predict nonvegetal-detector scans/*.jpg --out predictions/
    """
    from catalog.errors import CatalogError
    from ml_backends.adapters import Tiling
    from ml_backends.offline import predict_files

    with Progress(transient=True, disable=as_json) as bar:
        job = bar.add_task("Predicting", total=len(images))
        try:
            outcomes = predict_files(
                model, images, out_dir, conf=conf, tiling=Tiling() if tiling else None,
                progress=lambda _: bar.advance(job),
            )  # fmt: skip
        except (CatalogError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    failed = [o for o in outcomes if o.error]
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "image": str(o.image),
                        "task": str(o.task_file) if o.task_file else None,
                        "mask": str(o.mask_file) if o.mask_file else None,
                        "regions": o.regions,
                        "error": o.error,
                    }
                    for o in outcomes
                ]
            )
        )
    else:
        click.echo(f"{len(outcomes) - len(failed)} of {len(outcomes)} images predicted into {out_dir}")
        for outcome in failed:
            click.echo(f"  skipped {outcome.image}: {outcome.error}", err=True)
    if failed and len(failed) == len(outcomes):
        raise SystemExit(1)
