"""Load and fault test of a real ``plantai serve`` (gunicorn): good and hostile calls, one worker killed mid-run.

A private PLANTAI_HOME whose catalog serves an untrained yolo11n (imgsz 320, the six non-vegetal classes,
built from its yaml) as detect-nonvegetal; a document root with three generated sheets and hostile files
(a PNG header claiming 50,000 x 50,000 px, a truncated JPEG, random bytes named .jpg). The backend listens
on 127.0.0.1 with basic auth, PLANTAI_MAX_REQUEST_BYTES 256 KiB, PLANTAI_MAX_PREDICT_TASKS 20 and a
LABEL_STUDIO_URL on a loopback port where nothing listens. ``--clients`` threads each send ``--requests``
``POST /predict``, a fixed seeded mix: one good sheet (200); a sheet beside two hostile tasks (200: bomb,
truncated, random bytes, ``?d=../../etc/passwd``, ``http://10.0.0.1/x.jpg``, which must be refused by
policy before any connection); malformed JSON (400); a body over the limit (413); 21 tasks (413); no
credentials (401).

After ``--kill-after`` of the calls one gunicorn worker is SIGKILLed. The kill window runs from the SIGKILL
until the replacement the master forks answers a ``/health`` probe (psutil: it holds the probe's
connection). A call overlapping the window that gets no answer or a 5xx is killed; any other 5xx is an
error. A call that gets no answer on the connection whose previous call got 413 for its body's size is
counted apart (reset_after_413) and as unexpected: the backend reads and drops a refused body of up to
16 MiB, so the connection stays usable and a client must not lose its next call there. RSS of the
master and its workers is sampled every 0.2 s. Baselines from the same run: one client's rate of good calls
before the load, and the RSS once every worker is warm. Last line:
``RESULT requests=<n> errors_5xx=<e> peak_rss_mb=<m> killed=<k> ...``; exit status 1 if the server does not
answer /health and a good /predict afterwards.

    python bench/backend_load.py [--clients 8] [--requests 500] [--workers 2] [--threads 4] [--kill-after 0.3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from local_services.backend import LocalBackend
from local_services.process import free_loopback_port, tree_rss

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for backend_speed
from backend_speed import _private_environment

AUTH = ("bench", "load-test-password")
MAX_BODY_BYTES, MAX_TASKS = 256 * 1024, 20
SHEETS = [(600, 840), (700, 980), (640, 900)]
IMGSZ = 320
FOREIGN_URL = "http://10.0.0.1/x.jpg"
REFUSED = "refusing to download from a host other than"
# kind: (weight in the mix, expected status); "mixed" is a good sheet beside two hostile tasks.
KINDS = {"good": (5, 200), "mixed": (3, 200), "malformed": (1, 400), "oversize": (1, 413),
         "too_many": (1, 413), "no_auth": (1, 401)}  # fmt: skip
Kill = tuple[int, float, float, int]  # (victim pid, killed at, replacement answered at, replacement pid)


@dataclass(frozen=True)
class Call:
    kind: str
    body: bytes
    tasks: int  # tasks of a well-formed body, for checking a 200's results


@dataclass(eq=False)  # compared by identity: outcomes go in sets
class Outcome:
    kind: str
    started: float
    ended: float
    status: int | None  # None: no HTTP answer (connection reset or refused, timeout)
    well_formed: bool = True
    after_oversize: bool = False  # sent on the connection whose previous call got 413 for its body's size


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header says ``width`` x ``height`` RGB: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _write_inputs(root: Path) -> tuple[list[str], list[str]]:
    """Sheets and hostile files under ``root``; (good image refs, hostile image refs)."""
    from herbarium.synth import generate_sheet

    root.mkdir(parents=True)
    for k, (width, height) in enumerate(SHEETS):
        generate_sheet(seed=300 + k, width=width, height=height).image.save(root / f"sheet-{k}.jpg", quality=90)
    (root / "bomb.png").write_bytes(_png_claiming(50_000, 50_000))
    whole = (root / "sheet-0.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    (root / "random.jpg").write_bytes(random.Random(0).randbytes(20_000))
    good = [f"/data/local-files/?d=sheet-{k}.jpg" for k in range(len(SHEETS))]
    hostile = [f"/data/local-files/?d={name}" for name in ("bomb.png", "truncated.jpg", "random.jpg")]
    return good, [*hostile, "/data/local-files/?d=../../etc/passwd", FOREIGN_URL]


def _body(refs: list[str], label_config: str, pad: int = 0) -> bytes:
    tasks = [{"id": k, "data": {"image": ref}} for k, ref in enumerate(refs)]
    return json.dumps({"tasks": tasks, "label_config": label_config, "project": "1.0", "pad": "x" * pad}).encode()


def _calls(seed: int, count: int, good: list[str], hostile: list[str], label_config: str) -> list[Call]:
    """One client's sequence: ``count`` calls of the seeded mix."""
    rng = random.Random(seed)
    calls = []
    for kind in rng.choices(list(KINDS), weights=[weight for weight, _ in KINDS.values()], k=count):
        refs = [rng.choice(good)]
        if kind == "mixed":
            refs = rng.sample([*refs, *rng.sample(hostile, 2)], 3)
        elif kind == "too_many":
            refs *= MAX_TASKS + 1
        if kind == "malformed":
            calls.append(Call(kind, rng.choice([b'{"tasks": [', b"\xff\xfe garbage", b"[1, 2, 3]"]), 0))
        else:
            pad = MAX_BODY_BYTES if kind == "oversize" else 0
            calls.append(Call(kind, _body(refs, label_config, pad), len(refs) if kind != "oversize" else 0))
    return calls


