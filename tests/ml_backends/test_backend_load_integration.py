"""A real ``plantai serve`` under load: 8 client threads x 100 ``POST /predict``, good and bad tasks mixed.

Every call carries a generated sheet, an odd but valid image (16-bit TIFF, CMYK JPEG, PNG with
alpha) and two tasks that cannot be answered (corrupt, truncated or empty files, a URL on a
foreign loopback host watched by a canary server, paths leaving the document root, a task with
no image). The detector is an untrained yolo11n (imgsz 320) whose class-0 bias is raised so that
every real image gets boxes: a good task's result is non-empty, a bad task's is empty, and each
region's ``original_width``/``original_height`` names the image it came from, so answers given
to the wrong task or out of order are caught.
"""

from __future__ import annotations

import http.server
import io
import json
import random
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import requests
from PIL import Image

from catalog.registry import Catalog
from connectors.label_config import review_config
from herbarium.synth import generate_sheet
from herbarium.taxonomy import NONVEGETAL
from local_services.process import tree_rss

pytestmark = pytest.mark.integration

CLIENT_THREADS = 8
CALLS_PER_THREAD = 100
SERVER_THREADS = 4
MODEL_NAME = "load-nonvegetal"
LABEL_CONFIG = review_config(["detect-nonvegetal"])
RSS_LIMIT_BYTES = 3 * 1024**3
# Steady state is reached before the first quarter (model loaded and every code path run by the
# warm-up). What may vary after that is the transient working set of at most SERVER_THREADS requests
# in flight: 4 decoded images of at most 1024 px (3 MB each) plus imgsz-320 activations, some tens of MB,
# under 20% of a backend's ~0.5 GB. A leak of one decoded image per call would add more than 2 GB.
RSS_GROWTH_LIMIT = 0.20

# Distinct sizes, so that each region's original_width/height says which image it was predicted on, and
# distinct shapes once decoded at 320 px: Ultralytics letterboxes a batch to its common shape only when every
# image has it (else to a square), so one image's boxes would change with the image batched beside it.
SHEET_SIZES = [(707, 1024), (1024, 707), (800, 1000), (600, 1000)]
ODD_GOOD = {"grey16.tif": (512, 800), "cmyk.jpg": (640, 840), "alpha.png": (540, 700)}


@dataclass
class Canary:
    """An HTTP server on 127.0.0.2 that the backend must never call."""

    url: str
    requests: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TaskKind:
    name: str
    data: dict[str, str]
    size: tuple[int, int] | None  # the image's size when the task is good; None when it must fail


@dataclass
class Corpus:
    document_root: Path
    sheets: list[TaskKind]
    odd_good: list[TaskKind]
    bad: list[TaskKind]


def _local(relative: str) -> dict[str, str]:
    return {"image": f"/data/local-files/?d={relative}"}


