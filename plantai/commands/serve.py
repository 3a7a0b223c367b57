"""``plantai serve``: run a PlantAI ML backend for Label Studio."""

from __future__ import annotations

from typing import Any

import click

from ml_backends.kinds import BACKEND_KINDS


@click.command()
@click.argument("backend", type=click.Choice(sorted(BACKEND_KINDS)), default="all")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9090, show_default=True, help="Port to listen on.")
@click.option("--threads", default=4, show_default=True, help="Request threads per worker (sharing its model cache).")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes, each with its own model cache (memory grows with each); gunicorn replaces one that dies.",
)
@click.option("--timeout", default=120, show_default=True, help="Seconds before a stuck request is abandoned.")
@click.option(
    "--retrain-triggers/--no-retrain-triggers",
    default=True,
    show_default=True,
    help="Queue retraining jobs on Label Studio's Start training and every N validated annotations.",
)
def serve(backend: str, host: str, port: int, threads: int, workers: int, timeout: int, retrain_triggers: bool) -> None:
    """Serve the catalog's production models to Label Studio as pre-annotations.

    BACKEND picks which models: nonvegetal, organs, segmentation, traits, or all (default).
    One backend can fill every tag of a project; connect it with `plantai backends connect`.
    A segment-anything checkpoint in production for segment-plant replaces the YOLO segmenter,
    prompted by the organ detector's boxes, or by the boxes an annotator draws (interactive mode).

    Settings come from the environment, with Label Studio's own names:
    LOCAL_FILES_DOCUMENT_ROOT (read task images from disk), LABEL_STUDIO_URL and
    LABEL_STUDIO_API_KEY (download the others, from that host only), PLANTAI_HOME or
    PLANTAI_CATALOG_URL (the catalog).

    Label Studio's webhook events reach /webhook: "Start training" queues a retraining job for the
    project's models (a FiftyOne delegated operation), and so does every Nth validated annotation
    when the project sets N (`plantai retrain MODEL --project ID --every N`).

    \b
    Example:
      LOCAL_FILES_DOCUMENT_ROOT=/data/scans plantai serve all --port 9090
    """
    from gunicorn.app.base import BaseApplication

    from ml_backends.admission import AdmissionConfigError, BasicAuth, RequestLimits, exposure_warning
    from ml_backends.server import app_from_environment

    try:  # settings that cannot work fail here, in the terminal, not in the worker
        auth = BasicAuth.from_settings()
        RequestLimits.from_settings()
    except AdmissionConfigError as exc:
        raise click.ClickException(str(exc)) from None

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "worker_class": "gthread",
                "timeout": timeout,
                "accesslog": "-",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # Built in the worker, not the master: no database connection or torch state crosses the fork.
            on_event = None
            if retrain_triggers:
                from training.retrain_queue import on_label_studio_event

                on_event = on_label_studio_event
            return app_from_environment(backend, on_event=on_event)

    warning = exposure_warning(host, port, auth)
    if warning:
        click.secho(warning, fg="red", bold=True, err=True)
    click.echo(f"PlantAI backend '{backend}' on http://{host}:{port}" + (" (basic auth)" if auth else ""))
    Gunicorn().run()
