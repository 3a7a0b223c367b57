"""What a PlantAI backend does, independent of HTTP: pick models for a project, predict tasks.

One service serves every model its kind covers; a project's labelling config decides which
model fills which tag. The prediction's ``model_version`` is the catalog ``name@version`` of
each model used (joined by ``+`` when a project uses several), the same from ``/setup`` and
in every result, so Label Studio never adds duplicates. Production versions are re-read from
the catalog every ``refresh_s`` seconds: a promotion reaches a running backend without restart.

A production SAM checkpoint for ``segment-plant`` fills the plant tags instead of the catalog's
segmentation model. Its box prompts are the rectangles a user drew, when Label Studio's interactive
mode sends them in ``params.context`` (then only SAM answers), else the boxes of the catalog's
production organ detector, whose version then joins the ``model_version``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from catalog.predictors import load_model
from catalog.records import ModelInfo
from catalog.registry import Catalog
from catalog.sheetnet.spec import FRAMEWORK as SHEETNET
from herbarium.barcodes import READER as BARCODE_READER
from herbarium.imaging import ImageReadError, SpecimenImage
from herbarium.labels import Label, LabelError, SpecimenLabels
from herbarium.labels.labelstudio import as_labelstudio, from_labelstudio
from herbarium.printed_text import READER as PRINTED_TEXT_READER
from ml_backends.adapters import (
    Adapter,
    BoxPrompts,
    DetectionAdapter,
    SamSegmentationAdapter,
    Tiling,
    adapter_for,
    organ_detector,
)
from ml_backends.admission import RequestLimits
from ml_backends.controls import Control, LabelConfig, LabelConfigError
from ml_backends.kinds import BACKEND_KINDS
from ml_backends.task_images import TaskImageError, TaskImages

log = logging.getLogger(__name__)

NO_MODEL_VERSION = "plantai:no-matching-model"


class BadRequestError(ValueError):
    """A request Label Studio (or anyone) sent malformed; answered with 400."""


class LimitExceededError(BadRequestError):
    """A request over one of the backend's limits; answered with ``status`` (413, 408) and the reason."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Assignment:
    """A control tag filled by one catalog model (its production version)."""

    control: Control
    model: ModelInfo
    class_map: Mapping[str, str]
    prompter: ModelInfo | None = None  # the organ detector whose boxes prompt a SAM model

    @property
    def ref(self) -> str:
        return _ref(self.model)

    @property
    def is_sam(self) -> bool:
        return self.model.framework == "sam"

    @property
    def reads_barcodes(self) -> bool:
        return self.model.framework == SHEETNET and "barcode" in self.class_map


def _ref(model: ModelInfo) -> str:
    return f"{model.name}@{model.production}"


@dataclass(frozen=True)
class Plan:
    """Which models fill which tags of one labelling config, right now."""

    config: LabelConfig
    assignments: tuple[Assignment, ...]
    unfilled: tuple[str, ...]

    @property
    def model_refs(self) -> tuple[str, ...]:
        prompters = {_ref(a.prompter) for a in self.assignments if a.prompter is not None}
        # A SheetNet's barcode boxes are read by zxing-cpp, or by OCR of their printed line: the readers are
        # sources of those predictions too.
        readers = {r for a in self.assignments if a.reads_barcodes for r in (BARCODE_READER, PRINTED_TEXT_READER)}
        return tuple(sorted({a.ref for a in self.assignments} | prompters | readers))

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


