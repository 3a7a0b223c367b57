"""Connecting a running PlantAI backend to a Label Studio project, through the SDK.

Label Studio registers the backend's ``/webhook`` itself when a backend is added: we add no
webhook of our own, or every event would arrive twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

BACKEND_TITLE = "PlantAI"


@dataclass(frozen=True)
class Connection:
    project: int
    backend_id: int
    url: str
    created: bool  # False when the backend was already connected
    model_version: str | None


def connect_backend(
    client: Any, project: int, url: str, title: str = BACKEND_TITLE, extra_params: dict[str, Any] | None = None
) -> Connection:
    """Connect ``url`` to ``project`` once (a second call finds it), and make the project show its predictions."""
    url = url.rstrip("/")
    existing = [b for b in client.ml.list(project=project) if str(b.url).rstrip("/") == url]
    params = json.dumps(extra_params) if extra_params else None
    if existing:
        backend = existing[0]
        created = False
        if params is not None:
            backend = client.ml.update(id=backend.id, url=url, project=project, extra_params=params)
    else:
        backend = client.ml.create(
            project=project, url=url, title=title, is_interactive=False, **({"extra_params": params} if params else {})
        )
        created = True
    # The labelling stream pre-annotates from the backend whose title is the project's model_version.
    client.projects.update(id=project, model_version=backend.title or title, show_collab_predictions=True)
    return Connection(project, int(backend.id), url, created, getattr(backend, "model_version", None))


def predict_all_tasks(client: Any, project: int) -> None:
    """Ask Label Studio to fetch predictions for every task of the project (the Data Manager action)."""
    client.actions.create(
        id="retrieve_tasks_predictions", project=project, selected_items={"all": True, "excluded": []}
    )
