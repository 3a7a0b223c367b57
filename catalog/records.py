"""What the catalog API returns: plain frozen records, detached from the database session."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from catalog.schema import Artefact, Model, ModelVersion, StageChange, TrainingRun


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# Figures a version was measured with on another dataset than its own: ``mAP50-95@<dataset>``.
METRIC_DATASET_SEPARATOR = "@"


def metric_key(metric: str, dataset: str) -> str:
    return f"{metric}{METRIC_DATASET_SEPARATOR}{dataset}"


class _Record:
    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = _jsonable(asdict(self))  # type: ignore[call-overload]
        return result


@dataclass(frozen=True)
class ArtefactInfo(_Record):
    role: str
    format: str
    sha256: str
    size: int
    created_at: datetime

    @classmethod
    def of(cls, row: Artefact) -> ArtefactInfo:
        return cls(row.role, row.format, row.sha256, row.size, _utc(row.created_at) or row.created_at)


@dataclass(frozen=True)
class VersionInfo(_Record):
    model: str
    version: str
    task: str
    labels: tuple[str, ...]
    stage: str
    framework: str
    sha256: str
    size: int
    metrics: dict[str, Any]
    metrics_dataset: str | None
    parent: str | None
    training_run_id: int | None
    registered_by: str
    registered_at: datetime
    artefacts: tuple[ArtefactInfo, ...] = field(default=())

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def artefact(self, role: str) -> ArtefactInfo | None:
        return next((a for a in self.artefacts if a.role == role), None)

    def metrics_on(self, dataset: str) -> dict[str, Any]:
        """This version's figures measured on ``dataset``, by plain metric name ({} if none)."""
        suffix = METRIC_DATASET_SEPARATOR + dataset
        out = {k[: -len(suffix)]: v for k, v in self.metrics.items() if k.endswith(suffix)}
        if dataset == self.metrics_dataset:
            out.update({k: v for k, v in self.metrics.items() if METRIC_DATASET_SEPARATOR not in k})
        return out

    @classmethod
    def of(cls, row: ModelVersion) -> VersionInfo:
        return cls(
            model=row.model.name,
            version=row.version,
            task=row.model.task,
            labels=tuple(row.model.labels),
            stage=row.stage,
            framework=row.framework,
            sha256=row.sha256,
            size=row.size,
            metrics=dict(row.metrics),
            metrics_dataset=row.metrics_dataset,
            parent=row.parent.version if row.parent else None,
            training_run_id=row.training_run_id,
            registered_by=row.registered_by,
            registered_at=_utc(row.registered_at) or row.registered_at,
            artefacts=tuple(ArtefactInfo.of(a) for a in row.artefacts),
        )


@dataclass(frozen=True)
class ModelInfo(_Record):
    name: str
    task: str
    kind: str  # detect-nonvegetal, detect-organs, segment-plant or classify-trait
    framework: str
    labels: tuple[str, ...]
    production: str | None
    latest: str | None
    version_count: int
    created_at: datetime

    @classmethod
    def of(cls, row: Model, kind: str, ordered_versions: list[ModelVersion]) -> ModelInfo:
        production = next((v.version for v in ordered_versions if v.stage == "production"), None)
        return cls(
            name=row.name,
            task=row.task,
            kind=kind,
            framework=row.framework,
            labels=tuple(row.labels),
            production=production,
            latest=ordered_versions[-1].version if ordered_versions else None,
            version_count=len(ordered_versions),
            created_at=_utc(row.created_at) or row.created_at,
        )


@dataclass(frozen=True)
class StageChangeInfo(_Record):
    version: str
    from_stage: str | None
    to_stage: str
    action: str
    changed_by: str
    changed_at: datetime

    @classmethod
    def of(cls, row: StageChange, version: str) -> StageChangeInfo:
        changed_at = _utc(row.changed_at) or row.changed_at
        return cls(version, row.from_stage, row.to_stage, row.action, row.changed_by, changed_at)


@dataclass(frozen=True)
class TrainingRunInfo(_Record):
    id: int
    model_name: str
    status: str
    parameters: dict[str, Any]
    dataset_snapshot: str | None
    log_path: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: TrainingRun) -> TrainingRunInfo:
        return cls(
            id=row.id,
            model_name=row.model_name,
            status=row.status,
            parameters=dict(row.parameters),
            dataset_snapshot=row.dataset_snapshot,
            log_path=row.log_path,
            created_at=_utc(row.created_at) or row.created_at,
            started_at=_utc(row.started_at),
            finished_at=_utc(row.finished_at),
        )


@dataclass(frozen=True)
class ArtefactProblem(_Record):
    model: str
    version: str
    role: str
    sha256: str
    problem: str


@dataclass(frozen=True)
class VerifyReport(_Record):
    checked: int
    problems: tuple[ArtefactProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems
