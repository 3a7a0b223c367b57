"""``plantai sync``: bring a Label Studio project's FiftyOne dataset up to date."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.labelstudio_client import label_studio_client
from plantai.commands.setting_options import document_root_option, label_studio_options


@click.command()
@click.option("--project", type=int, required=True, help="Label Studio project id.")
@click.option("--dataset", default=None, help="FiftyOne dataset name  [default: plantai-ls-<project>].")
@document_root_option(help="image URLs resolve to files under it.")
@label_studio_options()
@click.option("--batch-size", default=250, show_default=True, help="Tasks fetched and written per batch.")
@click.option(
    "--full", is_flag=True, help="Read and rewrite every task, ignoring the cursor (after a taxonomy change)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON for scripts.")
def sync(
    project: int,
    dataset: str | None,
    document_root: Path | None,
    label_studio_url: str,
    api_key: str,
    batch_size: int,
    full: bool,
    as_json: bool,
) -> None:
    """Sync a Label Studio project into its FiftyOne dataset (one sample per task).

    Samples get the task's image and Darwin Core record, ai_<control> labels from predictions
    (source = model name@version, score) and expert_<control> labels from the newest annotation
    (state validated / corrected / rejected, verdict, comment), and the sheet's review state.

    Only tasks changed since the last sync are read; deleted tasks leave the dataset. Interrupted
    (Ctrl-C, Label Studio down)? Run the same command again: it finishes the job without
    duplicates. Labels outside PlantAI's taxonomy are kept, flagged taxonomy_unknown and listed.

    \b
    Example:
      export LABEL_STUDIO_URL=http://127.0.0.1:8080 LABEL_STUDIO_API_KEY=...
      plantai sync --project 3 --document-root /srv/herbarium
    """
    from connectors.sync import SyncError, sync_project

    client = label_studio_client(label_studio_url, api_key)
    columns = (TextColumn("Syncing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=as_json) as bar:
        job = bar.add_task("sync", total=None)
        try:
            report = sync_project(
                client,
                project,
                dataset_name=dataset,
                document_root=document_root,
                batch_size=batch_size,
                full=full,
                progress=lambda done, total: bar.update(job, completed=done, total=total),
            )
        except SyncError as exc:
            partial = exc.report.as_dict() if exc.report else None
            if as_json:
                click.echo(json.dumps({"error": str(exc), "partial": partial}))
            raise click.ClickException(f"{exc}; what was written stays: run the same command again to finish") from None
    import fiftyone as fo

    from connectors.search import prepare

    # Indexes and saved views follow the fields the sync found (new controls, new model versions).
    prepare(fo.load_dataset(report.dataset))
    summary = report.as_dict()
    if as_json:
        click.echo(json.dumps(summary))
        return
    _print(summary)


def _print(summary: dict[str, Any]) -> None:
    console = Console()
    table = Table(title=f"Project {summary['project_id']} → dataset {summary['dataset']}")
    for name in ("added", "updated", "deleted", "unchanged"):
        table.add_column(name, justify="right")
    table.add_column("seconds", justify="right")
    table.add_row(*(str(summary[n]) for n in ("added", "updated", "deleted", "unchanged", "seconds")))
    console.print(table)
    if summary["labels"]:
        console.print("labels written: " + ", ".join(f"{k} {v}" for k, v in summary["labels"].items()))
    for unknown in summary["unknown_labels"][:20]:
        console.print(
            f"[yellow]not in the taxonomy[/yellow]: task {unknown['task_id']} {unknown['field']} {unknown['label']!r}"
        )
    for image in summary["unresolved_images"][:20]:
        console.print(f"[yellow]image not found[/yellow]: task {image['task_id']} {image['image']}")
    for error in summary["errors"][:20]:
        console.print(f"[red]not read[/red]: task {error['task_id']}: {error['error']}")
    hidden = sum(max(0, len(summary[k]) - 20) for k in ("unknown_labels", "unresolved_images", "errors"))
    if hidden:
        console.print(f"... and {hidden} more (use --json)")
