"""Label Studio's webhook events: which actions PlantAI acts on, and the project an event is about."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TRAINING_ACTIONS = frozenset({"START_TRAINING"})
ANNOTATION_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED"})


def event_project(event: Mapping[str, Any]) -> int | None:
    """The project id of a webhook event (``project.id``, else ``task.project``); None when it names none."""
    project = event.get("project")
    if isinstance(project, Mapping):
        project = project.get("id")
    if project is None and isinstance(event.get("task"), Mapping):
        project = event["task"].get("project")
    if isinstance(project, bool):
        return None
    try:
        return int(project) if project is not None else None
    except (TypeError, ValueError):
        return None