def _send(session: requests.Session, url: str, call: Call) -> Outcome:
    auth = None if call.kind == "no_auth" else AUTH
    started = time.perf_counter()
    try:
        response = session.post(
            f"{url}/predict", data=call.body, auth=auth, timeout=120, headers={"Content-Type": "application/json"}
        )
    except requests.RequestException:
        return Outcome(call.kind, started, time.perf_counter(), None)
    outcome = Outcome(call.kind, started, time.perf_counter(), response.status_code)
    if response.status_code == 200:
        results = response.json().get("results")
        outcome.well_formed = isinstance(results, list) and len(results) == call.tasks
    return outcome


def _register_detector(root: Path) -> str:
    """An untrained yolo11n from its yaml (nothing downloaded), registered and promoted; its ref."""
    import torch
    import ultralytics
    from ultralytics.nn.tasks import DetectionModel

    from catalog.registry import Catalog
    from herbarium.taxonomy import NONVEGETAL

    torch.manual_seed(0)
    model = DetectionModel("yolo11n.yaml", nc=len(NONVEGETAL.classes), verbose=False)  # type: ignore[no-untyped-call]
    model.names = dict(enumerate(NONVEGETAL.classes))
    weights = root / "detector.pt"
    checkpoint = {"imgsz": IMGSZ, "task": "detect"}
    torch.save({"model": model.half(), "train_args": checkpoint, "version": ultralytics.__version__}, weights)
    with Catalog.open() as catalog:
        return catalog.register("load-nonvegetal", "detect-nonvegetal", weights, promote=True).ref


