"""``plantai demo``: PlantAI end to end on this machine (what `make demo` runs)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import webbrowser
from pathlib import Path
from typing import TextIO

import click

from plantai.commands.setting_options import setting_option


def _stdout_for_json_only() -> TextIO:
    """The real stdout, for the JSON alone; file descriptor 1 then leads to stderr.

    FiftyOne and its database driver print notices and progress bars on stdout; moving the
    descriptor (not ``sys.stdout``, which FiftyOne's progress bars take hold of) keeps them off it.
    """
    sys.stdout.flush()
    json_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return json_out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option("--no-browser", is_flag=True, help="Do not open Label Studio and the FiftyOne App in a browser.")
@click.option("--exit-after-ready", is_flag=True, help="Print READY, stop everything and exit (for scripts and CI).")
@setting_option(
    "DEMO_IMAGES",
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Your own sheet images, added to the generated ones.",
)
@click.option("--sheets", default=12, show_default=True, help="How many sheets to generate.")
@click.option(
    "--profile",
    type=click.Choice(["demo", "quick"]),
    default="demo",
    show_default=True,
    help="Default models' training: demo (minutes, better) or quick (tests).",
)
@click.option("--no-app", is_flag=True, help="Do not launch the FiftyOne App.")
@click.option(
    "--simulate-experts",
    is_flag=True,
    help="Run one correction loop: experts (the generated ground truth) correct a new batch, "
    "a model retrains, is gated and promoted, and every task is predicted again.",
)
@click.option("--expert-sheets", default=36, show_default=True, help="Sheets in the simulated experts' batch.")
@click.option(
    "--retrain-model",
    type=click.Choice(["nonvegetal-detector", "organ-detector", "plant-segmenter", "phenology-classifier"]),
    default="nonvegetal-detector",
    show_default=True,
    help="The default model the simulated experts' corrections retrain.",
)
@click.option("--retrain-epochs", default=30, show_default=True, help="Epochs of that retraining.")
@click.option("--json", "as_json", is_flag=True, help="Print the final state as JSON.")
def demo(
    no_browser: bool,
    exit_after_ready: bool,
    images: Path | None,
    sheets: int,
    profile: str,
    no_app: bool,
    simulate_experts: bool,
    expert_sheets: int,
    retrain_model: str,
    retrain_epochs: int,
    as_json: bool,
) -> None:
    """Run PlantAI end to end: Label Studio with pre-annotations, the catalog, FiftyOne.

    Starts a local Label Studio, trains the four default models on generated sheets the first
    time (cached after), serves them, imports generated specimens (and yours with --images),
    creates a review project with every task pre-annotated, syncs it to FiftyOne and opens the
    App. Everything lives under $PLANTAI_HOME/demo and a rerun reuses it. Ctrl-C stops it all.

    With --simulate-experts the correction loop runs once, so you can watch it: version 2 of a
    model is trained on the experts' corrections, promoted only if it beats version 1 on the same
    held-out sheets, and served to Label Studio without a restart.

    \b
    Examples:
      plantai demo
      plantai demo --simulate-experts
      plantai demo --images ~/scans --no-browser
    """
    from herbarium.settings import plantai_home
    from plantai.demo import Demo, DemoSettings

    settings = DemoSettings(
        home=plantai_home(),
        user_images=images,
        sheets=sheets,
        profile=profile,
        real_samples=_samples_dir(),
        launch_app=not no_app,
        simulate_experts=simulate_experts,
        expert_sheets=expert_sheets,
        retrain_model=retrain_model,
        retrain_epochs=retrain_epochs,
    )
    json_out = _stdout_for_json_only() if as_json else sys.stdout
    runner = Demo(settings, say=lambda line: click.echo(line, err=as_json))
    try:
        state = runner.run()
        project_url = f"{state.label_studio_url}/projects/{state.project_id}/data"
        lines = [
            "",
            f"Label Studio   {project_url}",
            "               log in, open a task: the boxes, the plant mask and the phenology are the models';",
            "               give each region a verdict and the sheet a review state, then Submit.",
            f"FiftyOne App   {state.app_url or '(not launched)'}",
            f"               dataset {state.dataset}: ai_* fields are predictions, expert_* the reviews;",
            "               the PlantAI dashboard is open beside the samples, saved views are in the view bar,",
            "               and the operators (press `) sync, send views for review, retrain and export.",
            f"Backend        {state.backend_url}  (models: {', '.join(f'{k}@{v}' for k, v in state.models.items())})",
        ]
        if state.expert_round:
            done = state.expert_round
            lines += [
                f"Expert round   {done['production']} -> {done['candidate']}: {done['status']} "
                f"({done['metric']} {done['production_score']:.3f} -> {done['candidate_score']:.3f})",
                "               in Label Studio each task now holds both versions' predictions;",
                "               `plantai models show " + str(done["model"]) + "` lists both with their metrics.",
            ]
        for line in lines:
            click.echo(line, err=as_json)
        if as_json:
            json_out.write(json.dumps(state.__dict__) + "\n")
            json_out.flush()
        click.echo(
            f"READY label_studio={state.label_studio_url} app={state.app_url} "
            f"tasks={state.tasks} predicted={state.predicted}"
            + (f" expert_round={state.expert_round['status']}" if state.expert_round else ""),
            err=as_json,
        )
        if exit_after_ready:
            return
        if not no_browser:
            webbrowser.open(project_url)
            if state.app_url:
                webbrowser.open(state.app_url)
        click.echo("Press Ctrl-C to stop everything.", err=as_json)
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    finally:
        runner.stop()


def _samples_dir() -> Path | None:
    from herbarium.real_sheets import default_samples_dir

    return default_samples_dir()
