"""``plantai projects``: Label Studio review projects for PlantAI collections."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from connectors.label_config import REVIEW_TASKS
from connectors.labelstudio_client import label_studio_client
from plantai.commands.setting_options import document_root_option, label_studio_options


@click.group()
def projects() -> None:
    """Create and follow Label Studio review projects (one per collection)."""


@projects.command()
@click.option("--title", required=True, help="Project title, e.g. the collection's name.")
@click.option(
    "--images",
    "images_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of the collection's images (under the document root).",
)
@document_root_option(required=True, exists=True)
@click.option(
    "--task",
    "tasks",
    multiple=True,
    type=click.Choice(REVIEW_TASKS),
    help="What experts review (repeat; default: everything).",
)
@click.option("--backend-url", help="Connect this PlantAI backend (`plantai serve`) right away.")
@label_studio_options()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def create(
    title: str,
    images_dir: Path,
    document_root: Path,
    tasks: tuple[str, ...],
    backend_url: str | None,
    label_studio_url: str,
    api_key: str,
    as_json: bool,
) -> None:
    """Create a review project over a folder of specimen images.

    Experts see the models' predictions and give each region a verdict (correct, wrong label,
    wrong shape, not a plant part) and each sheet a review state (validated, needs work), with
    comments. Add specimens with `plantai specimens import`.

    \b
    Example:
      plantai projects create --title "Herbier A" --images /data/scans/A --backend-url http://127.0.0.1:9090
    """
    from connectors.projects import ProjectError, create_project
    from ml_backends.admission import BasicAuth
    from ml_backends.connect import connect_backend

    client = label_studio_client(label_studio_url, api_key)
    try:
        project = create_project(client, title, images_dir, document_root, tasks or REVIEW_TASKS)
        if backend_url:
            connect_backend(client, project.id, backend_url, basic_auth=BasicAuth.from_settings())
    except ProjectError as exc:
        raise click.ClickException(str(exc)) from None
    url = f"{label_studio_url.rstrip('/')}/projects/{project.id}"
    if as_json:
        click.echo(json.dumps({"id": project.id, "title": title, "url": url, "backend": backend_url}))
    else:
        click.echo(f"Created project {project.id} '{title}': {url}")


@projects.command(name="list")
@label_studio_options()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_projects(label_studio_url: str, api_key: str, as_json: bool) -> None:
    """List the projects in Label Studio with their task and annotation counts."""
    client = label_studio_client(label_studio_url, api_key)
    rows: list[dict[str, Any]] = [
        {
            "id": p.id,
            "title": p.title,
            "tasks": p.task_number or 0,
            "reviewed": p.num_tasks_with_annotations or 0,
            "predictions": p.total_predictions_number or 0,
        }
        for p in client.projects.list()
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    table = Table(title="Label Studio projects")
    for column in ("id", "title", "tasks", "reviewed", "predictions"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("id", "title", "tasks", "reviewed", "predictions")))
    Console().print(table)


@projects.command()
@click.option("--project", type=int, required=True, help="Label Studio project id.")
@label_studio_options()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status(project: int, label_studio_url: str, api_key: str, as_json: bool) -> None:
    """Tasks, how many are predicted and reviewed, and predictions per model version."""
    from connectors.projects import project_status

    state = project_status(label_studio_client(label_studio_url, api_key), project)
    if as_json:
        click.echo(json.dumps(state.__dict__, default=list))
        return
    console = Console()
    console.print(
        f"[bold]{state.title}[/bold] (project {state.id}): {state.tasks} tasks, "
        f"{state.predicted} predicted, {state.reviewed} reviewed"
    )
    console.print(f"Backends: {', '.join(state.backends) or 'none connected'}")
    table = Table(title="Predictions per model version")
    table.add_column("model version")
    table.add_column("predictions", justify="right")
    for version, count in state.predictions_by_version.items():
        table.add_row(version, str(count))
    console.print(table)


@projects.command()
@label_studio_options()
def invite(label_studio_url: str, api_key: str) -> None:
    """Print the organisation's invite link: send it to the botanists who will review."""
    from connectors.projects import invite_link

    click.echo(invite_link(label_studio_client(label_studio_url, api_key), label_studio_url))
