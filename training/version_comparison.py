"""Two versions of a model side by side in FiftyOne: each version's predictions and how far they agree."""

from __future__ import annotations

from typing import Any

from catalog.registry import Catalog

AGREEMENT_INFO_KEY = "plantai_versions"


def version_field(ref: str) -> str:
    """The FiftyOne field of one version's predictions: ``detector@1.1.0`` -> ``model_detector_1_1_0``."""
    return "model_" + "".join(c if c.isalnum() else "_" for c in ref.replace("@", "_"))


def compare_versions(
    dataset: Any, catalog: Catalog, model: str, old: str, new: str, conf: float = 0.25
) -> dict[str, Any]:
    """Predict ``dataset``'s images with two versions of ``model`` and record how far they agree.

    Each version's predictions go to :func:`version_field` (detections or a classification); FiftyOne's
    own evaluation of the new against the old (``eval_key`` ``agree_<old>_<new>``) gives per-sample
    agreement in the App, and the summary (F1 of matched boxes, or the share of equal classes)
    is stored in ``dataset.info["plantai_versions"]`` and returned.
    """
    from catalog.predictors import load_model
    from catalog.tasks import resolve_task
    from herbarium.imaging import read_image
    from herbarium.labels.fiftyone import as_fiftyone
    from ml_backends.adapters import adapter_for

    refs = (f"{model}@{old}", f"{model}@{new}")
    fields = tuple(version_field(ref) for ref in refs)
    samples = list(dataset.select_fields().iter_samples())
    paths = [sample.filepath for sample in samples]
    kind = ""
    for ref, name in zip(refs, fields, strict=True):
        loaded = load_model(ref, catalog)
        kind = resolve_task(loaded.task).kind
        adapter = adapter_for(loaded, kind, conf=conf)  # as the backends predict, whatever the framework
        values: list[Any] = []
        for path in paths:
            [labels] = adapter.predict([read_image(path, max_side=adapter.decode_side(None))])
            converted = as_fiftyone(labels)
            values.append(
                next(iter(converted.classifications.values()), None)
                if kind == "classify-trait"
                else converted.detections
            )
        dataset.set_values(name, dict(zip([s.id for s in samples], values, strict=True)), key_field="id")
    eval_key = "agree_" + version_field(refs[0])[6:] + "__" + version_field(refs[1])[6:]
    eval_key = eval_key[:80]
    if dataset.has_evaluation(eval_key):
        dataset.delete_evaluation(eval_key)
    summary: dict[str, Any] = {"model": model, "versions": list(refs), "fields": list(fields), "eval_key": eval_key}
    if kind == "classify-trait":
        results = dataset.evaluate_classifications(fields[1], gt_field=fields[0], eval_key=eval_key)
        summary["agreement"] = float(results.metrics()["accuracy"])
        summary["measure"] = "share of sheets given the same class"
    else:
        dataset.evaluate_detections(fields[1], gt_field=fields[0], eval_key=eval_key, iou=0.5)
        tp, fp, fn = (int(dataset.sum(f"{eval_key}_{k}") or 0) for k in ("tp", "fp", "fn"))
        summary.update(tp=tp, fp=fp, fn=fn)
        summary["agreement"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
        summary["measure"] = "F1 of the new version's boxes matched to the old one's (IoU 0.5, same class)"
    info = dict(dataset.info or {})
    comparisons = dict(info.get(AGREEMENT_INFO_KEY) or {})
    comparisons[eval_key] = summary
    info[AGREEMENT_INFO_KEY] = comparisons
    dataset.info = info
    dataset.save()
    return summary
