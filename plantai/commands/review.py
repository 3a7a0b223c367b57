"""``plantai review``: send FiftyOne views back to Label Studio for expert review."""

from __future__ import annotations

import json
from pathlib import Path

import click

from connectors.labelstudio_client import label_studio_client
from plantai.commands.setting_options import document_root_option, label_studio_options


@click.group()
def review() -> None:
    """Send specimens that need an expert's eye from FiftyOne to a Label Studio project."""


@review.command()
@click.option("--dataset", required=True, help="The FiftyOne dataset (from `plantai sync`).")
@click.option(
    "--view",
    "view_name",
    default="low-confidence",
    show_default=True,
    help="A saved view: not-yet-reviewed, ai-and-expert-disagree, low-confidence, flowering-specimens, "
    "barcode-not-read.",
)
@click.option("--project", type=int, required=True, help="The Label Studio review project to add tasks to.")
@document_root_option(required=True, exists=True)
@label_studio_options()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def send(
    dataset: str, view_name: str, project: int, document_root: Path, label_studio_url: str, api_key: str, as_json: bool
) -> None:
    """Make a task for every specimen of a saved view, with the AI labels as predictions.

    Specimens already in the project (same task, or same catalogNumber) are skipped, so sending
    the same view again adds nothing.

    \b
    Example:
      plantai review send --dataset plantai-ls-1 --view ai-and-expert-disagree --project 2
    """
    import fiftyone as fo

    from connectors.search import saved_view
    from connectors.view_actions import send_view_for_review

    if not fo.dataset_exists(dataset):
        raise click.ClickException(f"no FiftyOne dataset named {dataset!r} (run `plantai sync` first)")
    try:
        view = saved_view(fo.load_dataset(dataset), view_name)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    report = send_view_for_review(view, label_studio_client(label_studio_url, api_key), project, document_root)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    click.echo(
        f"{len(report.created)} tasks created in project {project} ({report.predictions} predictions), "
        f"{len(report.skipped)} already there, {len(report.refused)} refused"
    )
    for sample, why in report.refused:
        click.echo(f"  refused {sample}: {why}", err=True)
