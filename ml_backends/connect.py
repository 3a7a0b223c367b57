"""Connecting a running PlantAI backend to a Label Studio project, through the SDK.

Label Studio registers the backend's ``/webhook`` itself when a backend is added: we add no
webhook of our own, or every event would arrive twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ml_backends.admission import BasicAuth

BACKEND_TITLE = "PlantAI"
PREDICT_ALL_TIMEOUT_S = 900


@dataclass(frozen=True)
class Connection:
    project: int
    backend_id: int
    url: str
    created: bool  # False when the backend was already connected
    model_version: str | None


def connect_backend(
    client: Any,
    project: int,
    url: str,
    title: str = BACKEND_TITLE,
    extra_params: dict[str, Any] | None = None,
    basic_auth: BasicAuth | None = None,
) -> Connection:
    """Connect ``url`` to ``project`` once (a second call finds it), and make the project show its predictions.

    With ``basic_auth``, Label Studio sends those credentials on every call to the backend (its
    "Basic Authentication" option), and a backend already connected is updated to send them.
    """
    url = url.rstrip("/")
    existing = [b for b in client.ml.list(project=project) if str(b.url).rstrip("/") == url]
    options: dict[str, Any] = {}
    if extra_params:
        options["extra_params"] = json.dumps(extra_params)
    if basic_auth is not None:
        options.update(auth_method="BASIC_AUTH", basic_auth_user=basic_auth.user, basic_auth_pass=basic_auth.password)
    if existing:
        backend = existing[0]
        created = False
        if options:
            backend = client.ml.update(id=backend.id, url=url, project=project, **options)
    else:
        backend = client.ml.create(project=project, url=url, title=title, is_interactive=False, **options)
        created = True
    if basic_auth is not None:
        _authenticate_webhooks(client, project, url, basic_auth)
    # The labelling stream pre-annotates from the backend whose title is the project's model_version.
    client.projects.update(id=project, model_version=backend.title or title, show_collab_predictions=True)
    return Connection(project, int(backend.id), url, created, getattr(backend, "model_version", None))


def _authenticate_webhooks(client: Any, project: int, url: str, basic_auth: BasicAuth) -> None:
    """Label Studio's project webhook to the backend does not send the model's basic auth: give it the header."""
    for hook in client.webhooks.list(project=project):
        if str(hook.url).rstrip("/") == f"{url}/webhook":
            headers = {**(hook.headers or {}), "Authorization": basic_auth.header()}
            client.webhooks.update(id=hook.id, headers=headers)


def predict_all_tasks(client: Any, project: int) -> None:
    """Ask Label Studio to fetch predictions for every task of the project (the Data Manager action)."""
    client.actions.create(
        id="retrieve_tasks_predictions",
        project=project,
        selected_items={"all": True, "excluded": []},
        # Label Studio answers once the backend has predicted every task: minutes on a busy CPU.
        request_options={"timeout": PREDICT_ALL_TIMEOUT_S},
    )
