"""``plantai backends``: connect PlantAI backends to Label Studio projects."""

from __future__ import annotations

import json

import click

from connectors.labelstudio_client import label_studio_client
from plantai.commands.setting_options import label_studio_options, setting_option


@click.group()
def backends() -> None:
    """Connect running PlantAI backends (`plantai serve`) to Label Studio projects."""


@backends.command()
@click.option("--project", type=int, required=True, help="Label Studio project id.")
@click.option("--url", default="http://127.0.0.1:9090", show_default=True, help="The backend's URL.")
@label_studio_options()
@setting_option("BASIC_AUTH_USER", "--basic-auth-user", help="The backend's basic auth user, sent by Label Studio.")
@setting_option("BASIC_AUTH_PASS", "--basic-auth-pass", help="The backend's basic auth password.")
@click.option("--tiling", is_flag=True, help="Predict small organs on overlapping tiles (slower, finer).")
@click.option("--predict-all", is_flag=True, help="Then ask Label Studio to pre-annotate every task now.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def connect(
    project: int,
    url: str,
    label_studio_url: str,
    api_key: str,
    basic_auth_user: str | None,
    basic_auth_pass: str | None,
    tiling: bool,
    predict_all: bool,
    as_json: bool,
) -> None:
    """Connect the backend at --url to a project (once: running it again changes nothing).

    \b
    Example:
      plantai backends connect --project 3 --url http://127.0.0.1:9090 --predict-all
    """
    from ml_backends.admission import AdmissionConfigError, BasicAuth
    from ml_backends.connect import connect_backend, predict_all_tasks

    try:
        auth = BasicAuth.of(basic_auth_user, basic_auth_pass)
    except AdmissionConfigError as exc:
        raise click.UsageError(f"{exc} (--basic-auth-user, --basic-auth-pass)") from None
    client = label_studio_client(label_studio_url, api_key)
    try:
        connection = connect_backend(
            client, project, url, extra_params={"tiling": True} if tiling else None, basic_auth=auth
        )
        if predict_all:
            predict_all_tasks(client, project)
    except Exception as exc:  # the SDK's errors carry Label Studio's message
        raise click.ClickException(f"could not connect {url} to project {project}: {exc}") from None
    if as_json:
        click.echo(json.dumps({**connection.__dict__, "predict_all": predict_all}))
        return
    state = "connected" if connection.created else "already connected"
    how = " with basic auth" if auth else ""
    click.echo(f"{url} {state} to project {project}{how} (backend id {connection.backend_id})")