def _answers_health(port: int, pid: int) -> bool:
    """Whether worker ``pid`` answers a /health probe on a fresh connection (it holds the probe's socket)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.connect()
        probe_port = connection.sock.getsockname()[1]
        connection.request("GET", "/health")
        response = connection.getresponse()
        response.read()
        # Kept alive after the answer, the connection is still held by the worker that answered.
        held = any(c.raddr and c.raddr.port == probe_port for c in psutil.Process(pid).net_connections("tcp"))
        return response.status == 200 and held
    except (OSError, http.client.HTTPException, psutil.NoSuchProcess):
        return False
    finally:
        connection.close()


def _kill_one_worker(master: int, port: int) -> Kill:
    """SIGKILL a worker of ``master``; wait until the replacement it forks answers /health."""
    workers = {p.pid for p in psutil.Process(master).children()}
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    killed_at, replacement = time.perf_counter(), None
    while time.perf_counter() < killed_at + 180:
        if replacement is None:
            replacement = min({p.pid for p in psutil.Process(master).children()} - workers, default=None)
        elif _answers_health(port, replacement):
            return victim, killed_at, time.perf_counter(), replacement
        time.sleep(0.05)
    raise RuntimeError(f"no replacement for worker {victim} answered /health within 180 s")


def _load(
    backend: LocalBackend, sequences: list[list[Call]], kill_after: float
) -> tuple[list[Outcome], list[int], Kill]:
    """Every client's calls at once, RSS sampled, one worker killed after ``kill_after`` of the calls."""
    total = sum(len(calls) for calls in sequences)
    outcomes: list[Outcome] = []
    rss: list[int] = []
    kills: list[Kill] = []
    lock, done, kill_due = threading.Lock(), threading.Event(), threading.Event()
    master = backend.pid or 0

    def client(calls: list[Call]) -> None:
        session, previous = requests.Session(), None
        for call in calls:
            outcome = _send(session, backend.url, call)
            outcome.after_oversize = previous is not None and previous.kind == "oversize" and previous.status == 413
            previous = outcome
            with lock:
                outcomes.append(outcome)
                if len(outcomes) >= kill_after * total:
                    kill_due.set()

    def sampler() -> None:
        while not done.wait(0.2):
            rss.append(tree_rss(master))

    def killer() -> None:
        if kill_due.wait() and not done.is_set():
            kills.append(_kill_one_worker(master, backend.port))

    helpers = [threading.Thread(target=sampler), threading.Thread(target=killer)]
    clients = [threading.Thread(target=client, args=(calls,)) for calls in sequences]
    for thread in helpers + clients:
        thread.start()
    for thread in clients:
        thread.join()
    done.set()
    kill_due.set()
    for thread in helpers:
        thread.join()
    return outcomes, rss, kills[0] if kills else (0, float("inf"), float("inf"), 0)


