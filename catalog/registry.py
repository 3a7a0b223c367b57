"""The catalog API: register, list, promote, roll back, archive, verify and export model versions.

Every method validates first and then applies in one transaction: on any error the catalog
(database and store) is as it was.
"""

from __future__ import annotations

import getpass
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from catalog.database import create_catalog_engine, default_catalog_url, upgrade_to_head
from catalog.errors import (
    ArtefactError,
    ConcurrentUpdateError,
    DuplicateVersionError,
    InvalidMetricsError,
    InvalidTaskError,
    InvalidWeightsError,
    LabelMismatchError,
    StageError,
    UnknownModelError,
    UnknownTrainingRunError,
    UnknownVersionError,
)
from catalog.names import validate_model_name
from catalog.records import (
    METRIC_DATASET_SEPARATOR,
    ArtefactInfo,
    ArtefactProblem,
    ModelInfo,
    StageChangeInfo,
    VerifyReport,
    VersionInfo,
    metric_key,
)
from catalog.schema import Artefact, Model, ModelVersion, StageChange, TrainingRun
from catalog.semver import next_version, validate_version, version_key
from catalog.store import ContentStore, StoredFile
from catalog.tasks import TaskSpec, label_set_for, match_class_names, resolve_labels, resolve_task
from catalog.training_runs import TrainingRuns
from catalog.weights import (
    FORMAT_BY_FRAMEWORK,
    WeightsInfo,
    infer_framework,
    inspect_weights,
    quiet_ultralytics,
    yolo_class,
)
from herbarium.settings import plantai_home

T = TypeVar("T")

_WRITE_ATTEMPTS = 6
WEIGHTS_ROLE = "weights"
ONNX_ROLE = "onnx"


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def validate_metrics(metrics: Mapping[str, Any] | None) -> tuple[dict[str, float], str | None]:
    """``{"dataset": "synth-val-v1", "mAP50": 0.71}`` → the numbers and the dataset they were measured on."""
    if metrics is None:
        return {}, None
    if not isinstance(metrics, Mapping):
        raise InvalidMetricsError(f"metrics must be a JSON object, not {type(metrics).__name__}")
    dataset = metrics.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise InvalidMetricsError('metrics must name the dataset they were measured on: {"dataset": "...", ...}')
    values: dict[str, float] = {}
    for key, value in metrics.items():
        if key == "dataset":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidMetricsError(f"metric {key!r} must be a finite number, not {value!r}")
        values[str(key)] = float(value)
    return values, dataset


def _export_ultralytics(source: Path, copy: Path, imgsz: int | None) -> Path:
    # Export beside a copy: Ultralytics writes its output next to the weights, never into the store.
    shutil.copyfile(source, copy)
    with quiet_ultralytics():
        model = yolo_class()(str(copy))
        size = imgsz or int(model.overrides.get("imgsz") or 640)
        return Path(model.export(format="onnx", imgsz=size, verbose=False))


def _export_sheetnet(source: Path, out: Path) -> Path:
    from catalog.sheetnet import network

    return network.export_onnx(network.load(source), out)


def _sorted_versions(rows: Sequence[ModelVersion]) -> list[ModelVersion]:
    return sorted(rows, key=lambda row: version_key(row.version))


