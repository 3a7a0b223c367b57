"""What a sync did, and its error: a report the CLI prints and the error carries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


class SyncError(RuntimeError):
    """A sync that could not finish; what was written stays, and the next sync completes the job."""

    def __init__(self, message: str, report: SyncReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class UnknownLabel:
    """A label no PlantAI label set resolves for its control: kept on the sample, flagged, reported."""

    task_id: int
    field: str
    label: str


@dataclass
class SyncReport:
    """What one sync did."""

    project_id: int
    dataset: str
    full: bool = False
    since: str | None = None  # the cursor this sync started from (None: every task was read)
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    fetched: int = 0
    labels: Counter[str] = field(default_factory=Counter)  # labels written per field
    unknown_labels: list[UnknownLabel] = field(default_factory=list)
    unresolved_images: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (task id, why its labels were not read)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "dataset": self.dataset,
            "full": self.full,
            "since": self.since,
            "added": self.added,
            "updated": self.updated,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "fetched": self.fetched,
            "labels": dict(sorted(self.labels.items())),
            "unknown_labels": [vars(u) for u in self.unknown_labels],
            "unresolved_images": [{"task_id": t, "image": i} for t, i in self.unresolved_images],
            "errors": [{"task_id": t, "error": e} for t, e in self.errors],
            "seconds": round(self.seconds, 3),
        }


Progress = Callable[[int, int], None]  # (tasks done, tasks to do) after each committed batch