def _report(outcomes: list[Outcome], kill: Kill, single_rate: float, rss: list[int], warm_rss: int) -> dict[str, float]:
    """Print each kind's statuses, how the failures split, rates and RSS; the RESULT line's figures."""
    victim, killed_at, ready_at, replacement = kill
    start, end = min(o.started for o in outcomes), max(o.ended for o in outcomes)
    print(
        f"kill window: worker {victim} SIGKILLed at t={killed_at - start:.2f} s, until its replacement "
        f"{replacement} answered /health at t={ready_at - start:.2f} s ({ready_at - killed_at:.2f} s)"
    )
    dropped = {o for o in outcomes if o.status is None and o.after_oversize}
    failed = {o for o in outcomes if o.status is None or o.status >= 500} - dropped
    killed = {o for o in failed if o.started <= ready_at and o.ended >= killed_at}
    errors_5xx = {o for o in failed - killed if o.status is not None}
    unexpected = {o for o in outcomes if o.status != KINDS[o.kind][1]} - killed
    for kind, (_, status) in KINDS.items():
        seen = Counter(str(o.status) for o in outcomes if o.kind == kind)
        print(f"  {kind:9s} expect {status}: " + ", ".join(f"{s}: {n}" for s, n in sorted(seen.items())))
    print(
        f"killed {len(killed)} (no answer or 5xx in the kill window); 5xx outside it {len(errors_5xx)}; other "
        f"unexpected statuses {len(unexpected)}; no answer on a connection reused after a 413 for the body's "
        f"size {len(dropped)}; 200s with the wrong number of results {sum(not o.well_formed for o in outcomes)}"
    )
    good_rate = sum(o.kind in ("good", "mixed") and o.status == 200 for o in outcomes) / (end - start)
    print(
        f"{len(outcomes)} calls in {end - start:.1f} s ({len(outcomes) / (end - start):.1f}/s); good /predict "
        f"{good_rate:.1f}/s under load vs {single_rate:.1f}/s from one client alone ({good_rate / single_rate:.2f}x)"
    )
    peak_mb, warm_mb = max(rss, default=0) / 2**20, warm_rss / 2**20
    print(f"RSS, master + workers: peak {peak_mb:.0f} MB vs {warm_mb:.0f} MB once warm ({peak_mb / warm_mb:.2f}x)")
    return {"requests": len(outcomes), "errors_5xx": len(errors_5xx), "peak_rss_mb": round(peak_mb),
            "killed": len(killed), "unexpected_status": len(unexpected), "reset_after_413": len(dropped),
            "kill_window_s": round(ready_at - killed_at, 2),
            "peak_over_warm_rss": round(peak_mb / warm_mb, 2)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--requests", type=int, default=500, help="calls per client (default 500)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--kill-after", type=float, default=0.3, help="fraction of calls before the kill (0.3)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="plantai-backend-load-"))
    backend = None
    try:
        _private_environment(root)
        os.environ.update(PLANTAI_MAX_REQUEST_BYTES=str(MAX_BODY_BYTES), PLANTAI_MAX_PREDICT_TASKS=str(MAX_TASKS))
        from catalog.ultralytics_offline import configure_offline_ultralytics

        configure_offline_ultralytics(root / "ultralytics")  # before anything imports ultralytics
        from connectors.label_config import review_config

        label_config = review_config(["detect-nonvegetal"])
        files = root / "files"
        good, hostile = _write_inputs(files)
        ref = _register_detector(root)
        nobody = f"http://127.0.0.1:{free_loopback_port()}"  # the Label Studio to download from: nothing listens
        backend = LocalBackend(
            root,
            kind="nonvegetal",
            document_root=files,
            label_studio_url=nobody,
            basic_auth=AUTH,
            threads=args.threads,
            workers=args.workers,
        )
        url = backend.start().url
        print(
            f"plantai serve nonvegetal on {url}, basic auth: {args.workers} workers x {args.threads} threads; "
            f"{ref} (untrained yolo11n, imgsz {IMGSZ}); limits {MAX_BODY_BYTES} bytes, {MAX_TASKS} tasks"
        )

        # Baseline: one client's good calls one after another, after a warm-up that loads the model.
        session = requests.Session()
        single = [Call("good", _body([good[k % len(good)]], label_config), 1) for k in range(40)]
        assert all(_send(session, url, call).status == 200 for call in single[:3])
        started = time.perf_counter()
        assert all(_send(session, url, call).status == 200 for call in single)
        single_rate = len(single) / (time.perf_counter() - started)
        # Fresh connections, all at once: every worker gets some, and loads its model.
        warm = [
            threading.Thread(target=lambda: [_send(requests.Session(), url, call) for call in single[:4]])
            for _ in range(args.clients)
        ]
        for thread in warm:
            thread.start()
        for thread in warm:
            thread.join()
        warm_rss = tree_rss(backend.pid or 0)

        # The foreign host is refused by policy before any connection: the log says so, at once.
        started = time.perf_counter()
        foreign = _send(session, url, Call("mixed", _body([FOREIGN_URL], label_config), 1))
        log = backend.log_path.read_text(errors="replace")
        assert foreign.status == 200 and REFUSED in log and "download failed" not in log, log[-2000:]  # noqa: PT018
        print(f"{FOREIGN_URL}: refused by policy, no download tried ({(time.perf_counter() - started) * 1000:.0f} ms)")

        sequences = [_calls(1000 + n, args.requests, good, hostile, label_config) for n in range(args.clients)]
        outcomes, rss, kill = _load(backend, sequences, args.kill_after)
        figures = _report(outcomes, kill, single_rate, rss, warm_rss)
        log = backend.log_path.read_text(errors="replace")
        print(f"backend log: {log.count('Traceback')} tracebacks, {log.count(REFUSED)} foreign URLs refused")

        health = requests.get(f"{url}/health", timeout=10)
        after = _send(requests.Session(), url, Call("good", _body(good, label_config), len(good)))
        figures["answered_after"] = int(health.status_code == 200 and after.status == 200 and after.well_formed)
        print(f"after the run: /health {health.status_code}, a good /predict {after.status}")
        print("RESULT " + " ".join(f"{key}={value}" for key, value in figures.items()))
        return 0 if figures["answered_after"] else 1
    finally:
        if backend is not None:
            backend.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
