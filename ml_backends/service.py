"""What a PlantAI backend does, independent of HTTP: pick models for a project, predict tasks.

One service serves every model its kind covers; a project's labelling config decides which
model fills which tag. The prediction's ``model_version`` is the catalog ``name@version`` of
each model used (joined by ``+`` when a project uses several), the same from ``/setup`` and
in every result, so Label Studio never adds duplicates. Production versions are re-read from
the catalog every ``refresh_s`` seconds: a promotion reaches a running backend without restart.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from catalog.predictors import load_model
from catalog.records import ModelInfo
from catalog.registry import Catalog
from herbarium.imaging import ImageReadError, SpecimenImage
from herbarium.labels import Label, SpecimenLabels
from herbarium.labels.labelstudio import as_labelstudio
from ml_backends.adapters import Adapter, Tiling, adapter_for
from ml_backends.controls import Control, LabelConfig, LabelConfigError
from ml_backends.kinds import BACKEND_KINDS
from ml_backends.task_images import TaskImageError, TaskImages

log = logging.getLogger(__name__)

NO_MODEL_VERSION = "plantai:no-matching-model"


class BadRequestError(ValueError):
    """A request Label Studio (or anyone) sent malformed; answered with 400."""


@dataclass(frozen=True)
class Assignment:
    """A control tag filled by one catalog model (its production version)."""

    control: Control
    model: ModelInfo
    class_map: Mapping[str, str]

    @property
    def ref(self) -> str:
        return f"{self.model.name}@{self.model.production}"


@dataclass(frozen=True)
class Plan:
    """Which models fill which tags of one labelling config, right now."""

    config: LabelConfig
    assignments: tuple[Assignment, ...]
    unfilled: tuple[str, ...]

    @property
    def model_refs(self) -> tuple[str, ...]:
        return tuple(sorted({a.ref for a in self.assignments}))

    @property
    def model_version(self) -> str:
        return "+".join(self.model_refs) or NO_MODEL_VERSION


@dataclass
class ServiceMetrics:
    """Counters for ``/metrics`` (Prometheus text format)."""

    counts: Counter[str] = field(default_factory=Counter)
    predict_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, value: int = 1) -> None:
        with self.lock:
            self.counts[name] += value

    def observe_predict(self, seconds: float) -> None:
        with self.lock:
            self.predict_seconds += seconds

    def render(self) -> str:
        with self.lock:
            lines = [f"plantai_backend_{name}_total {value}" for name, value in sorted(self.counts.items())]
            lines.append(f"plantai_backend_predict_seconds_sum {self.predict_seconds:.6f}")
        return "\n".join(lines) + "\n"


def _parse_params(extra: Any) -> dict[str, Any]:
    """A project's extra params arrive as an object or as JSON text (Label Studio's settings field)."""
    if extra in (None, ""):
        return {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError:
            raise BadRequestError("extra_params: not valid JSON") from None
    if not isinstance(extra, dict):
        raise BadRequestError("extra_params: expected a JSON object")
    return extra


class PredictionService:
    def __init__(
        self,
        catalog: Catalog,
        images: TaskImages,
        kind: str = "all",
        refresh_s: float = 2.0,
        conf: float = 0.25,
        decode_workers: int = 4,
    ) -> None:
        if kind not in BACKEND_KINDS:
            raise ValueError(f"backend kind: expected one of {', '.join(BACKEND_KINDS)}, got {kind!r}")
        self.catalog = catalog
        self.images = images
        self.kind = kind
        self.kinds = BACKEND_KINDS[kind]
        self.refresh_s = refresh_s
        self.conf = conf
        self.metrics = ServiceMetrics()
        self._decoder = ThreadPoolExecutor(max_workers=decode_workers, thread_name_prefix="decode")
        self._models: list[ModelInfo] = []
        self._models_read_at = -float("inf")
        self._lock = threading.Lock()
        self._project_params: dict[str, dict[str, Any]] = {}
        self._project_configs: dict[str, str] = {}
        # Ultralytics applies a call's settings to the shared model outside its own lock: one call per model.
        self._model_locks: dict[str, threading.Lock] = {}

    # -- models -------------------------------------------------------------------------
    def served_models(self) -> list[ModelInfo]:
        """Catalog models of this backend's kinds that have a production version (re-read every refresh_s)."""
        with self._lock:
            if time.monotonic() - self._models_read_at > self.refresh_s:
                self._models = [
                    m for m in self.catalog.list_models() if m.kind in self.kinds and m.production is not None
                ]
                self._models_read_at = time.monotonic()
            return list(self._models)

    def plan(self, label_config: str) -> Plan:
        try:
            config = LabelConfig.parse(label_config)
        except LabelConfigError as exc:
            raise BadRequestError(str(exc)) from None
        assignments: list[Assignment] = []
        unfilled: list[str] = []
        models = self.served_models()
        for control in config.controls:
            fitting = [m for m in models if control.fits(m.kind, m.task, m.labels)]
            if not fitting:
                unfilled.append(control.name)
            assignments += [Assignment(control, m, control.class_map(m.labels)) for m in fitting]
        return Plan(config=config, assignments=tuple(assignments), unfilled=tuple(unfilled))

    # -- protocol ---------------------------------------------------------------------
    def setup(self, payload: Any) -> str:
        if not isinstance(payload, dict) or not isinstance(payload.get("schema"), str):
            raise BadRequestError("setup: expected a JSON object with the project's label config in 'schema'")
        project = str(payload.get("project", ""))
        access = self.images.label_studio
        token = payload.get("access_token")
        if access is not None and access.api_key is None and isinstance(token, str) and token:
            access.api_key = token  # only ever sent to the configured Label Studio, never to 'hostname'
        self._project_params[project] = _parse_params(payload.get("extra_params"))
        self._project_configs[project] = payload["schema"]
        return self.plan(payload["schema"]).model_version

    def predict(self, payload: Any) -> list[dict[str, Any]]:
        started = time.perf_counter()
        tasks, plan, params = self._read_predict_request(payload)
        self.metrics.add("predict_requests")
        self.metrics.add("predict_tasks", len(tasks))
        version = plan.model_version
        try:
            tiling = Tiling.from_params(params)
        except (TypeError, ValueError) as exc:
            raise BadRequestError(f"extra_params.{exc}") from None
        if not plan.assignments:
            log.warning("no catalog model fills any tag of this config (unfilled: %s)", ", ".join(plan.unfilled))
            return [self._empty(version) for _ in tasks]

        try:
            conf = float(params.get("conf", self.conf))
        except (TypeError, ValueError):
            raise BadRequestError("extra_params.conf: expected a number") from None
        adapters = self._adapters(plan, conf)
        decode_side = max(adapter.decode_side(tiling) for adapter in adapters.values())
        decoded = list(self._decoder.map(lambda task: self._decode(task, plan, decode_side), tasks))
        good = [i for i, image in enumerate(decoded) if isinstance(image, SpecimenImage)]
        images = [decoded[i] for i in good]
        predictions = {
            name: self._predict_isolated(adapter, images, tiling)  # type: ignore[arg-type]
            for name, adapter in adapters.items()
        }
        results: list[dict[str, Any]] = [self._empty(version) for _ in tasks]
        for k, i in enumerate(good):
            image = decoded[i]
            assert isinstance(image, SpecimenImage)
            labels: list[Label] = []
            for assignment in plan.assignments:
                predicted = predictions[assignment.model.name][k]
                if predicted is not None:
                    labels += assignment.control.relabel(predicted.labels, assignment.class_map)
            specimen = SpecimenLabels(width=image.original_width, height=image.original_height, labels=labels)
            scores = [label.score for label in labels if label.score is not None]
            results[i] = {
                "result": as_labelstudio(specimen, to_name=plan.config.image_name),
                "score": sum(scores) / len(scores) if scores else 0.0,
                "model_version": version,
            }
        self.metrics.observe_predict(time.perf_counter() - started)
        return results

    # -- pieces -----------------------------------------------------------------------
    def _read_predict_request(self, payload: Any) -> tuple[list[Any], Plan, dict[str, Any]]:
        if not isinstance(payload, dict) or not isinstance(payload.get("tasks"), list):
            raise BadRequestError("predict: expected a JSON object with a 'tasks' list")
        project = str(payload.get("project", ""))
        label_config = payload.get("label_config") or self._project_configs.get(project)
        if not isinstance(label_config, str):
            raise BadRequestError("predict: no 'label_config' in the request and no /setup for this project")
        params = dict(self._project_params.get(project, {}))
        request_params = payload.get("params")
        if isinstance(request_params, dict):
            params.update(_parse_params(request_params.get("extra_params")))
        return payload["tasks"], self.plan(label_config), params

    def _adapters(self, plan: Plan, conf: float) -> dict[str, Adapter]:
        adapters: dict[str, Adapter] = {}
        for assignment in plan.assignments:
            if assignment.model.name not in adapters:
                loaded = load_model(assignment.ref, catalog=self.catalog)  # cached per name@version
                adapters[assignment.model.name] = adapter_for(loaded, assignment.model.kind, conf=conf)
        return adapters

    def _decode(self, task: Any, plan: Plan, max_side: int) -> SpecimenImage | str:
        try:
            ref = self.images.reference(task, plan.config.image_key)
            return self.images.read(ref, max_side=max_side)
        except (TaskImageError, ImageReadError) as exc:
            task_id = task.get("id") if isinstance(task, dict) else None
            log.warning("task %s: no prediction: %s", task_id, exc)
            self.metrics.add("task_failures")
            return str(exc)

    def _predict_isolated(
        self, adapter: Adapter, images: Sequence[SpecimenImage], tiling: Tiling | None
    ) -> list[SpecimenLabels | None]:
        """The batch at once; if it fails, image by image, so one bad image costs only its own task."""
        with self._lock:
            model_lock = self._model_locks.setdefault(adapter.source, threading.Lock())
        with model_lock:
            return self._predict_each_on_failure(adapter, images, tiling)

    def _predict_each_on_failure(
        self, adapter: Adapter, images: Sequence[SpecimenImage], tiling: Tiling | None
    ) -> list[SpecimenLabels | None]:
        try:
            return list(adapter.predict(images, tiling))
        except Exception:
            log.exception("%s: batch of %d failed; retrying one image at a time", adapter.source, len(images))
        out: list[SpecimenLabels | None] = []
        for image in images:
            try:
                out.append(adapter.predict([image], tiling)[0])
            except Exception:
                log.exception("%s: prediction failed for one image", adapter.source)
                self.metrics.add("task_failures")
                out.append(None)
        return out

    @staticmethod
    def _empty(version: str) -> dict[str, Any]:
        return {"result": [], "score": 0.0, "model_version": version}
