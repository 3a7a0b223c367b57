"""Loading catalog models for inference: the one place that opens weight files.

``load_model("detector@1.2.0")`` or ``load_model("detector")`` (its production version)
returns a ready model, hash-checked before it is first loaded and cached per name@version.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import InvalidNameError
from catalog.registry import ONNX_ROLE, WEIGHTS_ROLE, Catalog
from catalog.sheetnet.runtime import clear_runners, shared_runner
from catalog.sheetnet.spec import FRAMEWORK as SHEETNET
from catalog.tasks import resolve_task
from catalog.weights import load_sam_state_dict, quiet_ultralytics, sam_architecture, yolo_class

_cache: dict[tuple[str, str, str, str, str], LoadedModel] = {}
_cache_lock = threading.Lock()
# A version's metric naming the score threshold its held-out figures were measured at (chosen on
# that held-out set); backends use it unless a project sets its own ``conf``.
SCORE_THRESHOLD_METRIC = "score_threshold"
DEFAULT_SCORE_THRESHOLD = 0.25
_default_catalogs: dict[tuple[str, str], Catalog] = {}


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to predict, with what the catalog knows about it."""

    name: str
    version: str
    task: str
    labels: tuple[str, ...]
    framework: str  # of the file actually loaded: "onnx" when the ONNX sibling served
    sha256: str  # of the file actually loaded
    path: Path
    model: Any  # ultralytics.YOLO, segment_anything.Sam for SAM weights, or a SheetNetRunner
    score_threshold: float = DEFAULT_SCORE_THRESHOLD  # the version's calibrated threshold, else the default
    model_framework: str = "ultralytics"  # the version's own framework in the catalog, whatever file served

    @property
    def is_sheetnet(self) -> bool:
        return self.model_framework == SHEETNET

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def predict(self, source: Any, **options: Any) -> Any:
        """Ultralytics' ``predict`` (quiet by default); SAM models are prompted through ``model`` instead."""
        if self.framework == "sam":
            raise TypeError(f"{self.ref} is a SAM model: use segment_anything.SamPredictor(loaded.model)")
        if self.is_sheetnet:
            raise TypeError(f"{self.ref} is a SheetNet: use loaded.model.run(picture) (a SheetNetRunner)")
        return self.model.predict(source, **{"verbose": False, **options})


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``"name@1.2.0"`` → ``("name", "1.2.0")``; ``"name"`` → ``("name", None)`` (production)."""
    name, _, version = ref.partition("@")
    if not name or (version == "" and ref.endswith("@")):
        raise InvalidNameError(f"model reference {ref!r} must be NAME or NAME@VERSION")
    return name, version or None


def _default_catalog() -> Catalog:
    from catalog.database import default_catalog_url
    from herbarium.settings import plantai_home

    home = plantai_home()
    key = (default_catalog_url(home), str(home))
    if key not in _default_catalogs:
        _default_catalogs[key] = Catalog.open(home=home)
    return _default_catalogs[key]


def load_model(ref: str, catalog: Catalog | None = None) -> LoadedModel:
    """The model ``ref`` names, from cache or freshly verified and loaded (the ONNX sibling when there is one)."""
    catalog = catalog or _default_catalog()
    name, version = parse_ref(ref)
    info = catalog.version(name, version)
    role = ONNX_ROLE if info.artefact(ONNX_ROLE) is not None else WEIGHTS_ROLE
    artefact = info.artefact(role)
    assert artefact is not None  # every version has its weights artefact
    key = (catalog.url, str(catalog.home), info.model, info.version, artefact.sha256)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        path = catalog.artefact_path(info, role)  # re-hashed: a tampered or missing file raises here
        framework = "onnx" if role == ONNX_ROLE else info.framework
        loaded = LoadedModel(
            name=info.model,
            version=info.version,
            task=info.task,
            labels=info.labels,
            framework=framework,
            sha256=artefact.sha256,
            path=path,
            model=_load(path, framework, resolve_task(info.task).yolo_task, info.framework, artefact.sha256),
            score_threshold=_score_threshold(info.metrics),
            model_framework=info.framework,
        )
        _cache[key] = loaded
        return loaded


def _score_threshold(metrics: dict[str, Any]) -> float:
    value = metrics.get(SCORE_THRESHOLD_METRIC)
    if isinstance(value, int | float) and 0 < value < 1:
        return float(value)
    return DEFAULT_SCORE_THRESHOLD


def clear_cache() -> None:
    """Forget loaded models (the next load re-verifies and re-reads)."""
    with _cache_lock:
        _cache.clear()
    clear_runners()


def _load(path: Path, framework: str, yolo_task: str, model_framework: str, sha256: str) -> Any:
    if model_framework == SHEETNET:  # one runner per file: models sharing it share its forward passes
        return shared_runner(path, framework, sha256)
    if framework == "sam":
        state = load_sam_state_dict(path)
        sam = sam_architecture(state).build()  # stock vit_b/l/h or any other size, read from the shapes
        sam.load_state_dict(state)
        return sam.eval()
    with quiet_ultralytics():
        return yolo_class()(str(path), task=yolo_task)