def _jpeg(image: Image.Image, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            self.wfile.write(_jpeg(Image.new("RGB", (64, 64), (200, 190, 170))))

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Canary(f"http://127.0.0.2:{server.server_address[1]}", seen)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, canary: Canary) -> Corpus:
    base = tmp_path_factory.mktemp("load")
    root = base / "files"
    for folder in ("sheets", "odd", "bad"):
        (root / folder).mkdir(parents=True)
    sheets = []
    for k, (width, height) in enumerate(SHEET_SIZES):
        landscape = width > height  # generated portrait, turned a quarter (a sheet scanned sideways)
        image = generate_sheet(seed=100 + k, width=min(width, height), height=max(width, height)).image
        (image.transpose(Image.Transpose.ROTATE_90) if landscape else image).save(root / "sheets" / f"sheet-{k}.jpg")
        sheets.append(TaskKind(f"sheet-{k}", _local(f"sheets/sheet-{k}.jpg"), (width, height)))

    picture = generate_sheet(seed=200, width=600, height=840).image
    grey = np.asarray(picture.convert("L").resize(ODD_GOOD["grey16.tif"]), dtype=np.uint16) * 257
    Image.fromarray(grey).save(root / "odd" / "grey16.tif")
    with Image.open(root / "odd" / "grey16.tif") as written:
        assert written.mode.startswith("I;16"), written.mode
    (root / "odd" / "cmyk.jpg").write_bytes(_jpeg(picture.resize(ODD_GOOD["cmyk.jpg"]).convert("CMYK")))
    alpha = picture.resize(ODD_GOOD["alpha.png"]).convert("RGBA")
    alpha.putalpha(Image.linear_gradient("L").resize(alpha.size))
    alpha.save(root / "odd" / "alpha.png")
    odd_good = [TaskKind(name, _local(f"odd/{name}"), size) for name, size in ODD_GOOD.items()]

    whole = (root / "sheets" / "sheet-0.jpg").read_bytes()
    (root / "bad" / "corrupt.jpg").write_bytes(random.Random(0).randbytes(20_000))
    (root / "bad" / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    (root / "bad" / "empty.jpg").write_bytes(b"")
    (base / "outside.jpg").write_bytes(whole)  # a real image, one level above the document root
    bad = [
        TaskKind("corrupt", _local("bad/corrupt.jpg"), None),
        TaskKind("truncated", _local("bad/truncated.jpg"), None),
        TaskKind("empty", _local("bad/empty.jpg"), None),
        TaskKind("foreign-local-files", {"image": f"{canary.url}/data/local-files/?d=sheets/sheet-0.jpg"}, None),
        TaskKind("foreign-upload", {"image": f"{canary.url}/data/upload/1/sheet-0.jpg"}, None),
        TaskKind("outside-root", _local("../outside.jpg"), None),
        TaskKind("outside-root-encoded", _local("sheets/..%2F..%2Foutside.jpg"), None),
        TaskKind("no-image", {"text": "a task without an image"}, None),
    ]
    return Corpus(root, sheets, odd_good, bad)


def _detector(path: Path) -> Path:
    """An untrained yolo11n (six non-vegetal classes, imgsz 320) that finds class 0 on any image."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolo11n.yaml", nc=len(NONVEGETAL.classes), verbose=False)
    with torch.no_grad():
        model.model[-1].cv3[2][-1].bias[0] = 6.0  # stride-32 class-0 logits: a few boxes after NMS
    model.names = dict(enumerate(NONVEGETAL.classes))
    torch.save({"model": model.half(), "train_args": {"imgsz": 320, "task": "detect"}, "version": "8.4.190"}, path)
    return path


@dataclass
class Backend:
    url: str
    pid: int
    log_path: Path
    model_version: str


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, start_backend: Any, corpus: Corpus, canary: Canary) -> Backend:
    home = tmp_path_factory.mktemp("plantai-home")
    weights = _detector(tmp_path_factory.mktemp("weights") / "detector.pt")
    with Catalog.open(url=f"sqlite:///{home / 'catalog.db'}", home=home) as catalog:
        info = catalog.register(MODEL_NAME, "detect-nonvegetal", weights, promote=True)
    # A Label Studio URL on 127.0.0.1 and the canary's port: only the host differs from the canary's.
    running = start_backend(
        home,
        kind="nonvegetal",
        document_root=corpus.document_root,
        label_studio_url=f"http://127.0.0.1:{canary.url.rsplit(':', 1)[1]}",
        api_key="load-test-token",
        threads=SERVER_THREADS,
    )
    assert running.pid is not None
    return Backend(running.url, running.pid, running.log_path, info.ref)


def _tasks_for_call(corpus: Corpus, call: int) -> list[tuple[dict[str, Any], TaskKind]]:
    """One sheet, one odd good image, two bad tasks, in an order that varies per call."""
    kinds = [
        corpus.sheets[call % len(corpus.sheets)],
        corpus.odd_good[call % len(corpus.odd_good)],
        corpus.bad[(2 * call) % len(corpus.bad)],
        corpus.bad[(2 * call + 1) % len(corpus.bad)],
    ]
    random.Random(call).shuffle(kinds)
    return [({"id": call * 10 + j, "data": dict(kind.data)}, kind) for j, kind in enumerate(kinds)]


def _metrics(url: str) -> dict[str, float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {name: float(value) for name, value in (line.split() for line in text.splitlines() if line)}


Boxes = list[tuple[str, float, float, float, float]]


def _boxes(regions: list[dict[str, Any]]) -> Boxes:
    return sorted(
        (",".join(r["value"]["rectanglelabels"]), *(round(r["value"][k], 1) for k in ("x", "y", "width", "height")))
        for r in regions
    )


def _breakdown(pid: int) -> str:
    """RSS and PSS of each process: the forked worker shares the arbiter's pages, which RSS counts twice."""
    root = psutil.Process(pid)
    parts = []
    for process in [root, *root.children(recursive=True)]:
        memory = process.memory_full_info()
        parts.append(f"pid {process.pid} RSS {memory.rss >> 20} MB, PSS {memory.pss >> 20} MB")
    return "; ".join(parts)


def _check_answer(
    answer: dict[str, Any],
    sent: list[tuple[dict[str, Any], TaskKind]],
    version: str,
    reference: dict[str, Boxes],
) -> list[str]:
    """What is wrong with one /predict answer (an empty list when nothing is).

    ``reference`` holds each good image's boxes as first answered (filled in on first sight): the
    same image must always get the same boxes, whatever the requests answered beside it.
    """
    results = answer.get("results")
    if not isinstance(results, list) or len(results) != len(sent):
        return [f"expected {len(sent)} results, got {results!r:.200}"]
    problems = []
    for result, (task, kind) in zip(results, sent, strict=True):
        where = f"task {task['id']} ({kind.name})"
        regions = result.get("result")
        if kind.size is None:
            if regions != []:
                problems.append(f"{where}: a bad task got regions {regions!r:.200}")
            continue
        if result.get("model_version") != version:
            problems.append(f"{where}: model_version {result.get('model_version')!r}, expected {version!r}")
        if not regions:
            problems.append(f"{where}: a good image got no regions")
        sizes = {(r.get("original_width"), r.get("original_height")) for r in regions or []}
        if regions and sizes != {kind.size}:
            problems.append(f"{where}: regions sized {sizes}, expected {kind.size}: an answer for another image")
        if regions:
            boxes = _boxes(regions)
            if reference.setdefault(kind.name, boxes) != boxes:
                problems.append(f"{where}: boxes {boxes[:3]} differ from this image's first answer")
    return problems


def test_backend_under_load_answers_every_task_and_stays_bounded(
    backend: Backend, corpus: Corpus, canary: Canary
) -> None:
    # Warm-up: the model is loaded and verified, every kind of task is seen, every good image's boxes noted.
    reference: dict[str, Boxes] = {}
    for call in range(-len(corpus.bad), 0):
        sent = _tasks_for_call(corpus, call)
        response = requests.post(
            f"{backend.url}/predict", json={"tasks": [t for t, _ in sent], "label_config": LABEL_CONFIG}, timeout=120
        )
        assert response.status_code == 200, response.text[:500]
        assert _check_answer(response.json(), sent, backend.model_version, reference) == []
    assert len(reference) == len(corpus.sheets) + len(corpus.odd_good)
    before = _metrics(backend.url)

    total_calls = CLIENT_THREADS * CALLS_PER_THREAD
    done = [0]
    done_lock = threading.Lock()
    statuses: list[int] = []
    problems: list[str] = []
    latencies: list[float] = []
    samples: list[tuple[int, int]] = []  # (calls completed, RSS bytes)
    finished = threading.Event()

    def client(thread: int) -> None:
        session = requests.Session()
        for i in range(CALLS_PER_THREAD):
            sent = _tasks_for_call(corpus, thread * CALLS_PER_THREAD + i)
            body = {"tasks": [t for t, _ in sent], "label_config": LABEL_CONFIG, "project": f"{thread}.0"}
            started = time.perf_counter()
            try:
                response = session.post(f"{backend.url}/predict", json=body, timeout=120)
            except requests.RequestException as exc:
                with done_lock:
                    problems.append(f"thread {thread} call {i}: {exc.__class__.__name__}: {exc}")
                    done[0] += 1
                continue
            elapsed = time.perf_counter() - started
            found = (
                _check_answer(response.json(), sent, backend.model_version, reference)
                if response.status_code == 200
                else []
            )
            with done_lock:
                statuses.append(response.status_code)
                latencies.append(elapsed)
                problems.extend(found)
                done[0] += 1

    def monitor() -> None:
        while not finished.is_set():
            with done_lock:
                completed = done[0]
            samples.append((completed, tree_rss(backend.pid)))
            finished.wait(0.2)

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    started = time.perf_counter()
    clients = [threading.Thread(target=client, args=(n,)) for n in range(CLIENT_THREADS)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    elapsed = time.perf_counter() - started
    finished.set()
    watcher.join()
    after = _metrics(backend.url)

    first = [rss for completed, rss in samples if completed < total_calls // 4]
    last = [rss for completed, rss in samples if completed >= total_calls - total_calls // 4]
    mb = 1024**2
    print(
        f"\n{total_calls} calls ({4 * total_calls} tasks) in {elapsed:.1f} s: {total_calls / elapsed:.1f} calls/s, "
        f"latency median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )
    print(
        f"server RSS (process + children): first quarter max {max(first) / mb:.0f} MB, "
        f"last quarter max {max(last) / mb:.0f} MB, peak {max(rss for _, rss in samples) / mb:.0f} MB "
        f"({len(samples)} samples); {_breakdown(backend.pid)}"
    )

    assert not [s for s in statuses if s >= 500], f"5xx answers: {sorted(set(statuses))}"
    assert statuses == [200] * total_calls, f"non-200 answers: {sorted(set(statuses))}"
    assert problems == [], f"{len(problems)} problems:\n" + "\n".join(problems[:12])
    assert canary.requests == [], f"the backend called the foreign host: {canary.requests[:5]}"
    # Each bad task counted once as a failure, and no good one.
    assert after["plantai_backend_predict_tasks_total"] - before["plantai_backend_predict_tasks_total"] == (
        4 * total_calls
    )
    assert after["plantai_backend_task_failures_total"] - before["plantai_backend_task_failures_total"] == (
        2 * total_calls
    )
    assert "Traceback" not in backend.log_path.read_text(errors="replace")
    assert max(rss for _, rss in samples) < RSS_LIMIT_BYTES
    assert first, "no RSS sample in the first quarter"
    assert max(last) <= max(first) * (1 + RSS_GROWTH_LIMIT), "server memory grew under steady load"


_JSON = "application/json"
MALFORMED: dict[str, tuple[bytes, str]] = {
    "not-json": (b"this is not json", _JSON),
    "binary": (b"\xff\xfe\x00garbage", "text/plain"),
    "json-list": (b"[1, 2, 3]", _JSON),
    "tasks-not-a-list": (json.dumps({"tasks": "not a list", "label_config": LABEL_CONFIG}).encode(), _JSON),
    "config-not-xml": (json.dumps({"tasks": [], "label_config": "<View><Image"}).encode(), _JSON),
    "config-without-image": (
        json.dumps({"tasks": [], "label_config": "<View><Text value='$t'/></View>"}).encode(),
        _JSON,
    ),
    "config-not-text": (json.dumps({"tasks": [], "label_config": 42}).encode(), _JSON),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_predict_requests_get_400_and_the_server_stays_up(
    backend: Backend, corpus: Corpus, case: str
) -> None:
    body, content_type = MALFORMED[case]
    response = requests.post(f"{backend.url}/predict", data=body, headers={"Content-Type": content_type}, timeout=30)
    assert response.status_code == 400, response.text[:500]
    assert response.json()["status"] == "error"
    assert requests.get(f"{backend.url}/health", timeout=5).json()["status"] == "UP"
    sent = _tasks_for_call(corpus, 0)
    after = requests.post(
        f"{backend.url}/predict", json={"tasks": [t for t, _ in sent], "label_config": LABEL_CONFIG}, timeout=60
    )
    assert after.status_code == 200
    assert _check_answer(after.json(), sent, backend.model_version, {}) == []
