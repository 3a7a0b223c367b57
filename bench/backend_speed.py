"""Seconds per image of the PlantAI backend beside the label-studio-ml-backend YOLO example, in one run.

One generated 6900x9900 JPEG sheet (a 600-ppi scan's size) and one untrained yolo11n detector
(the six non-vegetal classes, imgsz 640) registered in a temporary catalog with its ONNX sibling:

(a) baseline, the YOLO example's way: ``get_local_path`` downloads the image from a real Label
    Studio (a local storage ``/data/local-files/`` URL, legacy token), PIL decodes it in full,
    Ultralytics predicts with the ``.pt``;
(b) ours: ``POST /predict`` to a real ``plantai serve`` (gunicorn) with the PlantAI review config,
    the image read from ``LOCAL_FILES_DOCUMENT_ROOT``, end to end as the client sees it;
(c) floor: reduced decode (``read_image(max_side=640)``) plus the ONNX Runtime forward pass alone.

Each figure is the median of ``--runs`` timings after a warm-up, the three taken in turn. Everything lives
in a temporary PLANTAI_HOME/HOME; the servers are stopped by PID. Last line:
``RESULT baseline_over_ours=<a/b> ours_over_floor=<b/c>`` (targets: a/b >= 4, b/c <= 1.5).

    python bench/backend_speed.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHEET_SIZE = (6900, 9900)
JPEG_QUALITY = 90
IMGSZ = 640
MODEL_NAME = "bench-nonvegetal"


def _private_environment(root: Path) -> None:
    """A temporary HOME and PLANTAI_HOME; no Label Studio settings inherited from the caller's shell."""
    home = root / "home"
    home.mkdir()
    os.environ.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
            "PLANTAI_HOME": str(root / "plantai-home"),
        }
    )
    # The SDK reads LOCAL_FILES_DOCUMENT_ROOT when imported: unset, the baseline really downloads.
    for name in ("LOCAL_FILES_DOCUMENT_ROOT", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "PLANTAI_CATALOG_URL"):
        os.environ.pop(name, None)


def _interleaved_seconds(runs: int, **contenders: Callable[[], object]) -> dict[str, list[float]]:
    """Seconds per run of each contender, after one warm-up each, taken in turn (a, b, c, a, b, c, ...).

    Taking turns spreads whatever else the machine does over every figure alike, so ratios hold.
    """
    for run in contenders.values():
        run()
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - start)
    return timings


def write_sheet(root: Path) -> tuple[Path, Path]:
    """The generated 68-Mpx JPEG under ``root/files/sheets/``; (document root, sheet path). Says its size."""
    from herbarium.synth import generate_sheet

    document_root = root / "files"
    path = document_root / "sheets" / "sheet.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sheet = generate_sheet(seed=2026, width=SHEET_SIZE[0], height=SHEET_SIZE[1])
    sheet.image.save(path, format="JPEG", quality=JPEG_QUALITY)
    print(
        f"sheet: {SHEET_SIZE[0]}x{SHEET_SIZE[1]} JPEG q{JPEG_QUALITY}, "
        f"{path.stat().st_size / 1e6:.1f} MB ({time.perf_counter() - started:.1f} s to generate)",
        flush=True,
    )
    return document_root, path


