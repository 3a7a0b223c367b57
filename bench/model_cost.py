"""CPU cost per 68-Mpx sheet of all four default models through the backend: ours beside today's, in one run.

One generated 6900x9900 JPEG sheet (a 600-ppi scan's size), one Label Studio task naming it as a local
storage does (``/data/local-files/?d=sheets/sheet.jpg``), the PlantAI review config with all four tasks
(detect-nonvegetal, detect-organs, segment-plant, phenology) and two catalogs, each served by its own
real ``plantai serve all`` (gunicorn) reading the image from ``LOCAL_FILES_DOCUMENT_ROOT``:

(a) today's defaults, the previous release's: four untrained Ultralytics models built from yamls (no
    downloads), registered and promoted with their ONNX siblings as its bootstrap did:
    nonvegetal-detector (yolo11n, imgsz 256), organ-detector (yolo11n, 320), plant-segmenter
    (yolo11n-seg, 256), phenology-classifier (yolo11n-cls, 160);
(b) ours: one untrained SheetNet (the demo profile's input side) registered four times under the same
    names and tasks, each with its ONNX export and the bootstrap's score thresholds, as
    training/bootstrap.py's register stage does.

Untrained weights cost the forward passes trained ones do; post-processing depends on what the models
find, so the regions each answer holds are shown beside the figures. Each figure: seconds per
``POST /predict`` as the client sees it, median of ``--runs`` after a warm-up, a and b taken in turn.
The ``model_version`` of each answer shows that all four models answered. Everything lives in a temporary
PLANTAI_HOME/HOME; the servers are stopped by PID. Last line:
``RESULT ours_s=<b> today_s=<a> ours_over_today=<b/a>`` (target: b/a <= 1.5).

    python bench/model_cost.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for backend_speed
from backend_speed import (
    _interleaved_seconds,
    _private_environment,
    _server_predict_seconds,
    write_sheet,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
# The previous release's defaults: the Ultralytics yaml each was built from and the imgsz it was served at.
TODAY = {
    "nonvegetal-detector": ("yolo11n.yaml", 256),
    "organ-detector": ("yolo11n.yaml", 320),
    "plant-segmenter": ("yolo11n-seg.yaml", 256),
    "phenology-classifier": ("yolo11n-cls.yaml", 160),
}
SHEET_REF = "/data/local-files/?d=sheets/sheet.jpg"  # how Label Studio's local storage names the sheet
DATASET = "bench-untrained"


def _register_today(catalog: Any, root: Path) -> list[str]:
    """The four untrained YOLO models, registered, promoted and exported; their refs."""
    import torch
    import ultralytics
    from ultralytics.nn.tasks import ClassificationModel, DetectionModel, SegmentationModel

    from catalog.tasks import resolve_task
    from training.bootstrap import MODELS

    builders = {"detect": DetectionModel, "segment": SegmentationModel, "classify": ClassificationModel}
    refs = []
    for plan in MODELS:
        yaml, imgsz = TODAY[plan.name]
        spec = resolve_task(plan.task)
        assert spec.known_label_set is not None
        classes = spec.known_label_set.classes  # NONVEGETAL, ORGANS, PLANT, TRAITS["phenology"]
        torch.manual_seed(0)
        model = builders[spec.yolo_task](yaml, nc=len(classes), verbose=False)
        model.names = dict(enumerate(classes))
        weights = root / f"{plan.name}.pt"
        checkpoint = {"imgsz": imgsz, "task": spec.yolo_task}
        torch.save({"model": model.half(), "train_args": checkpoint, "version": ultralytics.__version__}, weights)
        info = catalog.register(plan.name, plan.task, weights, promote=True)
        catalog.export_onnx(plan.name, info.version, imgsz=imgsz)
        refs.append(f"{info.ref} ({yaml}, imgsz {imgsz})")
    return refs


def _register_ours(catalog: Any, root: Path, trained: Path | None) -> tuple[list[str], int]:
    """One SheetNet (``trained``, else untrained) registered four times, as the bootstrap does; refs and distinct
    ONNX files."""
    from catalog.predictors import SCORE_THRESHOLD_METRIC
    from catalog.registry import ONNX_ROLE
    from catalog.sheetnet import network
    from catalog.sheetnet.spec import SheetNetSpec
    from training.bootstrap import MODELS, PROFILES

    profile = PROFILES["demo"]
    if trained is not None:
        weights = trained
    else:
        net = network.build(SheetNetSpec(input_side=profile.input_side), pretrained=False)
        weights = network.save(net, root / "sheetnet.safetensors")
    refs, onnx_files = [], set()
    for plan in MODELS:
        metrics: dict[str, Any] = {"dataset": DATASET}
        if plan.task in profile.thresholds:
            metrics[SCORE_THRESHOLD_METRIC] = profile.thresholds[plan.task]
        info = catalog.register(plan.name, plan.task, weights, metrics=metrics, promote=True)
        onnx_files.add(catalog.export_onnx(plan.name, info.version).sha256)
        refs.append(f"{info.ref} (SheetNet, input side {profile.input_side})")
    assert all(catalog.version(p.name).artefact(ONNX_ROLE) for p in MODELS)
    return refs, len(onnx_files)


def _serve(root: Path, name: str, home: Path, document_root: Path) -> tuple[Any, str]:
    """``plantai serve all`` on the catalog in ``home``, answering /health."""
    from local_services.backend import LocalBackend

    backend = LocalBackend(root, home=home, document_root=document_root, name=f"plantai serve ({name})")
    backend.start(timeout=180)
    return backend, backend.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per figure, after one warm-up (default 5)")
    parser.add_argument(
        "--sheetnet", type=Path, default=None,
        help="trained SheetNet weights to serve as ours (a fold of bench/real_sheets.py): what it finds is then "
        "post-processed too (masks, outlines, barcode reading); untrained by default",
    )  # fmt: skip
    args = parser.parse_args()
    trained = args.sheetnet.resolve() if args.sheetnet is not None else None

    root = Path(tempfile.mkdtemp(prefix="plantai-model-cost-"))
    processes: list[Any] = []
    try:
        _private_environment(root)
        from catalog.ultralytics_offline import configure_offline_ultralytics

        configure_offline_ultralytics(root / "ultralytics")  # before anything imports ultralytics

        import requests

        from catalog.registry import Catalog
        from connectors.label_config import review_config
        from training.bootstrap import MODEL_NAMES, MODELS

        document_root, _ = write_sheet(root)
        homes = {"today": root / "home-today", "ours": root / "home-ours"}
        with Catalog.open(home=homes["today"]) as catalog:
            print("(a) today:", "; ".join(_register_today(catalog, root)), flush=True)
        with Catalog.open(home=homes["ours"]) as catalog:
            refs, onnx_files = _register_ours(catalog, root, trained)
            print(f"(b) ours: {'; '.join(refs)}; {onnx_files} distinct ONNX file(s)", flush=True)

        label_config = review_config([plan.task for plan in MODELS])
        task = {"id": 1, "data": {"image": SHEET_REF}, "project": 1}
        payload = {"tasks": [task], "project": "1.0", "label_config": label_config}
        session = requests.Session()
        urls: dict[str, str] = {}
        for name, home in homes.items():
            backend, urls[name] = _serve(root, name, home, document_root)
            processes.append(backend)

        answers: dict[str, dict[str, Any]] = {}

        def predict(name: str) -> Callable[[], None]:
            def run() -> None:
                response = session.post(f"{urls[name]}/predict", json=payload, timeout=300)
                response.raise_for_status()
                answers[name] = response.json()["results"][0]

            return run

        contenders = {name: predict(name) for name in ("today", "ours")}
        for name, run in contenders.items():
            run()  # loads and verifies the four models
            version = answers[name]["model_version"]
            missing = [model for model in MODEL_NAMES if f"{model}@" not in version]
            assert not missing, f"{name}: no answer from {missing}: {answers[name]}"

        before = {name: _server_predict_seconds(session, url) for name, url in urls.items()}
        timings = _interleaved_seconds(args.runs, **contenders)
        server = {
            name: (_server_predict_seconds(session, url) - before[name]) / (args.runs + 1) for name, url in urls.items()
        }
        a, b = statistics.median(timings["today"]), statistics.median(timings["ours"])

        def show(label: str, name: str, median: float) -> None:
            runs = ", ".join(f"{t * 1000:.0f}" for t in timings[name])
            regions = Counter(r.get("from_name", "?") for r in answers[name]["result"])
            where = f"server-side predict {server[name] * 1000:.0f} ms"
            print(f"{label}: {median * 1000:.0f} ms/sheet (runs {runs} ms; {where})")
            print(f"    model_version {answers[name]['model_version']}")
            print("    regions: " + (", ".join(f"{k} {v}" for k, v in sorted(regions.items())) or "none"))

        print(f"machine: {os.cpu_count()} CPUs; median of {args.runs} runs each, taken in turn, after a warm-up")
        show("(a) today's four YOLO models (ONNX), POST /predict", "today", a)
        show("(b) ours, one SheetNet for all four (ONNX), POST /predict", "ours", b)
        print(f"b/a = {b / a:.2f} (target <= 1.5)")
        print(f"RESULT ours_s={b:.3f} today_s={a:.3f} ours_over_today={b / a:.3f}")
    finally:
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
