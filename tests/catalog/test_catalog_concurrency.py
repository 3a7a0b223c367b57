from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from catalog.registry import Catalog

ROUNDS = 4


def _register_and_promote(url: str, home: str, weights: str, worker: int) -> list[str]:
    """One process: register new versions and promote each, racing the other process."""
    registered = []
    with Catalog.open(url, Path(home)) as catalog:
        for _ in range(ROUNDS):
            version = catalog.register("shared", "detect-nonvegetal", weights, registered_by=f"worker-{worker}")
            catalog.promote("shared", version.version)
            registered.append(version.version)
    return registered


def test_two_processes_registering_and_promoting_leave_one_production(catalog: Catalog, model_files: Any) -> None:
    url = catalog.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        jobs = [
            pool.apply_async(_register_and_promote, (url, str(catalog.home), str(weights), worker))
            for worker, weights in enumerate((model_files.detect, model_files.detect_retrained))
        ]
        results = [job.get(timeout=300) for job in jobs]
    versions = catalog.versions("shared")
    assert sorted(v for result in results for v in result) == sorted(v.version for v in versions)
    assert len(versions) == 2 * ROUNDS
    assert len({v.version for v in versions}) == 2 * ROUNDS
    assert sum(v.stage == "production" for v in versions) == 1
    assert catalog.get("shared").production in {results[0][-1], results[1][-1]}
    assert catalog.verify().ok
