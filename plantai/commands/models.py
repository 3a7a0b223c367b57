"""``plantai models``: manage the model catalog (a thin face over :class:`catalog.registry.Catalog`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])

_EPILOG = """\b
Examples:
  plantai models register sheet-detector --task detect-nonvegetal --weights best.pt \\
      --metrics '{"dataset": "synth-val-v1", "mAP50": 0.71}' --promote
  plantai models list
  plantai models show sheet-detector
  plantai models promote sheet-detector 1.1.0
  plantai models rollback sheet-detector
  plantai models verify

\b
Where: $PLANTAI_HOME holds catalog.db (SQLite) and store/ (weights by sha256);
$PLANTAI_CATALOG_URL=postgresql+psycopg://user@host/db selects a team database instead.
Every command takes --json for scripts.
"""


def _json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")(function)


def _call(method: str, *args: Any, **kwargs: Any) -> Any:
    """Open the catalog, make one API call, close it; catalog errors become one-line CLI errors (exit 1)."""
    from catalog.errors import CatalogError
    from catalog.registry import Catalog

    try:
        with Catalog.open() as catalog:
            return getattr(catalog, method)(*args, **kwargs)
    except CatalogError as error:
        raise click.ClickException(str(error)) from error


def _echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2))


def _short(sha256: str) -> str:
    return sha256[:12]


def _metrics_text(version: Any) -> str:
    if not version.metrics:
        return "-"
    values = ", ".join(f"{k}={v:.4g}" for k, v in version.metrics.items())
    return f"{values} ({version.metrics_dataset})"


def _versions_table(title: str, versions: list[Any]) -> Table:
    table = Table(title=title)
    for column in ("version", "stage", "sha256", "metrics", "artefacts", "registered"):
        table.add_column(column, overflow="fold")  # wrap, never cut: versions and hashes must stay readable
    for v in versions:
        stage = f"[bold green]{v.stage}[/]" if v.stage == "production" else v.stage
        table.add_row(
            v.version,
            stage,
            _short(v.sha256),
            _metrics_text(v),
            ", ".join(a.role for a in v.artefacts),
            f"{v.registered_at:%Y-%m-%d %H:%M} {v.registered_by}",
        )
    return table


@click.group(epilog=_EPILOG)
def models() -> None:
    """Register, version, promote and verify PlantAI models in the catalog.

    A model has a task (detect-nonvegetal, detect-organs, segment-plant, or a trait such as
    leaf_margin for classification), a label set and versions. Each version is in one stage:
    staging (new), production (the one `load_model("NAME")` serves; exactly one per model) or
    archived (retired). Weights are stored by sha256 and checked before every load.
    """


@models.command(epilog=_EPILOG)
@click.argument("name")
@click.option(
    "--task",
    required=True,
    help="detect-nonvegetal, detect-organs, segment-plant, a trait (leaf_margin, phenology) or a new trait name.",
)
@click.option(
    "--weights",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Weight file: .pt (Ultralytics), .onnx or .pth (SAM).",
)
@click.option("--labels", help="Class names in index order, comma-separated (required for a new trait).")
@click.option("--version", "version", help="Semantic version, e.g. 1.2.0 (default: next minor version).")
@click.option("--metrics", help='JSON with the dataset measured on, e.g. \'{"dataset": "val-v1", "mAP50": 0.7}\'.')
@click.option(
    "--framework", type=click.Choice(["ultralytics", "onnx", "sam", "sheetnet"]), help="Default: from the suffix."
)
@click.option("--parent", help="The version these weights were fine-tuned from.")
@click.option("--training-run", "training_run_id", type=int, help="Id of the training run that produced them.")
@click.option("--promote", is_flag=True, help="Also make this version the production version.")
@_json_option
def register(
    name: str,
    task: str,
    weights: Path,
    labels: str | None,
    version: str | None,
    metrics: str | None,
    framework: str | None,
    parent: str | None,
    training_run_id: int | None,
    promote: bool,
    as_json: bool,
) -> None:
    """Register a weight file as a new version of model NAME (created on first use).

    The weights are loaded and checked against the task and label set before anything is
    stored; a model that does not fit is refused and the catalog stays unchanged.

    \b
    Example:
      plantai models register sheet-detector --task detect-nonvegetal --weights best.pt --promote
      plantai models register margin --task leaf_margin --weights cls.pt --version 2.0.0
    """
    try:
        metric_values = json.loads(metrics) if metrics is not None else None
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--metrics") from error
    label_list = [label.strip() for label in labels.split(",")] if labels else None
    registered = _call(
        "register",
        name,
        task,
        weights,
        labels=label_list,
        version=version,
        metrics=metric_values,
        framework=framework,
        parent=parent,
        training_run_id=training_run_id,
        promote=promote,
    )
    if as_json:
        _echo_json(registered.to_dict())
        return
    click.echo(f"Registered {registered.ref} ({registered.stage}, sha256 {_short(registered.sha256)})")


@models.command("list", epilog=_EPILOG)
@_json_option
def list_models(as_json: bool) -> None:
    """List every model with its production and latest versions."""
    found = _call("list_models")
    if as_json:
        _echo_json([m.to_dict() for m in found])
        return
    table = Table(title="PlantAI model catalog")
    for column in ("model", "task", "framework", "labels", "production", "latest", "versions"):
        table.add_column(column, overflow="fold")
    for m in found:
        table.add_row(
            m.name,
            m.task,
            m.framework,
            ", ".join(m.labels),
            m.production or "[dim]none[/]",
            m.latest or "-",
            str(m.version_count),
        )
    Console().print(table)


@models.command(epilog=_EPILOG)
@click.argument("name")
@click.argument("version", required=False)
@_json_option
def show(name: str, version: str | None, as_json: bool) -> None:
    """Show model NAME and its versions, or one VERSION with its artefacts.

    \b
    Example:
      plantai models show sheet-detector
      plantai models show sheet-detector 1.0.0 --json
    """
    if version is None:
        model, versions = _call("describe", name)
        if as_json:
            _echo_json({**model.to_dict(), "versions": [v.to_dict() for v in versions]})
            return
        console = Console()
        console.print(f"[bold]{model.name}[/]: {model.task} ({model.framework}), labels {', '.join(model.labels)}")
        console.print(_versions_table(f"Versions of {model.name}", versions))
        return
    info = _call("version", name, version)
    if as_json:
        _echo_json(info.to_dict())
        return
    console = Console()
    console.print(f"[bold]{info.ref}[/]: {info.stage}, task {info.task}, {info.framework}")
    console.print(f"labels: {', '.join(info.labels)}")
    console.print(f"metrics: {_metrics_text(info)}")
    console.print(f"parent: {info.parent or '-'}   training run: {info.training_run_id or '-'}")
    console.print(f"registered {info.registered_at:%Y-%m-%d %H:%M:%S} UTC by {info.registered_by}")
    table = Table(title="Artefacts")
    for column in ("role", "format", "sha256", "size"):
        table.add_column(column, overflow="fold")
    for artefact in info.artefacts:
        table.add_row(artefact.role, artefact.format, artefact.sha256, str(artefact.size))
    console.print(table)


@models.command(epilog=_EPILOG)
@click.argument("name")
@click.argument("version")
@_json_option
def promote(name: str, version: str, as_json: bool) -> None:
    """Make VERSION the production version of NAME (the previous one returns to staging).

    \b
    Example:
      plantai models promote sheet-detector 1.1.0
    """
    promoted = _call("promote", name, version)
    if as_json:
        _echo_json(promoted.to_dict())
        return
    click.echo(f"{promoted.ref} is now in production")


@models.command(epilog=_EPILOG)
@click.argument("name")
@_json_option
def rollback(name: str, as_json: bool) -> None:
    """Put the previous production version of NAME back in production.

    \b
    Example:
      plantai models rollback sheet-detector
    """
    restored = _call("rollback", name)
    if as_json:
        _echo_json(restored.to_dict())
        return
    click.echo(f"Rolled back: {restored.ref} is in production again")


@models.command(epilog=_EPILOG)
@click.argument("name")
@click.argument("version")
@_json_option
def archive(name: str, version: str, as_json: bool) -> None:
    """Retire VERSION of NAME (not the production version; its files stay in the store).

    \b
    Example:
      plantai models archive sheet-detector 1.0.0
    """
    archived = _call("archive", name, version)
    if as_json:
        _echo_json(archived.to_dict())
        return
    click.echo(f"{archived.ref} archived")


@models.command(epilog=_EPILOG)
@_json_option
def verify(as_json: bool) -> None:
    """Re-hash every stored artefact; list each missing or changed one and exit 1 if any.

    \b
    Example:
      plantai models verify || echo "restore the listed files or re-register them"
    """
    report = _call("verify")
    if as_json:
        _echo_json({"ok": report.ok, **report.to_dict()})
    elif report.ok:
        click.echo(f"All {report.checked} artefacts intact")
    else:
        table = Table(title=f"{len(report.problems)} of {report.checked} artefacts are bad")
        for column in ("model", "version", "artefact", "problem"):
            table.add_column(column, overflow="fold")
        for p in report.problems:
            table.add_row(p.model, p.version, p.role, p.problem)
        Console(stderr=True).print(table)
    if not report.ok:
        raise SystemExit(1)


@models.command("export-onnx", epilog=_EPILOG)
@click.argument("name")
@click.argument("version")
@click.option("--imgsz", type=int, help="Input size (default: the size the model was trained at, else 640).")
@_json_option
def export_onnx(name: str, version: str, imgsz: int | None, as_json: bool) -> None:
    """Export an Ultralytics VERSION of NAME to ONNX, stored beside its weights (inference then prefers it).

    \b
    Example:
      plantai models export-onnx sheet-detector 1.1.0
    """
    artefact = _call("export_onnx", name, version, imgsz=imgsz)
    if as_json:
        _echo_json(artefact.to_dict())
        return
    click.echo(f"Exported {name}@{version} to ONNX (sha256 {_short(artefact.sha256)}, {artefact.size / 1e6:.1f} MB)")


@models.command(epilog=_EPILOG)
@click.option(
    "--profile",
    type=click.Choice(["demo", "quick"]),
    default="demo",
    show_default=True,
    help="demo: a few minutes on a laptop CPU; quick: about a minute, for tests (weaker models).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where generated sheets, data sets and training runs go (default: $PLANTAI_HOME/bootstrap).",
)
@click.option(
    "--real-samples",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The real sample sheets (plant-masks/, unb/, aafc/, mock-sheets/) to train on and measure on "
    "(default: $PLANTAI_REAL_SAMPLES, else ../shared/data/herbarium-samples beside the repository, when present).",
)
@click.option("--no-real-samples", is_flag=True, help="Train on generated sheets alone (the floor).")
@_json_option
def bootstrap(
    profile: str, work_dir: Path | None, real_samples: Path | None, no_real_samples: bool, as_json: bool
) -> None:
    """Train the four default models (one SheetNet), then register, promote and export them.

    A non-vegetal detector, an organ detector, a plant segmenter and a phenology classifier: the
    heads of one network with an ImageNet-pretrained encoder (shipped in a PyPI wheel, sha256-checked),
    trained on the CPU on the real sample sheets when they are here (a quarter of them held out to
    measure on), copy-paste composites of their plants and elements, and generated sheets. Each model
    is registered with its figures on held-out generated sheets and, with real sheets, on held-out
    real ones. A second run with the same code and profile finds them in the catalog and returns at once.

    \b
    Example:
      plantai models bootstrap                  # about 18 minutes on 2 cores
      plantai models bootstrap --profile quick --json
    """
    from catalog.errors import CatalogError
    from catalog.registry import Catalog
    from herbarium.real_sheets import default_samples_dir
    from herbarium.settings import plantai_home
    from training.bootstrap import BootstrapError, bootstrap_default_models

    if no_real_samples:
        real_samples = None
    elif real_samples is None:
        real_samples = default_samples_dir()
    work = work_dir if work_dir is not None else plantai_home() / "bootstrap"
    try:
        with Catalog.open() as catalog:
            if as_json:
                report = bootstrap_default_models(catalog, work, profile, real_samples)
            else:
                report = _bootstrap_with_progress(catalog, work, profile, real_samples)
    except (BootstrapError, CatalogError) as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        _echo_json(report.to_dict())
        return
    console = Console()
    state = "cached" if report.cached else f"trained {len(report.trained)}"
    table = Table(title=f"Default models ({report.profile} profile, {state}, {report.seconds:.0f} s)")
    for column in ("model", "version", "held-out metrics", "seconds", "built"):
        table.add_column(column, overflow="fold")
    for m in report.models:
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in m.metrics.items())
        built = "[dim]cached[/]" if m.cached else "[bold green]trained[/]"
        table.add_row(m.name, m.version, metrics or "-", f"{m.seconds:.0f}", built)
    console.print(table)
    console.print(f"metrics measured on [bold]{report.dataset}[/]; work files in {report.work_dir}")
    if report.real_samples_dir is None:
        console.print("no real sheets: trained on generated sheets alone (the floor: the README says what it reaches)")
    else:
        console.print(
            f"real sheets: trained on {report.real_training_sheets}, measured on {report.real_sheets} held out "
            f"({report.real_samples_dir})"
        )
        for m in report.models:
            real = {k: v for k, v in m.metrics.items() if k.startswith("real_")}
            if real:
                console.print(f"  {m.name}: " + ", ".join(f"{k}={v:.3f}" for k, v in real.items()))


def _bootstrap_with_progress(catalog: Any, work: Path, profile: str, real_samples: Path | None) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from training.bootstrap import bootstrap_default_models

    columns = (TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        bar.console.print(f"[bold]Bootstrapping the default models[/] ({profile} profile)")
        return bootstrap_default_models(catalog, work, profile, real_samples, progress=progress)
