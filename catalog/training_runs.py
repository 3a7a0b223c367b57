"""Training runs in the catalog: their records, and the lock that lets one job at a time train a model.

Mixed into :class:`catalog.registry.Catalog`, whose transactions (``_read``, ``_write``) it uses; nothing
outside the catalog touches a session.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.errors import CatalogError, TrainingBusyError, UnknownTrainingRunError
from catalog.names import validate_model_name
from catalog.records import TrainingRunInfo
from catalog.schema import TRAINING_STATUSES, TrainingRun, utc_now

T = TypeVar("T")


class TrainingRuns:
    """The catalog's training-run methods."""

    def _read(self, operation: Callable[[Session], T]) -> T:
        raise NotImplementedError  # the Catalog's

    def _write(self, operation: Callable[[Session], T]) -> T:
        raise NotImplementedError  # the Catalog's

    def create_training_run(
        self,
        model_name: str,
        parameters: Mapping[str, Any] | None = None,
        dataset_snapshot: str | None = None,
        log_path: Path | str | None = None,
        status: str = "queued",
    ) -> TrainingRunInfo:
        validate_model_name(model_name)
        _check_status(status)
        started = utc_now() if status == "running" else None

        def apply(session: Session) -> TrainingRunInfo:
            run = TrainingRun(
                model_name=model_name,
                status=status,
                parameters=dict(parameters or {}),
                dataset_snapshot=dataset_snapshot,
                log_path=str(log_path) if log_path is not None else None,
                started_at=started,
            )
            session.add(run)
            session.flush()
            return TrainingRunInfo.of(run)

        return self._write(apply)

    def update_training_run(
        self,
        run_id: int,
        status: str | None = None,
        log_path: Path | str | None = None,
        parameters: Mapping[str, Any] | None = None,
        dataset_snapshot: str | None = None,
    ) -> TrainingRunInfo:
        """Change a run's status (timing ``started_at``/``finished_at``), log path, parameters or snapshot."""
        if status is not None:
            _check_status(status)

        def apply(session: Session) -> TrainingRunInfo:
            run = session.get(TrainingRun, run_id, with_for_update=True)
            if run is None:
                raise UnknownTrainingRunError(f"no training run with id {run_id}")
            now: datetime = utc_now()
            if status is not None:
                if status == "running" and run.started_at is None:
                    run.started_at = now
                if status in ("succeeded", "failed", "cancelled"):
                    run.finished_at = now
                run.status = status
            if log_path is not None:
                run.log_path = str(log_path)
            if parameters is not None:
                run.parameters = dict(parameters)
            if dataset_snapshot is not None:
                run.dataset_snapshot = dataset_snapshot
            session.flush()
            return TrainingRunInfo.of(run)

        return self._write(apply)

    def training_run(self, run_id: int) -> TrainingRunInfo:
        def read(session: Session) -> TrainingRunInfo:
            run = session.get(TrainingRun, run_id)
            if run is None:
                raise UnknownTrainingRunError(f"no training run with id {run_id}")
            return TrainingRunInfo.of(run)

        return self._read(read)

    def recover_stale_runs(self, model: str | None = None) -> list[int]:
        """Mark ``running`` runs whose process (on this host) is gone as ``failed``; returns their ids."""

        def apply(session: Session) -> list[int]:
            query = select(TrainingRun).where(TrainingRun.status == "running")
            if model is not None:
                query = query.where(TrainingRun.model_name == model)
            failed = []
            for run in session.scalars(query).all():
                if _stale(run):
                    run.status, run.finished_at = "failed", utc_now()
                    run.parameters = {**run.parameters, "reason": "the job's process died (killed?) while running"}
                    failed.append(run.id)
            return failed

        return self._write(apply)

    def acquire_run(self, run_id: int) -> TrainingRunInfo:
        """``queued`` -> ``running`` unless another run of the model runs: then it is ``cancelled``, TrainingBusyError.

        The training-run table is the lock: one job per model, across processes and hosts sharing a catalog.
        """
        self.recover_stale_runs(self.training_run(run_id).model_name)
        owner = {"pid": os.getpid(), "host": socket.gethostname()}

        def apply(session: Session) -> tuple[TrainingRunInfo, int | None]:
            run = session.get(TrainingRun, run_id, with_for_update=True)
            if run is None:
                raise UnknownTrainingRunError(f"no training run with id {run_id}")
            other = session.scalars(
                select(TrainingRun.id).where(
                    TrainingRun.model_name == run.model_name, TrainingRun.status == "running", TrainingRun.id != run.id
                )
            ).first()
            if other is not None:
                run.status, run.finished_at = "cancelled", utc_now()
                run.parameters = {**run.parameters, "reason": f"training run {other} of this model was running"}
            else:
                run.status, run.started_at = "running", utc_now()
                run.parameters = {**run.parameters, "owner": owner}
            session.flush()
            return TrainingRunInfo.of(run), other

        info, other = self._write(apply)
        if other is not None:
            raise TrainingBusyError(f"model {info.model_name!r} is already being trained by run {other}")
        return info


def _check_status(status: str) -> None:
    if status not in TRAINING_STATUSES:
        raise CatalogError(f"training status {status!r} is not one of {', '.join(TRAINING_STATUSES)}")


def _stale(run: TrainingRun) -> bool:
    owner = run.parameters.get("owner") or {}
    pid, host = owner.get("pid"), owner.get("host")
    return isinstance(pid, int) and host == socket.gethostname() and not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
