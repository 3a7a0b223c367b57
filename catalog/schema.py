"""The catalog's tables (SQLAlchemy 2 typed ORM). Alembic migrations in ``catalog/migrations`` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, DateTime, ForeignKey, Index, MetaData, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STAGES = ("staging", "production", "archived")
TRAINING_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")

# Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The database, not only the code, guarantees at most one production version per model.
ONE_PRODUCTION_WHERE = "stage = 'production'"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)
        dict[str, Any]: JSON,
        list[str]: JSON,
        datetime: DateTime(timezone=True),
    }


class Model(Base):
    """A named model: what it predicts (task, label set) and how it runs (framework)."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(100))
    framework: Mapped[str] = mapped_column(String(20))
    labels: Mapped[list[str]]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    versions: Mapped[list[ModelVersion]] = relationship(back_populates="model", foreign_keys="ModelVersion.model_id")


class TrainingRun(Base):
    """One training run; a version may name the run that produced it."""

    __tablename__ = "training_runs"
    __table_args__ = (CheckConstraint(f"status IN {TRAINING_STATUSES!r}", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200))  # the model may not be registered yet
    status: Mapped[str] = mapped_column(String(20))
    parameters: Mapped[dict[str, Any]]
    dataset_snapshot: Mapped[str | None] = mapped_column(String(500))
    log_path: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ModelVersion(Base):
    """One version of a model: its weights (by sha256), metrics, lineage and stage."""

    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(f"stage IN {STAGES!r}", name="stage"),
        Index("uq_model_versions_model_id_version", "model_id", "version", unique=True),
        Index(
            "uq_model_versions_one_production",
            "model_id",
            unique=True,
            sqlite_where=text(ONE_PRODUCTION_WHERE),
            postgresql_where=text(ONE_PRODUCTION_WHERE),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    version: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(20))
    framework: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]]
    metrics_dataset: Mapped[str | None] = mapped_column(String(500))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    training_run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id"))
    registered_by: Mapped[str] = mapped_column(String(200))
    registered_at: Mapped[datetime] = mapped_column(default=utc_now)

    model: Mapped[Model] = relationship(back_populates="versions", foreign_keys=[model_id])
    parent: Mapped[ModelVersion | None] = relationship(remote_side=[id])
    artefacts: Mapped[list[Artefact]] = relationship(back_populates="version", order_by="Artefact.id")


class Artefact(Base):
    """A file of a version in the content-addressed store: the weights, or a sibling such as an ONNX export."""

    __tablename__ = "artefacts"
    __table_args__ = (Index("uq_artefacts_version_id_role", "version_id", "role", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    role: Mapped[str] = mapped_column(String(20))  # "weights" (the registered file) or "onnx"
    format: Mapped[str] = mapped_column(String(20))  # file suffix without the dot: pt, onnx, pth
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    version: Mapped[ModelVersion] = relationship(back_populates="artefacts")


class StageChange(Base):
    """Every stage a version entered, in order; ``rollback`` replays it to find the previous production."""

    __tablename__ = "stage_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(20))  # register, promote, demote, rollback, archive
    changed_by: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(default=utc_now)
