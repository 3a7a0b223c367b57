"""``plantai retrain`` and ``plantai train``: models from expert corrections, promoted only when not worse."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from plantai.commands.setting_options import document_root_option, label_studio_options

_DOCUMENT_ROOT = document_root_option(help="task images are read from under it.")


def _client(url: str | None, api_key: str | None) -> Any:
    from connectors.labelstudio_client import label_studio_client

    if not url or not api_key:
        raise click.UsageError("give --label-studio-url and --api-key (or LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY)")
    return label_studio_client(url, api_key)


def _run_with_progress(function: Any, as_json: bool) -> Any:
    """Call ``function(progress)`` with a progress bar on stderr (none with --json)."""
    if as_json:
        return function(None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=Console(stderr=True)
    ) as bar:
        task = bar.add_task("retraining", total=1.0)

        def progress(message: str, fraction: float) -> None:
            bar.update(task, completed=fraction, description=message[:70])

        return function(progress)


def _report(result: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    scores = f"{result.metric}: candidate {result.candidate_score} vs production {result.production_score}"
    click.echo(f"{result.candidate or result.model}: {result.status} ({scores})")
    click.echo(f"  {result.reason}")
    click.echo(f"  training run {result.run_id}, data snapshot {result.snapshot}, log {result.log}")


@click.command()
@click.argument("model", required=False)
@click.option("--project", "projects", type=int, multiple=True, help="Label Studio project id (repeatable).")
@click.option("--now", is_flag=True, help="Train here and now instead of queueing a job.")
@click.option("--run-queued", is_flag=True, help="Be a worker: run the queued retraining jobs here, then exit.")
@click.option("--every", type=int, default=None, help="Set the project's trigger: queue a job every N validations.")
@click.option("--margin", type=float, default=None, help="Promote when candidate >= production - margin [0].")
@click.option("--epochs", type=int, default=None, help="Training epochs [10].")
@click.option("--imgsz", type=int, default=None, help="Training image size [the production model's].")
@_DOCUMENT_ROOT
@label_studio_options(required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON for scripts.")
def retrain(
    model: str | None,
    projects: tuple[int, ...],
    now: bool,
    run_queued: bool,
    every: int | None,
    margin: float | None,
    epochs: int | None,
    imgsz: int | None,
    document_root: Path | None,
    label_studio_url: str | None,
    api_key: str | None,
    as_json: bool,
) -> None:
    """Retrain MODEL from the expert corrections of Label Studio projects, gated.

    The validated sheets are exported (split by specimen, seed 0), the model is fine-tuned from
    its production version, and candidate and production are evaluated on the same held-out
    sheets. The candidate is registered with its metrics; it is promoted only when it is at least
    as good by the model's metric (mAP50-95, mask mAP50-95, top-1 accuracy) minus --margin,
    otherwise it stays in staging with the reason in its training run.

    By default the job is queued (a FiftyOne delegated operation, run by `fiftyone delegated
    launch` or `plantai retrain --run-queued`); --now trains here with a progress bar.

    \b
    Examples:
      plantai retrain nonvegetal-detector --project 3 --now
      plantai retrain nonvegetal-detector --project 3          # queue it
      plantai retrain --run-queued                             # a worker
      plantai retrain nonvegetal-detector --project 3 --every 50
    """
    from training import retrain_queue

    settings = {"margin": margin, "epochs": epochs, "imgsz": imgsz}
    if run_queued:
        results = retrain_queue.run_queued_jobs()
        reports = [{"result": r.result, "error": r.error} for r in results]
        click.echo(json.dumps(reports, indent=2, default=str) if as_json else f"ran {len(reports)} queued jobs")
        if any(r["error"] for r in reports):
            raise SystemExit(1)
        return
    if not projects:
        raise click.UsageError("give --project (one or more)")
    if every is not None:
        for project in projects:
            entry = retrain_queue.configure_project(project, every=every, models=[model] if model else None)
            click.echo(f"project {project}: {json.dumps(entry)}")
        return
    if not now:
        op = retrain_queue.queue_retraining(projects, [model] if model else None, trigger="cli", settings=settings)
        message = {"queued": op, "already_queued": op is None}
        click.echo(json.dumps(message) if as_json else (f"queued job {op}" if op else "the same job is already queued"))
        return
    if model is None:
        raise click.UsageError("--now needs MODEL")

    from catalog.registry import Catalog
    from training.retraining import RetrainingError, TrainingError
    from training.retraining import retrain as run_retrain

    client = _client(label_studio_url, api_key)
    job_settings = retrain_queue.settings_from(settings)
    with Catalog.open() as catalog:
        try:

            def job(progress: Any) -> Any:
                return run_retrain(
                    catalog,
                    model,
                    client,
                    list(projects),
                    settings=job_settings,
                    document_root=document_root,
                    progress=progress,
                    trigger="cli",
                )

            result = _run_with_progress(job, as_json)
        except (RetrainingError, TrainingError, ValueError) as error:
            raise click.ClickException(str(error)) from error
    _report(result, as_json)


@click.command()
@click.option("--trait", required=True, help="The trait: the name of the project's Choices tag (snake_case).")
@click.option("--project", type=int, required=True, help="Label Studio project whose annotations teach it.")
@click.option("--name", default=None, help="Catalog model name [<trait>-classifier].")
@click.option("--epochs", type=int, default=None, help="Training epochs [30].")
@_DOCUMENT_ROOT
@label_studio_options(required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON for scripts.")
def train(
    trait: str,
    project: int,
    name: str | None,
    epochs: int | None,
    document_root: Path | None,
    label_studio_url: str | None,
    api_key: str | None,
    as_json: bool,
) -> None:
    """Train a new trait classifier from a project's Choices annotations and put it in the catalog.

    Its classes are the values the experts chose. The first version is registered and promoted:
    a backend serving traits (or all) then fills the project's TRAIT tag. Retrain it later with
    `plantai retrain NAME --project ID`.

    \b
    Example:
      plantai train --trait leaf_margin --project 7
    """
    from catalog.registry import Catalog
    from herbarium.labels.yolo_dataset import TrainingDataError
    from training.new_trait import NEW_TRAIT_SETTINGS, train_new_trait
    from training.retraining import RetrainingError, TrainingError

    client = _client(label_studio_url, api_key)
    settings = NEW_TRAIT_SETTINGS if epochs is None else replace(NEW_TRAIT_SETTINGS, epochs=epochs)
    with Catalog.open() as catalog:
        try:

            def job(progress: Any) -> Any:
                return train_new_trait(
                    catalog,
                    trait,
                    client,
                    project,
                    name=name,
                    settings=settings,
                    document_root=document_root,
                    progress=progress,
                )

            result = _run_with_progress(job, as_json)
        except (RetrainingError, TrainingError, TrainingDataError, ValueError) as error:
            raise click.ClickException(str(error)) from error
    _report(result, as_json)