class Catalog(TrainingRuns):
    """Versioned PlantAI models: weights in a content-addressed store, everything else in a database."""

    def __init__(self, engine: Engine, home: Path) -> None:
        self.engine = engine
        self.home = home
        self.store = ContentStore(home / "store")
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None, home: Path | None = None) -> Catalog:
        """Open (and migrate to head) the catalog at ``url`` (default ``$PLANTAI_CATALOG_URL``, else SQLite in home)."""
        home = Path(home) if home is not None else plantai_home()
        home.mkdir(parents=True, exist_ok=True)
        engine = create_catalog_engine(url or default_catalog_url(home))
        try:
            upgrade_to_head(engine)
        except Exception:
            engine.dispose()
            raise
        return cls(engine, home)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -----------------------------------------------------------------------

    def _read(self, operation: Callable[[Session], T]) -> T:
        with self._sessions.begin() as session:
            return operation(session)

    def _write(self, operation: Callable[[Session], T]) -> T:
        """Run ``operation`` in one transaction; retry when a concurrent writer got there first.

        A retry re-runs every check, so a lost race ends in the same clear error a late caller
        would get (e.g. DuplicateVersionError), never in a half-applied change.
        """
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self._sessions.begin() as session:
                    return operation(session)
            except (IntegrityError, OperationalError) as error:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise ConcurrentUpdateError(
                        f"catalog busy, gave up after {_WRITE_ATTEMPTS} tries: {error}"
                    ) from error
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _model(self, session: Session, name: str, lock: bool = False) -> Model:
        query = select(Model).where(Model.name == name)
        if lock:  # serialises writers of one model on PostgreSQL; SQLite's BEGIN IMMEDIATE already does
            query = query.with_for_update()
        model = session.scalars(query).one_or_none()
        if model is None:
            raise UnknownModelError(f"no model named {name!r} in the catalog")
        return model

    def _versions(self, session: Session, model: Model) -> list[ModelVersion]:
        query = (
            select(ModelVersion)
            .where(ModelVersion.model_id == model.id)
            .options(selectinload(ModelVersion.artefacts), selectinload(ModelVersion.parent))
        )
        return _sorted_versions(session.scalars(query).all())

    def _version(self, session: Session, model: Model, version: str) -> ModelVersion:
        row = session.scalars(
            select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == version)
        ).one_or_none()
        if row is None:
            raise UnknownVersionError(f"model {model.name!r} has no version {version!r}")
        return row

    def _record_stage(self, session: Session, version: ModelVersion, to_stage: str, action: str, by: str) -> None:
        session.add(
            StageChange(
                model_id=version.model_id,
                version_id=version.id,
                from_stage=None if action == "register" else version.stage,
                to_stage=to_stage,
                action=action,
                changed_by=by,
            )
        )
        version.stage = to_stage
        session.flush()  # the demotion must reach the database before the promotion (one-production index)

    def _make_production(self, session: Session, model: Model, target: ModelVersion, action: str, by: str) -> None:
        current = session.scalars(
            select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.stage == "production")
        ).one_or_none()
        if current is not None and current.id == target.id:
            return
        if current is not None:
            self._record_stage(session, current, "staging", "demote", by)
        self._record_stage(session, target, "production", action, by)

    # -- registering --------------------------------------------------------------------------

    def register(
        self,
        name: str,
        task: str,
        weights: Path | str,
        labels: Sequence[str] | None = None,
        version: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        framework: str | None = None,
        parent: str | None = None,
        registered_by: str | None = None,
        training_run_id: int | None = None,
        promote: bool = False,
    ) -> VersionInfo:
        """Register ``weights`` as a new version of model ``name`` (created on first use), in staging.

        ``version`` defaults to the next minor version; ``framework`` to the file suffix's
        (.pt ultralytics, .onnx onnx, .pth sam); ``labels`` to the taxonomy's label set for
        ``task``. The weights must load for the framework and task and predict these labels.
        """
        validate_model_name(name)
        spec = resolve_task(task)
        weights = Path(weights)
        framework = framework or infer_framework(weights)
        if version is not None:
            validate_version(version)
        if parent is not None:
            validate_version(parent)
        metric_values, metrics_dataset = validate_metrics(metrics)
        by = registered_by or _current_user()

        existing = self._read(lambda s: self._existing_model_facts(s, name, version))
        if existing is not None:
            self._check_same_model(name, spec, framework, existing)
            model_labels = existing[2]
            if labels is not None:
                match_class_names(label_set_for(spec, model_labels), model_labels, labels, f"labels given for {name!r}")
        else:
            model_labels = resolve_labels(spec, labels)
        if framework == "sam" and spec.task != "segment-plant":
            raise InvalidTaskError(f"SAM weights serve task segment-plant only, not {spec.task!r}")
        info = inspect_weights(weights, framework, spec.task)
        self._check_weights_fit(name, spec, model_labels, info, weights.name)

        stored = self.store.add(weights, FORMAT_BY_FRAMEWORK[framework])

        def apply(session: Session) -> VersionInfo:
            model = session.scalars(select(Model).where(Model.name == name).with_for_update()).one_or_none()
            if model is None:
                model = Model(name=name, task=spec.task, framework=framework, labels=list(model_labels))
                session.add(model)
                session.flush()
            else:
                self._check_same_model(name, spec, framework, (model.task, model.framework, tuple(model.labels)))
            rows = self._versions(session, model)
            new_version = version or next_version([row.version for row in rows])
            if any(row.version == new_version for row in rows):
                raise DuplicateVersionError(f"model {name!r} already has version {new_version!r}")
            parent_row = self._version(session, model, parent) if parent is not None else None
            if training_run_id is not None and session.get(TrainingRun, training_run_id) is None:
                raise UnknownTrainingRunError(f"no training run with id {training_run_id}")
            row = ModelVersion(
                model=model,
                version=new_version,
                stage="staging",
                framework=framework,
                sha256=stored.sha256,
                size=stored.size,
                metrics=metric_values,
                metrics_dataset=metrics_dataset,
                parent=parent_row,
                training_run_id=training_run_id,
                registered_by=by,
            )
            session.add(row)
            session.flush()
            session.add(
                Artefact(version=row, role=WEIGHTS_ROLE, format=stored.format, sha256=stored.sha256, size=stored.size)
            )
            self._record_stage(session, row, "staging", "register", by)
            if promote:
                self._make_production(session, model, row, "promote", by)
            session.flush()
            session.refresh(row)
            return VersionInfo.of(row)

        return self._apply_with_file(stored, apply)

    def _apply_with_file(self, stored: StoredFile, apply: Callable[[Session], T]) -> T:
        """Commit ``apply``; if it fails, take back the file this call added to the store."""
        try:
            return self._write(apply)
        except BaseException:
            if stored.created and not self._read(
                lambda s: s.scalars(select(Artefact.id).where(Artefact.sha256 == stored.sha256)).first()
            ):
                self.store.remove(stored.sha256, stored.format)
            raise

    def _existing_model_facts(
        self, session: Session, name: str, version: str | None
    ) -> tuple[str, str, tuple[str, ...]] | None:
        """Cheap checks before loading any weights: the model's task, framework, labels; a duplicate version."""
        model = session.scalars(select(Model).where(Model.name == name)).one_or_none()
        if model is None:
            return None
        if version is not None and any(row.version == version for row in self._versions(session, model)):
            raise DuplicateVersionError(f"model {name!r} already has version {version!r}")
        return model.task, model.framework, tuple(model.labels)

    @staticmethod
    def _check_same_model(
        name: str, spec: TaskSpec, framework: str, existing: tuple[str, str, tuple[str, ...]]
    ) -> None:
        task, model_framework, _labels = existing
        if spec.task != task:
            raise InvalidTaskError(f"model {name!r} is registered for task {task!r}, not {spec.task!r}")
        if framework != model_framework:
            raise InvalidWeightsError(f"model {name!r} holds {model_framework} weights, not {framework}")

    @staticmethod
    def _check_weights_fit(name: str, spec: TaskSpec, labels: Sequence[str], info: WeightsInfo, file: str) -> None:
        if info.yolo_task is not None and info.yolo_task != spec.yolo_task:
            raise InvalidWeightsError(
                f"{file} is a {info.yolo_task} model; task {spec.task!r} of {name!r} needs a {spec.yolo_task} model"
            )
        if info.class_names is not None:
            match_class_names(label_set_for(spec, labels), labels, info.class_names, f"class names of {file}")
        elif info.class_count is not None and info.class_count != len(labels):
            raise LabelMismatchError(
                f"{file} predicts {info.class_count} classes; label set {list(labels)} has {len(labels)}"
            )

    # -- reading ------------------------------------------------------------------------------

    def list_models(self) -> list[ModelInfo]:
        def read(session: Session) -> list[ModelInfo]:
            models = session.scalars(select(Model).order_by(Model.name)).all()
            return [ModelInfo.of(m, resolve_task(m.task).kind, self._versions(session, m)) for m in models]

        return self._read(read)

    def get(self, name: str) -> ModelInfo:
        def read(session: Session) -> ModelInfo:
            model = self._model(session, name)
            return ModelInfo.of(model, resolve_task(model.task).kind, self._versions(session, model))

        return self._read(read)

    def describe(self, name: str) -> tuple[ModelInfo, list[VersionInfo]]:
        """The model and its versions, read in one transaction."""

        def read(session: Session) -> tuple[ModelInfo, list[VersionInfo]]:
            model = self._model(session, name)
            rows = self._versions(session, model)
            return ModelInfo.of(model, resolve_task(model.task).kind, rows), [VersionInfo.of(v) for v in rows]

        return self._read(read)

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of ``name``, oldest (lowest semantic version) first."""
        return self._read(lambda s: [VersionInfo.of(v) for v in self._versions(s, self._model(s, name))])

    def version(self, name: str, version: str | None = None) -> VersionInfo:
        """One version; ``None`` means the production version."""

        def read(session: Session) -> VersionInfo:
            model = self._model(session, name)
            if version is not None:
                return VersionInfo.of(self._version(session, model, version))
            production = [v for v in self._versions(session, model) if v.stage == "production"]
            if not production:
                raise UnknownVersionError(f"model {name!r} has no production version; promote one first")
            return VersionInfo.of(production[0])

        return self._read(read)

    def history(self, name: str) -> list[StageChangeInfo]:
        """Stage changes of ``name``'s versions, oldest first."""

        def read(session: Session) -> list[StageChangeInfo]:
            model = self._model(session, name)
            names = {v.id: v.version for v in self._versions(session, model)}
            rows = session.scalars(select(StageChange).where(StageChange.model_id == model.id).order_by(StageChange.id))
            return [StageChangeInfo.of(row, names[row.version_id]) for row in rows]

        return self._read(read)

    # -- stages -------------------------------------------------------------------------------

    def promote(self, name: str, version: str, changed_by: str | None = None) -> VersionInfo:
        """Make ``version`` the production version; the previous one goes back to staging."""
        validate_version(version)
        by = changed_by or _current_user()

        def apply(session: Session) -> VersionInfo:
            model = self._model(session, name, lock=True)
            target = self._version(session, model, version)
            self._make_production(session, model, target, "promote", by)
            return VersionInfo.of(target)

        return self._write(apply)

    def rollback(self, name: str, changed_by: str | None = None) -> VersionInfo:
        """Put back the version that was in production before the current one (skipping archived ones)."""
        by = changed_by or _current_user()

        def apply(session: Session) -> VersionInfo:
            model = self._model(session, name, lock=True)
            rows = {v.id: v for v in self._versions(session, model)}
            changes = session.scalars(
                select(StageChange)
                .where(StageChange.model_id == model.id, StageChange.to_stage == "production")
                .order_by(StageChange.id)
            )
            # Replay: a promotion pushes, a rollback pops back to its target.
            stack: list[int] = []
            for change in changes:
                if change.action == "rollback" and change.version_id in stack:
                    del stack[stack.index(change.version_id) + 1 :]
                else:
                    stack.append(change.version_id)
            current = next((v for v in rows.values() if v.stage == "production"), None)
            if current is None:
                raise StageError(f"model {name!r} has no production version to roll back from")
            while stack and stack[-1] == current.id:
                stack.pop()
            while stack and (rows[stack[-1]].stage == "archived" or stack[-1] == current.id):
                stack.pop()
            if not stack:
                raise StageError(f"model {name!r} has no earlier production version to roll back to")
            target = rows[stack[-1]]
            self._make_production(session, model, target, "rollback", by)
            return VersionInfo.of(target)

        return self._write(apply)

    def archive(self, name: str, version: str, changed_by: str | None = None) -> VersionInfo:
        """Retire ``version`` (its files stay in the store); the production version cannot be archived."""
        validate_version(version)
        by = changed_by or _current_user()

        def apply(session: Session) -> VersionInfo:
            model = self._model(session, name, lock=True)
            target = self._version(session, model, version)
            if target.stage == "production":
                raise StageError(
                    f"{name}@{version} is in production: promote another version or roll back before archiving it"
                )
            if target.stage != "archived":
                self._record_stage(session, target, "archived", "archive", by)
            return VersionInfo.of(target)

        return self._write(apply)

    # -- metrics ------------------------------------------------------------------------------

    def record_metrics(self, name: str, version: str, metrics: Mapping[str, Any], dataset: str) -> VersionInfo:
        """Add figures measured on ``dataset`` to an existing version's metrics (see :meth:`VersionInfo.metrics_on`).

        Figures on the version's own ``metrics_dataset`` (or on any dataset, for a version that has
        no metrics yet, which then takes ``dataset`` as its own) keep their plain names; figures on
        another dataset are stored as ``name@dataset``, so two versions measured on one held-out
        set can be compared while each keeps the figures it was registered with.
        """
        validate_version(version)
        values, _ = validate_metrics({**metrics, "dataset": dataset})
        if not values:
            raise InvalidMetricsError(f"no metrics to record for {name}@{version} on {dataset!r}")
        if any(METRIC_DATASET_SEPARATOR in key for key in values):
            raise InvalidMetricsError(f"metric names must not contain {METRIC_DATASET_SEPARATOR!r}: {sorted(values)}")

        def apply(session: Session) -> VersionInfo:
            row = self._version(session, self._model(session, name, lock=True), version)
            own = row.metrics_dataset
            if own is None and not row.metrics:
                row.metrics_dataset = own = dataset
            keyed = values if dataset == own else {metric_key(k, dataset): v for k, v in values.items()}
            row.metrics = {**row.metrics, **keyed}  # a new dict: the JSON column sees the change
            session.flush()
            session.refresh(row)
            return VersionInfo.of(row)

        return self._write(apply)

    # -- files --------------------------------------------------------------------------------

    def artefact_path(self, version: VersionInfo, role: str = WEIGHTS_ROLE) -> Path:
        """The verified store path of one artefact of ``version``; StoreIntegrityError if missing or tampered."""
        artefact = version.artefact(role)
        if artefact is None:
            raise ArtefactError(f"{version.ref} has no {role} artefact")
        return self.store.verified_path(artefact.sha256, artefact.format, artefact.size, f"{version.ref} {role}")

    def verify(self) -> VerifyReport:
        """Re-hash every stored artefact; report each missing or changed one."""

        def read(session: Session) -> list[tuple[str, str, Artefact]]:
            query = (
                select(Artefact, ModelVersion.version, Model.name)
                .select_from(Artefact)
                .join(ModelVersion, Artefact.version_id == ModelVersion.id)
                .join(Model, ModelVersion.model_id == Model.id)
            )
            return [(name, version, artefact) for artefact, version, name in session.execute(query).all()]

        rows = self._read(read)
        problems = []
        for name, version, artefact in sorted(rows, key=lambda r: (r[0], version_key(r[1]), r[2].role)):
            problem = self.store.problem(artefact.sha256, artefact.format, artefact.size)
            if problem is not None:
                problems.append(ArtefactProblem(name, version, artefact.role, artefact.sha256, problem))
        return VerifyReport(checked=len(rows), problems=tuple(problems))

    def export_onnx(self, name: str, version: str, imgsz: int | None = None) -> ArtefactInfo:
        """Export an Ultralytics or SheetNet version to ONNX and register the file as its ``onnx`` artefact.

        ``imgsz`` is Ultralytics' fixed input size; a SheetNet graph takes any size (its spec says which).
        """
        info = self.version(name, validate_version(version))
        if info.framework not in ("ultralytics", "sheetnet"):
            raise ArtefactError(
                f"{info.ref} holds {info.framework} weights; only ultralytics and sheetnet weights export to ONNX"
            )
        if info.artefact(ONNX_ROLE) is not None:
            raise ArtefactError(f"{info.ref} already has an ONNX artefact")
        source = self.artefact_path(info)
        with tempfile.TemporaryDirectory(prefix="plantai-export-") as work:
            try:
                if info.framework == "sheetnet":
                    exported = _export_sheetnet(source, Path(work) / f"{name}-{version}.onnx")
                else:
                    exported = _export_ultralytics(source, Path(work) / f"{name}-{version}.pt", imgsz)
            except Exception as error:  # each exporter raises many kinds; the catalog stays unchanged
                raise ArtefactError(f"exporting {info.ref} to ONNX failed: {error}") from error
            spec = resolve_task(info.task)
            exported_info = inspect_weights(exported, "onnx", spec.task)
            self._check_weights_fit(name, spec, info.labels, exported_info, exported.name)
            stored = self.store.add(exported, "onnx")

        def apply(session: Session) -> ArtefactInfo:
            row = self._version(session, self._model(session, name, lock=True), version)
            if any(a.role == ONNX_ROLE for a in row.artefacts):
                raise ArtefactError(f"{info.ref} already has an ONNX artefact")
            artefact = Artefact(version=row, role=ONNX_ROLE, format="onnx", sha256=stored.sha256, size=stored.size)
            session.add(artefact)
            session.flush()
            return ArtefactInfo.of(artefact)

        return self._apply_with_file(stored, apply)
