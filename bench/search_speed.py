"""Speed of a metadata + AI-label search over 100,000 specimens, with the search indexes and without.

A private FiftyOne database (its bundled mongod) in a temporary folder holds one dataset of
generated specimen records shaped like a synced one: Darwin Core fields, ``review_state``,
``ai_model_versions`` and ``ai_nonvegetal`` detections with confidence and source. The query is
the one an analyst types in the plugin: family + year + "an AI barcode with confidence >= 0.5",
through :func:`connectors.search.search`. Without indexes first (:func:`drop_search_indexes`),
then with :func:`ensure_indexes`; each the median of ``--repeat`` runs of fetching the matching ids.
Last line: ``RESULT indexed_s=<s> unindexed_s=<s>``. Target: indexed <= 1 s.

    python bench/search_speed.py [--n 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local_services.fiftyone_db import LocalFiftyOneDatabase
from local_services.process import free_loopback_port

FAMILIES = [f"Family{i:02d}aceae" for i in range(20)]
COUNTRIES = ["Switzerland", "France", "Italy", "Austria", "Germany", "Spain", "Norway", "Sweden"]
INSTITUTIONS = ["FX", "G", "P", "K", "B", "W", "Z"]
NONVEGETAL = ["barcode", "label", "envelope", "colour_chart", "ruler", "stamp"]
VERSIONS = ["nonvegetal-detector@1.0.0", "nonvegetal-detector@1.1.0", "nonvegetal-detector@1.2.0"]
STATES = ["unreviewed", "unreviewed", "unreviewed", "validated", "needs work"]


def populate(dataset: Any, n: int, seed: int = 0) -> float:
    """``n`` specimen documents, written straight to the sample collection (schema declared by one real sample)."""
    import fiftyone as fo
    from bson import ObjectId

    start = time.perf_counter()
    rng = random.Random(seed)
    first = fo.Sample(
        filepath="/specimens/S0000000.jpg",
        catalogNumber="S0000000",
        scientificName="Genus0 species0",
        family=FAMILIES[0],
        institutionCode="FX",
        recordedBy="Collector 0",
        country="Switzerland",
        eventDate="1900-01-01",
        review_state="unreviewed",
        ai_model_versions=[VERSIONS[0]],
        ai_nonvegetal=fo.Detections(
            detections=[
                fo.Detection(
                    label="barcode",
                    bounding_box=[0.1, 0.1, 0.1, 0.05],
                    confidence=0.9,
                    source=VERSIONS[0],
                    state="predicted",
                )
            ]
        ),
    )
    dataset.add_sample(first)
    template = dataset._sample_collection.find_one({})
    template_det = template["ai_nonvegetal"]["detections"][0]
    collection = dataset._sample_collection
    batch: list[dict[str, Any]] = []
    for i in range(1, n):
        doc = copy.copy(template)
        doc["_id"] = ObjectId()
        family = rng.randrange(len(FAMILIES))
        doc.update(
            filepath=f"/specimens/S{i:07d}.jpg",
            catalogNumber=f"S{i:07d}",
            scientificName=f"Genus{family} species{rng.randrange(30)}",
            family=FAMILIES[family],
            institutionCode=rng.choice(INSTITUTIONS),
            recordedBy=f"Collector {rng.randrange(500)}",
            country=rng.choice(COUNTRIES),
            eventDate=f"{rng.randrange(1800, 2020)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            review_state=rng.choice(STATES),
        )
        version = rng.choice(VERSIONS)
        doc["ai_model_versions"] = [version]
        detections = []
        for label in rng.sample(NONVEGETAL, rng.randrange(2, 6)):
            det = dict(template_det)
            det.update(_id=ObjectId(), label=label, confidence=round(rng.random(), 3), source=version)
            det["bounding_box"] = [rng.random() * 0.8, rng.random() * 0.8, 0.1, 0.05]
            detections.append(det)
        doc["ai_nonvegetal"] = {**template["ai_nonvegetal"], "detections": detections}
        batch.append(doc)
        if len(batch) >= 10_000:
            collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        collection.insert_many(batch, ordered=False)
    return time.perf_counter() - start


def timed(dataset: Any, repeat: int) -> tuple[float, int]:
    from connectors.search import Query, search

    query = Query(family=FAMILIES[7], year=1923, label="barcode", label_source="ai", min_confidence=0.5)
    times, found = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        found = len(search(dataset, query).values("id"))
        times.append(time.perf_counter() - start)
    return statistics.median(times), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="plantai-bench-search-") as tmp:
        root = Path(tmp)
        database = LocalFiftyOneDatabase(root / "db", port=free_loopback_port())
        os.environ.update(
            {
                "HOME": str(root / "home"),
                "FIFTYONE_DATABASE_URI": database.uri,
                "FIFTYONE_DATABASE_VALIDATION": "false",
                "FIFTYONE_DO_NOT_TRACK": "true",
            }
        )
        (root / "home").mkdir()
        with database.start():
            import fiftyone as fo

            from connectors.search import drop_search_indexes, ensure_indexes

            dataset = fo.Dataset("bench-search")
            seconds = populate(dataset, args.n)
            print(f"{len(dataset)} specimens written in {seconds:.1f} s")
            drop_search_indexes(dataset)
            unindexed, found_plain = timed(dataset, args.repeat)
            print(f"unindexed: {unindexed:.4f} s median of {args.repeat} ({found_plain} specimens)")
            start = time.perf_counter()
            indexes = ensure_indexes(dataset)
            print(f"indexes on {', '.join(indexes)} built in {time.perf_counter() - start:.1f} s")
            indexed, found_indexed = timed(dataset, args.repeat)
            print(f"indexed:   {indexed:.4f} s median of {args.repeat} ({found_indexed} specimens)")
            if found_indexed != found_plain:
                raise SystemExit(f"indexed search found {found_indexed}, unindexed {found_plain}")
            dataset.delete()
    print(f"RESULT indexed_s={indexed:.4f} unindexed_s={unindexed:.4f}")


if __name__ == "__main__":
    main()