def _register_detector(root: Path) -> tuple[Path, Path, str]:
    """An untrained yolo11n detector, registered and promoted, with its ONNX export; (pt, onnx, ref)."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from catalog.registry import ONNX_ROLE, WEIGHTS_ROLE, Catalog
    from herbarium.taxonomy import NONVEGETAL

    torch.manual_seed(0)
    model = DetectionModel("yolo11n.yaml", nc=len(NONVEGETAL.classes), verbose=False)
    model.names = dict(enumerate(NONVEGETAL.classes))
    weights = root / "detector.pt"
    torch.save({"model": model.half(), "train_args": {"imgsz": IMGSZ, "task": "detect"}, "version": "8.4.190"}, weights)
    with Catalog.open() as catalog:
        info = catalog.register(MODEL_NAME, "detect-nonvegetal", weights, promote=True)
        catalog.export_onnx(MODEL_NAME, info.version, imgsz=IMGSZ)
        info = catalog.version(MODEL_NAME, info.version)
        return catalog.artefact_path(info, WEIGHTS_ROLE), catalog.artefact_path(info, ONNX_ROLE), info.ref


def _label_studio_task(label_studio: Any, document_root: Path, label_config: str) -> dict[str, Any]:
    """A project whose local storage covers the sheet; its one task, as Label Studio stored it."""
    from connectors.labelstudio_client import label_studio_client

    client = label_studio_client(label_studio.url, label_studio.token)
    project = client.projects.create(title="backend speed", label_config=label_config)
    storage = client.import_storage.local.create(
        project=project.id, path=str(document_root / "sheets"), regex_filter=r".*\.jpg", use_blob_urls=True
    )
    client.import_storage.local.sync(id=storage.id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tasks = list(client.tasks.list(project=project.id))
        if tasks:
            return {"id": tasks[0].id, "data": dict(tasks[0].data), "project": project.id}
        time.sleep(0.5)
    raise RuntimeError("Label Studio made no task from the local storage")


def _start_backend(root: Path, document_root: Path) -> tuple[Any, str]:
    from local_services.backend import LocalBackend

    backend = LocalBackend(root, kind="nonvegetal", document_root=document_root, threads=4).start()
    return backend, backend.url


def _server_predict_seconds(session: Any, url: str) -> float:
    for line in session.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("plantai_backend_predict_seconds_sum "):
            return float(line.split()[1])
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure, after one warm-up (default 7)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="plantai-backend-bench-"))
    processes: list[Any] = []
    try:
        _private_environment(root)
        from catalog.ultralytics_offline import configure_offline_ultralytics

        configure_offline_ultralytics(root / "ultralytics")  # before anything imports ultralytics

        import numpy as np
        import onnxruntime
        import requests
        import torch
        from PIL import Image

        from catalog.weights import yolo_class
        from connectors.label_config import review_config
        from herbarium.imaging import read_image
        from local_services.labelstudio import LABEL_STUDIO_VERSION, LabelStudioServer, LocalLabelStudio

        document_root, sheet_path = write_sheet(root)
        pt_path, onnx_path, ref = _register_detector(root)
        print(f"model: {ref} (untrained yolo11n, imgsz {IMGSZ}); ONNX sibling {onnx_path.name}", flush=True)

        template = REPO_ROOT / ".cache" / f"label-studio-template-{LABEL_STUDIO_VERSION}"
        label_studio = LocalLabelStudio(
            LabelStudioServer(data_dir=root / "label-studio", document_root=document_root), template
        )
        processes.append(label_studio)
        label_studio.start()
        label_config = review_config(["detect-nonvegetal"])
        task = _label_studio_task(label_studio, document_root, label_config)
        image_url = task["data"]["image"]
        print(f"Label Studio {LABEL_STUDIO_VERSION} on {label_studio.url}; task {task['id']}: {image_url}", flush=True)

        backend, backend_url = _start_backend(root, document_root)
        processes.append(backend)

        # (a) The YOLO example: get_local_path (downloads and caches), full decode, Ultralytics on the .pt.
        from label_studio_sdk._extensions.label_studio_tools.core.utils import io as ls_io

        assert not ls_io.LOCAL_FILES_DOCUMENT_ROOT, "the baseline must download, not read the document root"
        yolo_pt = yolo_class()(str(pt_path), task="detect")
        downloaded_bytes: list[int] = []

        stages: dict[str, list[float]] = {"download": [], "decode": [], "predict": []}

        def baseline() -> list[dict[str, Any]]:
            cache_dir = Path(tempfile.mkdtemp(dir=root, prefix="download-"))
            try:  # a fresh cache each time: the example downloads every new task's image once
                started = time.perf_counter()
                path = ls_io.get_local_path(
                    image_url, cache_dir=str(cache_dir), hostname=label_studio.url, access_token=label_studio.token
                )
                downloaded = time.perf_counter()
                downloaded_bytes.append(Path(path).stat().st_size)
                with Image.open(path) as opened:
                    picture = opened.convert("RGB")
                decoded = time.perf_counter()
                result = yolo_pt.predict(picture, imgsz=IMGSZ, conf=0.25, verbose=False)[0]
                stages["download"].append(downloaded - started)
                stages["decode"].append(decoded - downloaded)
                stages["predict"].append(time.perf_counter() - decoded)
                return [
                    {"x": x1, "y": y1, "w": x2 - x1, "h": y2 - y1, "label": result.names[int(c)], "score": float(s)}
                    for (x1, y1, x2, y2), c, s in zip(
                        result.boxes.xyxy.tolist(), result.boxes.cls.tolist(), result.boxes.conf.tolist(), strict=True
                    )
                ]
            finally:
                shutil.rmtree(cache_dir, ignore_errors=True)

        baseline()  # the warm-up sets up Ultralytics' predictor, which sets torch to cpu_count - 1 threads
        torch.set_num_threads(os.cpu_count() or 1)  # the baseline gets every core, as ours does
        assert downloaded_bytes[-1] == sheet_path.stat().st_size, "the baseline did not download the whole sheet"

        # (b) Ours, end to end over HTTP.
        session = requests.Session()
        payload = {"tasks": [task], "project": f"{task['project']}.0", "label_config": label_config}

        def ours() -> dict[str, Any]:
            response = session.post(f"{backend_url}/predict", json=payload, timeout=120)
            response.raise_for_status()
            answer: dict[str, Any] = response.json()
            return answer

        answer = ours()  # the warm-up: loads and verifies the model
        assert len(answer["results"]) == 1, answer
        assert answer["results"][0]["model_version"] == ref, answer

        # (c) The floor: reduced decode and the ONNX forward pass, same runtime and defaults as ours.
        onnx_session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        input_name = onnx_session.get_inputs()[0].name
        _, _, input_h, input_w = onnx_session.get_inputs()[0].shape

        def floor() -> Any:
            picture = read_image(sheet_path, max_side=IMGSZ).image
            canvas = np.full((input_h, input_w, 3), 114, dtype=np.uint8)
            pixels = np.asarray(picture)
            canvas[: pixels.shape[0], : pixels.shape[1]] = pixels
            tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
            return onnx_session.run(None, {input_name: tensor})

        for times in stages.values():
            times.clear()  # from here: the interleaved warm-up (dropped when shown), then the timed runs
        server_before = _server_predict_seconds(session, backend_url)
        timings = _interleaved_seconds(
            args.runs,
            baseline=baseline,
            ours=ours,
            floor=floor,
            decode=lambda: read_image(sheet_path, max_side=IMGSZ),
        )
        server_mean = (_server_predict_seconds(session, backend_url) - server_before) / (args.runs + 1)
        a_runs, b_runs, c_runs = timings["baseline"], timings["ours"], timings["floor"]
        a, b, c = (statistics.median(runs) for runs in (a_runs, b_runs, c_runs))
        decode_only = statistics.median(timings["decode"])

        def show(name: str, runs: list[float]) -> str:
            return f"{name}: " + ", ".join(f"{t * 1000:.0f}" for t in runs) + " ms"

        print(f"machine: {os.cpu_count()} CPUs; median of {args.runs} runs each, taken in turn, after a warm-up")
        print(show("runs (a)", a_runs))
        print(show("runs (b)", b_runs))
        print(show("runs (c)", c_runs))
        print(
            f"(a) baseline, YOLO example (LS download {downloaded_bytes[-1] / 1e6:.1f} MB + full PIL decode"
            f" + Ultralytics .pt, torch {torch.get_num_threads()} threads): {a * 1000:.0f} ms/image"
        )
        print(
            "    stage medians: "
            + ", ".join(f"{name} {statistics.median(times[1:]) * 1000:.0f} ms" for name, times in stages.items())
        )
        print(
            f"(b) ours, POST /predict to plantai serve (ONNX Runtime): {b * 1000:.0f} ms/image"
            f" (mean {statistics.mean(b_runs) * 1000:.0f} ms, of which server-side predict {server_mean * 1000:.0f} ms)"
        )
        print(
            f"(c) floor, reduced decode + ONNX forward: {c * 1000:.0f} ms/image"
            f" (decode alone {decode_only * 1000:.0f} ms)"
        )
        print(f"a/b = {a / b:.2f} (target >= 4); b/c = {b / c:.2f} (target <= 1.5)")
        print(f"RESULT baseline_over_ours={a / b:.3f} ours_over_floor={b / c:.3f}")
    finally:
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