def _as_prompt_rectangle(result: dict[str, Any]) -> dict[str, Any]:
    value = result.get("value")
    if not isinstance(value, dict):
        raise BadRequestError("params.context: a rectangle result without a 'value' object")
    prompt = {k: v for k, v in result.items() if k != "id"}
    prompt.update(type="rectanglelabels", value={**value, "rectanglelabels": ["prompt"]})
    return prompt


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
        conf: float | None = None,
        decode_workers: int = 4,
        limits: RequestLimits | None = None,
    ) -> None:
        if kind not in BACKEND_KINDS:
            raise ValueError(f"backend kind: expected one of {', '.join(BACKEND_KINDS)}, got {kind!r}")
        self.catalog = catalog
        self.images = images
        self.kind = kind
        self.kinds = BACKEND_KINDS[kind]
        self.refresh_s = refresh_s
        self.conf = conf  # None: each model version's own calibrated threshold (catalog metric)
        self.limits = limits  # None: no cap on tasks per request nor on seconds (tests, in-process use)
        self.metrics = ServiceMetrics()
        self._decoder = ThreadPoolExecutor(max_workers=decode_workers, thread_name_prefix="decode")
        self._models: list[ModelInfo] = []  # every production model, whatever this backend serves
        self._models_read_at = -float("inf")
        self._lock = threading.Lock()
        self._project_params: dict[str, dict[str, Any]] = {}
        self._project_configs: dict[str, str] = {}
        # Ultralytics applies a call's settings to the shared model outside its own lock: one call per model.
        self._model_locks: dict[str, threading.Lock] = {}

    # -- models -------------------------------------------------------------------------
    def served_models(self) -> list[ModelInfo]:
        """Catalog models of this backend's kinds that have a production version (re-read every refresh_s)."""
        return [m for m in self._production_models() if m.kind in self.kinds]

    def _production_models(self) -> list[ModelInfo]:
        with self._lock:
            if time.monotonic() - self._models_read_at > self.refresh_s:
                self._models = [m for m in self.catalog.list_models() if m.production is not None]
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
        # A production SAM takes its kind (the plant) over from the catalog's segmentation model.
        sam_kinds = {m.kind for m in models if m.framework == "sam"}
        models = [m for m in models if m.framework == "sam" or m.kind not in sam_kinds]
        prompter = organ_detector(self._production_models()) if sam_kinds else None
        for control in config.controls:
            fitting = [m for m in models if control.fits(m.kind, m.task, m.labels)]
            if not fitting:
                unfilled.append(control.name)
            assignments += [
                Assignment(control, m, control.class_map(m.labels), prompter if m.framework == "sam" else None)
                for m in fitting
            ]
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

    def served_projects(self) -> set[int]:
        """Ids of the projects Label Studio set this backend up for (``/setup``'s ``project`` is ``<id>.<time>``)."""
        ids = set()
        for project in list(self._project_configs):
            head = project.split(".", 1)[0]
            if head.isdigit():
                ids.add(int(head))
        return ids

    def _check_time(self, started: float, stage: str) -> None:
        if self.limits is not None and time.perf_counter() - started > self.limits.max_seconds:
            raise LimitExceededError(
                f"predict: over {self.limits.max_seconds:g} s (PLANTAI_PREDICT_SECONDS) {stage}; send fewer tasks",
                408,
            )

    def predict(self, payload: Any) -> list[dict[str, Any]]:
        started = time.perf_counter()
        tasks, plan, params = self._read_predict_request(payload)
        if self.limits is not None and len(tasks) > self.limits.max_tasks:
            raise LimitExceededError(
                f"predict: {len(tasks)} tasks, at most {self.limits.max_tasks} per request "
                "(PLANTAI_MAX_PREDICT_TASKS); send them in smaller batches",
                413,
            )
        drawn = self._drawn_boxes(payload, plan)
        assignments = plan.assignments
        if drawn is not None and any(a.is_sam for a in assignments):
            # Interactive: the user asked SAM about the boxes just drawn; other models' regions would be duplicates.
            assignments = tuple(a for a in assignments if a.is_sam)
        self.metrics.add("predict_requests")
        self.metrics.add("predict_tasks", len(tasks))
        version = plan.model_version
        try:
            tiling = Tiling.from_params(params)
        except (TypeError, ValueError) as exc:
            raise BadRequestError(f"extra_params.{exc}") from None
        if not assignments:
            log.warning("no catalog model fills any tag of this config (unfilled: %s)", ", ".join(plan.unfilled))
            return [self._empty(version) for _ in tasks]

        try:
            conf = float(params["conf"]) if "conf" in params else self.conf
        except (TypeError, ValueError):
            raise BadRequestError("extra_params.conf: expected a number") from None
        adapters = self._adapters(assignments, conf, prompted=drawn is None)
        decode_side = max(adapter.decode_side(tiling) for adapter in adapters.values())
        decoded = list(self._decoder.map(lambda task: self._decode(task, plan, decode_side), tasks))
        self._check_time(started, "reading the images")
        good = [i for i, image in enumerate(decoded) if isinstance(image, SpecimenImage)]
        images: list[SpecimenImage] = [image for image in decoded if isinstance(image, SpecimenImage)]
        task_ids = [tasks[i].get("id") if isinstance(tasks[i], dict) else None for i in good]
        predictions: dict[str, list[SpecimenLabels | None]] = {}
        # SAM last: it may be prompted by the organ detector's boxes predicted for another tag of this request.
        for name, adapter in sorted(adapters.items(), key=lambda item: isinstance(item[1], SamSegmentationAdapter)):
            self._check_time(started, f"before {name}")
            prompts = None
            if isinstance(adapter, SamSegmentationAdapter):
                prompts = self._sam_prompts(adapter, images, tiling, drawn, predictions, task_ids)
            predictions[name] = self._predict_isolated(adapter, images, tiling, prompts)
        results: list[dict[str, Any]] = [self._empty(version) for _ in tasks]
        for k, i in enumerate(good):
            image = images[k]
            labels: list[Label] = []
            for assignment in assignments:
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

    def _drawn_boxes(self, payload: dict[str, Any], plan: Plan) -> SpecimenLabels | None:
        """The regions a user drew, from an interactive request's ``params.context``; None when it has none.

        Label Studio sends them as results (``{"result": [...]}``); the rectangles among them prompt SAM.
        """
        params = payload.get("params")
        context = params.get("context") if isinstance(params, dict) else None
        results = context.get("result") if isinstance(context, dict) else None
        if not results:
            return None
        if not isinstance(results, list):
            raise BadRequestError("params.context.result: expected a list of Label Studio results")
        image = plan.config.image_name
        rectangles = [
            r
            for r in results
            if isinstance(r, dict)
            and r.get("type") in ("rectanglelabels", "rectangle")
            and r.get("to_name", image) == image
        ]
        if not rectangles:
            return SpecimenLabels(width=1, height=1)  # a context without boxes: SAM has nothing to segment
        try:
            # Any rectangle is a prompt, whatever label (or none: a smart <Rectangle>) the user gave it; ids dropped.
            return from_labelstudio([_as_prompt_rectangle(r) for r in rectangles])
        except LabelError as exc:
            raise BadRequestError(f"params.context: {exc}") from None

    def _adapters(self, assignments: Iterable[Assignment], conf: float | None, prompted: bool) -> dict[str, Adapter]:
        """An adapter per model; SAM's with the organ detector as prompter when ``prompted`` (no drawn boxes).

        ``conf`` None: each model's own score threshold (calibrated on its held-out set, else 0.25).
        """
        adapters: dict[str, Adapter] = {}
        for assignment in assignments:
            if assignment.model.name not in adapters:
                loaded = load_model(assignment.ref, catalog=self.catalog)  # cached per name@version
                prompter = None
                if prompted and assignment.prompter is not None:
                    detector = load_model(_ref(assignment.prompter), catalog=self.catalog)
                    prompter = DetectionAdapter(detector, conf=detector.score_threshold if conf is None else conf)
                adapters[assignment.model.name] = adapter_for(
                    loaded,
                    assignment.model.kind,
                    conf=loaded.score_threshold if conf is None else conf,
                    prompter=prompter,
                )
        return adapters

    def _sam_prompts(
        self,
        adapter: SamSegmentationAdapter,
        images: Sequence[SpecimenImage],
        tiling: Tiling | None,
        drawn: SpecimenLabels | None,
        predictions: Mapping[str, Sequence[SpecimenLabels | None]],
        task_ids: Sequence[Any],
    ) -> list[BoxPrompts | None]:
        """Each image's boxes for SAM: the user's, else the organ detector's; a task without any is logged."""
        if drawn is not None:
            prompts: list[BoxPrompts | None] = [BoxPrompts.of(drawn, image, merge=False) for image in images]
            reasons = ["the request's context holds no rectangle (SAM takes box prompts only)"] * len(images)
        elif adapter.prompter is None:
            prompts = [None] * len(images)
            reasons = ["no rectangle drawn and no production detect-organs model in the catalog"] * len(images)
        else:
            detector = adapter.prompter
            detected = predictions.get(detector.model.name) or self._predict_isolated(detector, images, tiling)
            prompts = [
                None if labels is None else BoxPrompts.of(labels, image, merge=True)
                for labels, image in zip(detected, images, strict=True)
            ]
            reasons = [
                f"organ detector {detector.source} " + ("failed" if labels is None else "found no organ")
                for labels in detected
            ]
        for task_id, prompt, reason in zip(task_ids, prompts, reasons, strict=True):
            if prompt is None or not prompt.boxes:
                log.warning("task %s: no plant mask from %s: no box prompt: %s", task_id, adapter.source, reason)
                self.metrics.add("unprompted_tasks")
        return prompts

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
        self,
        adapter: Adapter,
        images: Sequence[SpecimenImage],
        tiling: Tiling | None,
        prompts: Sequence[BoxPrompts | None] | None = None,
    ) -> list[SpecimenLabels | None]:
        """The batch at once; if it fails, image by image, so one bad image costs only its own task."""
        with self._lock:
            model_lock = self._model_locks.setdefault(adapter.source, threading.Lock())
        with model_lock:
            return self._predict_each_on_failure(adapter, images, tiling, prompts)

    def _predict_each_on_failure(
        self,
        adapter: Adapter,
        images: Sequence[SpecimenImage],
        tiling: Tiling | None,
        prompts: Sequence[BoxPrompts | None] | None,
    ) -> list[SpecimenLabels | None]:
        def run(first: int, count: int) -> list[SpecimenLabels]:
            batch = images[first : first + count]
            if isinstance(adapter, SamSegmentationAdapter) and prompts is not None:
                return adapter.predict(batch, tiling, prompts[first : first + count])
            return adapter.predict(batch, tiling)

        try:
            return list(run(0, len(images)))
        except Exception:
            log.exception("%s: batch of %d failed; retrying one image at a time", adapter.source, len(images))
        out: list[SpecimenLabels | None] = []
        for k in range(len(images)):
            try:
                out.append(run(k, 1)[0])
            except Exception:
                log.exception("%s: prediction failed for one image", adapter.source)
                self.metrics.add("task_failures")
                out.append(None)
        return out

    @staticmethod
    def _empty(version: str) -> dict[str, Any]:
        return {"result": [], "score": 0.0, "model_version": version}
