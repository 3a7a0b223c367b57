"""The first sync's fast path writes what the general path writes, or leaves the task to it.

Tasks are generated with seeded randomness: plain ones (boxes, polygons, verdicts, region
comments, task-level choices, the review, the sheet comment, several predictions) and ones
broken in one of many ways the general path reports (bad scores, sizes, ids, kinds...).
"""

from __future__ import annotations

import gc
import math
import random
from typing import Any

import pytest

from connectors.label_config import review_config
from connectors.sync import _collector_paused, label_controls
from connectors.sync.fast_path import LabelIds, fast_task_fields
from connectors.sync.task_fields import basics_fields, task_basics

from .test_sync_documents import _without_ids

WIDTH, HEIGHT = 200, 400
CONTROLS = label_controls(review_config())
NONVEGETAL = ["barcode", "label", "Color card", "ruler", "stamp", "sticker"]  # an alias, an unknown name
ORGANS = ["leaf", "flower", "fruit", "seed", "barcode"]  # "barcode" is not an organ
ORIGINS = [None, None, "prediction", "prediction-changed", "manual", "imported"]


def _box(rng: random.Random, region: str | None, control: str, names: list[str]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "rectanglelabels",
        "from_name": control,
        "to_name": "image",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": rng.choice([0, 0, 0, 360]),
        "value": {
            "x": rng.choice([rng.uniform(0, 90), rng.randint(0, 90)]),
            "y": rng.uniform(0, 90),
            "width": rng.uniform(0, 10),
            "height": rng.choice([rng.uniform(0, 10), 5]),
            "rectanglelabels": [rng.choice(names)],
        },
    }
    if rng.random() < 0.7:
        item["value"]["rotation"] = rng.choice([0, 0.0, 12.5])
    if region is not None:
        item["id"] = region
    if rng.random() < 0.3:
        item["score"] = rng.choice([0.25, 1, 0.999])
    origin = rng.choice(ORIGINS)
    if origin is not None:
        item["origin"] = origin
    return item


def _polygon(rng: random.Random, region: str) -> dict[str, Any]:
    points = [[rng.uniform(0, 100), rng.choice([rng.uniform(0, 100), 50])] for _ in range(rng.randint(3, 6))]
    value: dict[str, Any] = {"points": points, "polygonlabels": ["plant"]}
    if rng.random() < 0.5:
        value["closed"] = True
    return {
        "id": region,
        "type": "polygonlabels",
        "from_name": "plant_outline",
        "to_name": "image",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "value": value,
    }


def _per_region(region: dict[str, Any], kind: str, from_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    geometry = {k: v for k, v in region["value"].items() if not k.endswith("labels")}
    item = {
        "id": region["id"],
        "type": kind,
        "from_name": from_name,
        "to_name": "image",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "value": {**geometry, **payload},
    }
    if "origin" in region:
        item["origin"] = region["origin"]
    return item


def _choice(control: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"{control}-{value}", "type": "choices", "from_name": control, "to_name": "image",
            "value": {"choices": [value]}, **extra}  # fmt: skip


def _results(rng: random.Random, prefix: str, expert: bool) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for k in range(rng.randint(0, 6)):
        control, names = rng.choice([("nonvegetal", NONVEGETAL), ("organs", ORGANS)])
        box = _box(rng, f"{prefix}{k}" if rng.random() < 0.95 else None, control, names)
        results.append(box)
        if expert and "id" in box and rng.random() < 0.6:
            verdict = rng.choice(["correct", "wrong label", "wrong shape", "not a plant part", "unsure"])
            results.append(_per_region(box, "choices", "verdict", {"choices": [verdict]}))
        if expert and "id" in box and rng.random() < 0.3:
            text = rng.choice(["fine", ["two", "lines"]])
            results.append(_per_region(box, "textarea", "region_comment", {"text": text}))
    if rng.random() < 0.3:
        results.append(_polygon(rng, f"{prefix}poly"))
    if rng.random() < 0.4:
        results.insert(rng.randint(0, len(results)), _choice("phenology", rng.choice(["flowering", "fruiting", "odd"])))
    if expert and rng.random() < 0.5:
        results.append(_choice("review", rng.choice(["validated", "needs work"])))
    if expert and rng.random() < 0.3:
        results.append({"id": "comment", "type": "textarea", "from_name": "comment", "to_name": "image",
                        "value": {"text": ["a comment"]}})  # fmt: skip
    if rng.random() < 0.05:
        results.append(_choice("mystery", "something"))  # a control the config does not have
    return results


def _break(rng: random.Random, task: dict[str, Any]) -> str:
    """Break one result of the task in one of the ways the general path reports (or reads otherwise)."""
    records = [r for r in (*task["predictions"], *task["annotations"]) if r["result"]]
    if not records:
        return "nothing to break"
    results = rng.choice(records)["result"]
    item = rng.choice(results)
    value = item["value"]
    how = rng.choice(
        [
            "score", "nan", "bool", "string", "negative", "size", "no size", "rotation", "to_name", "id",
            "duplicate", "labels", "empty label", "origin", "closed", "points", "kind", "brush", "two comments",
            "orphan", "texts", "choices", "two reviews", "mixed kinds", "type", "index",
        ]
    )  # fmt: skip
    if how == "score":
        item["score"] = rng.choice([1.5, -0.1, True, "0.5"])
    elif how in ("nan", "bool", "string", "negative"):
        key = rng.choice([k for k in ("x", "width", "height", "rotation", "points") if k in value] or ["x"])
        if key == "points":
            value["points"][0][0] = {"nan": math.nan, "bool": True, "string": "1", "negative": math.inf}[how]
        else:
            value[key] = {"nan": math.nan, "bool": True, "string": "1", "negative": -1.0}[how]
    elif how == "size":
        item["original_width"] = rng.choice([WIDTH + 1, True, 0])
    elif how == "no size":
        item.pop("original_height", None)
    elif how == "rotation":
        item["image_rotation"] = rng.choice([90, "0", None])
    elif how == "to_name":
        item["to_name"] = rng.choice(["other", ""])
    elif how == "id":
        item["id"] = rng.choice(["", 7, None])
    elif how == "duplicate":
        regions = [r for r in results if r["type"].endswith("labels") and "id" in r]
        if regions:
            results.append({**regions[0]})  # a second region result with the first one's id
    elif how in ("labels", "empty label"):
        key = next((k for k in value if k.endswith("labels") or k == "choices"), "choices")
        value[key] = ["a", "b"] if how == "labels" else [""]
    elif how == "origin":
        item["origin"] = 3
    elif how == "closed":
        value["closed"] = False
    elif how == "points":
        value["points"] = [[1, 2], [3, 4]]
    elif how == "kind":
        item["from_name"] = "plant_outline"  # boxes where the config wants polygons
    elif how == "brush":
        results.append({"id": "m", "type": "brushlabels", "from_name": "plant_mask", "to_name": "image",
                        "original_width": WIDTH, "original_height": HEIGHT,
                        "value": {"format": "rle", "rle": [0, 0, 0, 0], "brushlabels": ["plant"]}})  # fmt: skip
    elif how == "two comments":
        for _ in range(2):
            results.append({"type": "textarea", "from_name": "comment", "value": {"text": "x"}})
    elif how == "orphan":
        results.append({"id": "nowhere", "type": "choices", "from_name": "verdict", "value": {"x": 1, "choices": []}})
    elif how == "texts":
        results.append({"type": "textarea", "from_name": "comment", "value": {"text": rng.choice([[], [1], None])}})
    elif how == "choices":
        results.append(_choice("phenology", "flowering"))
        results.append({**_choice("phenology", "fruiting"), "id": "other"})  # two values for one Classification
    elif how == "two reviews":
        results.append(_choice("review", "validated"))
        results.append({**_choice("review", "needs work"), "id": "r2"})
    elif how == "mixed kinds":
        results.append(_choice("nonvegetal", "barcode"))
    elif how == "type":
        item["type"] = rng.choice(["labels", "number", None])
    elif how == "index":
        item["item_index"] = 1
    return how


def _task(rng: random.Random, task_id: int) -> dict[str, Any]:
    predictions = [
        {
            "id": 10 * task_id + k,
            "model_version": rng.choice(["det@1", "det@2+cls@1", ""]),
            "score": rng.choice([0.5, None, 1, 0.9]),
            "updated_at": f"2026-0{rng.randint(1, 3)}-01T00:00:00Z",
            "result": _results(rng, f"p{k}-", False),
        }
        for k in range(rng.randint(0, 3))
    ]
    annotations = [
        {
            "id": 100 * task_id + k,
            "completed_by": rng.choice([3, {"id": 4}, None]),
            "updated_at": f"2026-0{k + 1}-02T00:00:00Z",
            "was_cancelled": rng.random() < 0.1,
            "result": _results(rng, f"e{k}-", True),
        }
        for k in range(rng.randint(0, 2))
    ]
    return {
        "id": task_id,
        "updated_at": "2026-04-01T00:00:00Z",
        "data": {"image": "https://example.org/a.jpg", "catalogNumber": f"P{task_id}"},
        "predictions": predictions,
        "annotations": annotations,
    }


def _compare(task: dict[str, Any]) -> bool:
    """True when the fast path took the task (and then wrote what the general path writes)."""
    basics = task_basics(task, None)
    fast = fast_task_fields(basics, CONTROLS, LabelIds())
    general = basics_fields(basics, CONTROLS, build_ai=True, build_expert=True, as_documents=True)
    if fast is None:
        return False
    assert _without_ids(vars(fast)) == _without_ids(vars(general)), task
    return True


def test_the_fast_path_writes_what_the_general_path_writes() -> None:
    rng = random.Random(2026)
    taken = sum(_compare(_task(rng, task_id)) for task_id in range(1, 401))
    assert taken >= 300  # the plain tasks all go the fast way (brush masks aside)


def test_an_id_less_region_and_a_region_whose_id_looks_like_its_key_stay_apart() -> None:
    rng = random.Random(3)
    first = _box(rng, "\x001", "organs", ORGANS)  # the key id-less regions once had
    second = _box(rng, None, "organs", ORGANS)
    verdict = _per_region(first, "choices", "verdict", {"choices": ["correct"]})
    task = _task(rng, 1)
    task["annotations"] = [{"id": 100, "completed_by": 3, "updated_at": "2026-01-02T00:00:00Z",
                            "result": [first, second, verdict]}]  # fmt: skip
    assert _compare(task)  # the fast path takes it and writes what the general path writes


def test_broken_tasks_go_to_the_general_path_which_reports_them() -> None:
    rng = random.Random(7)
    left = set()
    for task_id in range(1, 801):
        task = _task(rng, task_id)
        how = _break(rng, task)
        if not _compare(task):
            left.add(how)
            general = basics_fields(task_basics(task, None), CONTROLS, build_ai=True, build_expert=True,
                                   as_documents=True)  # fmt: skip
            assert general.errors, how  # the fast path declines only what the general path reports
    # Each way of breaking a task was seen leaving the fast path at least once.
    assert left >= {"score", "nan", "size", "duplicate", "labels", "kind", "brush", "two comments", "orphan", "type"}


def test_label_ids_are_new_object_ids() -> None:
    first, second = LabelIds(), LabelIds()
    ids = [first() for _ in range(1000)] + [second() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert abs(ids[0].generation_time.timestamp() - ids[-1].generation_time.timestamp()) < 5


def _paused_then_failing() -> None:
    with _collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("Label Studio went away")


def test_the_collector_is_back_on_after_a_sync_even_a_failed_one() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="went away"):
        _paused_then_failing()
    assert gc.isenabled()
    gc.disable()
    try:
        with _collector_paused():
            pass
        assert not gc.isenabled()  # it was off: it stays off
    finally:
        gc.enable()


def test_a_fast_path_bug_leaves_the_task_to_the_general_path_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import connectors.sync.fast_path

    task = _task(random.Random(1), 9)
    basics = task_basics(task, None)
    assert fast_task_fields(basics, CONTROLS, LabelIds()) is not None

    def broken(*args: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(connectors.sync.fast_path, "_fast_fields", broken)
    with caplog.at_level("WARNING", logger="connectors.sync.fast_path"):
        assert fast_task_fields(basics, CONTROLS, LabelIds()) is None
    assert "sync fast path failed on task 9" in caplog.text


def test_every_expected_fallback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(1)
    task = next(t for t in (_task(rng, 11) for _ in range(50)) if any(r["result"] for r in t["predictions"]))
    results = next(r for r in task["predictions"] if r["result"])["result"]
    results.append({"id": "m", "type": "brushlabels", "from_name": "plant_mask", "to_name": "image",
                    "original_width": WIDTH, "original_height": HEIGHT,
                    "value": {"format": "rle", "rle": [0, 0, 0, 0], "brushlabels": ["plant"]}})  # fmt: skip
    with caplog.at_level("DEBUG", logger="connectors.sync.fast_path"):
        assert fast_task_fields(task_basics(task, None), CONTROLS, LabelIds()) is None
    assert "sync fast path leaves task 11 to the general path (line " in caplog.text
