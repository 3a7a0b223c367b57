"""Search, saved views and dashboard figures over synced specimen datasets (FiftyOne).

What the CLI, the FiftyOne plugin and the benchmark share:

* :func:`ensure_indexes` puts an index on every field people filter by that the dataset has
  (taxon, family, institution, collector, country, date/year, model version, review state);
* :func:`search` combines Darwin Core metadata with AI and expert labels in one query, written
  as plain MongoDB filters so the indexes serve the metadata part;
* :func:`save_views` (re)writes the ready-made saved views;
* :func:`dashboard` gathers specimens and labels per class, taxon, institution and year, each
  model version's agreement with the experts (FiftyOne's own ``evaluate_detections`` /
  ``evaluate_classifications``), correction and rejection rates, their change from version to
  version, and the catalog's versions with stage and metrics.

Nothing is hard-coded about which label fields or model versions exist: ``ai_<control>`` and
``expert_<control>`` fields are read from the dataset's schema, model versions from
``ai_model_versions`` and the labels' ``source``; a sync that adds a field or a version is seen by
the next call.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.sync import INFO_KEY

if TYPE_CHECKING:
    import fiftyone as fo

    from catalog.registry import Catalog

# What people filter by -> the sample field that holds it.
SEARCH_FIELDS: Mapping[str, str] = {
    "taxon": "scientificName",
    "family": "family",
    "institution": "institutionCode",
    "collector": "recordedBy",
    "country": "country",
    "year": "eventDate",  # ISO dates: a year is a prefix range, which the index serves
    "model_version": "ai_model_versions",
    "review_state": "review_state",
    "catalog_number": "catalogNumber",
}
LOW_CONFIDENCE = 0.5
DISAGREEING_STATES = ("corrected", "rejected")
FLOWERING = "flowering"
PHENOLOGY = "phenology"

SAVED_VIEWS: Mapping[str, str] = {
    "not-yet-reviewed": "Specimens no expert has annotated yet",
    "ai-and-expert-disagree": "An expert corrected or rejected a model's label, or chose another trait value",
    "low-confidence": f"A model label with confidence below {LOW_CONFIDENCE}",
    "flowering-specimens": "Phenology flowering (the expert's word, else the model's)",
    "barcode-not-read": "No catalog number: the barcode on the sheet was not read",
}


# ---------------------------------------------------------------------------------------------
# Fields


def label_fields(collection: fo.SampleCollection, prefix: str | None = None) -> dict[str, str]:
    """``ai_*``/``expert_*`` label fields of the collection -> kind (detections, polylines, classification)."""
    import fiftyone as fo

    kinds = {fo.Detections: "detections", fo.Polylines: "polylines", fo.Classification: "classification"}
    out: dict[str, str] = {}
    for name, field in collection.get_field_schema().items():
        if not name.startswith(("ai_", "expert_")) or (prefix is not None and not name.startswith(prefix + "_")):
            continue
        document_type = getattr(field, "document_type", None)
        if document_type in kinds:
            out[name] = kinds[document_type]
    return dict(sorted(out.items()))


def controls(collection: fo.SampleCollection) -> dict[str, str]:
    """Control name -> kind, for every control with an AI or an expert field."""
    return {name.split("_", 1)[1]: kind for name, kind in label_fields(collection).items()}


def _list_path(field: str, kind: str) -> str:
    return f"{field}.{kind}" if kind in ("detections", "polylines") else field


def ensure_indexes(dataset: fo.Dataset) -> list[str]:
    """Index every search field the dataset has (idempotent); returns the indexed fields."""
    schema = dataset.get_field_schema()
    existing = set(dataset.list_indexes())
    done = []
    for field in SEARCH_FIELDS.values():
        if field not in schema:
            continue
        if field not in existing:
            dataset.create_index(field)
        done.append(field)
    return done


def drop_search_indexes(dataset: fo.Dataset) -> None:
    """Drop the indexes :func:`ensure_indexes` creates (for comparing, as the benchmark does)."""
    existing = set(dataset.list_indexes())
    for field in SEARCH_FIELDS.values():
        if field in existing and field != "ls_task_id":
            dataset.drop_index(field)


# ---------------------------------------------------------------------------------------------
# Search


@dataclass(frozen=True)
class Query:
    """Metadata filters (exact values; ``year`` an int) and a label to find among AI/expert labels."""

    taxon: str | None = None
    family: str | None = None
    institution: str | None = None
    collector: str | None = None
    country: str | None = None
    year: int | None = None
    model_version: str | None = None
    review_state: str | None = None
    catalog_number: str | None = None
    label: str | None = None  # a class name (barcode, flowering, ...)
    label_source: str = "any"  # "ai", "expert" or "any"
    min_confidence: float | None = None  # for AI labels
    control: str | None = None  # restrict the label to one control (nonvegetal, phenology, ...)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Query:
        """A query from loose parameters (the plugin's form, CLI options); empty values are ignored."""
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            value = params.get(name)
            if value is None or value == "":
                continue
            if name == "year":
                value = int(value)
            elif name == "min_confidence":
                value = float(value)
            values[name] = value
        return cls(**values)


def metadata_filter(query: Query) -> dict[str, Any]:
    """The MongoDB filter of the metadata part (index-served)."""
    out: dict[str, Any] = {}
    for key in ("taxon", "family", "institution", "collector", "country", "review_state", "catalog_number"):
        value = getattr(query, key)
        if value is not None:
            out[SEARCH_FIELDS[key]] = value
    if query.year is not None:
        out[SEARCH_FIELDS["year"]] = {"$gte": f"{query.year:04d}", "$lt": f"{query.year + 1:04d}"}
    if query.model_version is not None:
        out[SEARCH_FIELDS["model_version"]] = query.model_version
    return out


def label_filter(collection: fo.SampleCollection, query: Query) -> dict[str, Any] | None:
    """The MongoDB filter of the label part: any discovered field of the chosen source holds the label."""
    if query.label is None and query.min_confidence is None:
        return None
    prefixes = ("ai", "expert") if query.label_source == "any" else (query.label_source,)
    alternatives: list[dict[str, Any]] = []
    for field, kind in label_fields(collection).items():
        prefix, control = field.split("_", 1)
        if prefix not in prefixes or (query.control is not None and control != query.control):
            continue
        condition: dict[str, Any] = {}
        if query.label is not None:
            condition["label"] = query.label
        if query.min_confidence is not None and prefix == "ai":
            condition["confidence"] = {"$gte": query.min_confidence}
        if not condition:
            continue
        if kind == "classification":
            alternatives.append({f"{field}.{k}": v for k, v in condition.items()})
        else:
            alternatives.append({_list_path(field, kind): {"$elemMatch": condition}})
    if not alternatives:
        return {"_id": None}  # nothing can match
    return alternatives[0] if len(alternatives) == 1 else {"$or": alternatives}


def search(collection: fo.SampleCollection, query: Query) -> fo.DatasetView:
    """Specimens matching the metadata and the label parts of ``query``, in one ``$match``."""
    conditions = [metadata_filter(query)]
    labels = label_filter(collection, query)
    if labels is not None:
        conditions.append(labels)
    conditions = [c for c in conditions if c]
    if not conditions:
        return collection.view()
    return collection.match(conditions[0] if len(conditions) == 1 else {"$and": conditions})


# ---------------------------------------------------------------------------------------------
# Saved views


def saved_view(collection: fo.SampleCollection, name: str, threshold: float = LOW_CONFIDENCE) -> fo.DatasetView:
    """One of :data:`SAVED_VIEWS`, built from the fields the collection has now."""
    from fiftyone import ViewField as F

    fields = label_fields(collection)
    if name == "not-yet-reviewed":
        return collection.match({"review_state": {"$in": [None, "unreviewed"]}})
    if name == "ai-and-expert-disagree":
        alternatives: list[dict[str, Any]] = []
        for field, kind in fields.items():
            if not field.startswith("expert_"):
                continue
            if kind == "classification":
                # A trait the expert chose: disagreement is another value (how it was entered says nothing).
                ai = "ai_" + field.split("_", 1)[1]
                alternatives.append({f"{field}.state": "rejected"})
                if ai in fields:
                    alternatives.append(
                        {
                            "$and": [
                                {field: {"$ne": None}},
                                {ai: {"$ne": None}},
                                {"$expr": {"$ne": [f"${field}.label", f"${ai}.label"]}},
                            ]
                        }
                    )
            else:
                alternatives.append(
                    {_list_path(field, kind): {"$elemMatch": {"state": {"$in": list(DISAGREEING_STATES)}}}}
                )
        return collection.match({"$or": alternatives} if alternatives else {"_id": None})
    if name == "low-confidence":
        alternatives = []
        for field, kind in fields.items():
            if not field.startswith("ai_"):
                continue
            low = {"$ne": None, "$lt": threshold}
            if kind == "classification":
                alternatives.append({f"{field}.confidence": low})
            else:
                alternatives.append({_list_path(field, kind): {"$elemMatch": {"confidence": low}}})
        return collection.match({"$or": alternatives} if alternatives else {"_id": None})
    if name == "flowering-specimens":
        expert, ai = f"expert_{PHENOLOGY}", f"ai_{PHENOLOGY}"
        expression = None
        if expert in fields:
            expression = F(f"{expert}.label") == FLOWERING
        if ai in fields:
            ai_says = F(f"{ai}.label") == FLOWERING
            if expert in fields:
                ai_says = ai_says & (F(expert) == None)  # noqa: E711 (a ViewExpression, not a comparison)
            expression = ai_says if expression is None else expression | ai_says
        return collection.match(expression) if expression is not None else collection.match({"_id": None})
    if name == "barcode-not-read":
        return collection.match({"$or": [{"catalogNumber": None}, {"catalogNumber": ""}]})
    raise KeyError(f"saved view {name!r}: expected one of {', '.join(SAVED_VIEWS)}")


def save_views(dataset: fo.Dataset, threshold: float = LOW_CONFIDENCE) -> list[str]:
    """Write (or rewrite, with the fields the dataset has now) every ready-made saved view."""
    for name, description in SAVED_VIEWS.items():
        dataset.save_view(name, saved_view(dataset, name, threshold), description=description, overwrite=True)
    return list(SAVED_VIEWS)


def prepare(dataset: fo.Dataset) -> dict[str, list[str]]:
    """Indexes and saved views, up to date with the dataset's fields: run after each sync or annotation."""
    return {"indexes": ensure_indexes(dataset), "saved_views": save_views(dataset)}


# ---------------------------------------------------------------------------------------------
# Dashboard


def specimen_datasets() -> list[str]:
    """Names of the datasets that hold specimens (synced from Label Studio, or with AI/expert labels)."""
    import fiftyone as fo

    names = []
    for name in fo.list_datasets():
        dataset = fo.load_dataset(name)
        if INFO_KEY in (dataset.info or {}) or label_fields(dataset):
            names.append(name)
    return names


def _counts(collection: fo.SampleCollection, field: str) -> dict[str, int]:
    if field not in collection.get_field_schema():
        return {}
    values = collection.count_values(field)
    return {str(k): int(v) for k, v in sorted(values.items(), key=lambda kv: -kv[1]) if k is not None}


def _year_counts(collection: fo.SampleCollection) -> dict[str, int]:
    from fiftyone import ViewField as F

    if "eventDate" not in collection.get_field_schema():
        return {}
    values = collection.count_values(F("eventDate").substr(count=4))
    return {str(k): int(v) for k, v in sorted(values.items(), key=lambda kv: str(kv[0])) if k}


def label_counts(collection: fo.SampleCollection) -> dict[str, dict[str, int]]:
    """Label field -> class -> count."""
    out: dict[str, dict[str, int]] = {}
    for field, kind in label_fields(collection).items():
        values = collection.count_values(f"{_list_path(field, kind)}.label")
        out[field] = {str(k): int(v) for k, v in sorted(values.items(), key=lambda kv: -kv[1]) if k is not None}
    return out


def model_versions(collection: fo.SampleCollection) -> list[str]:
    """Every ``name@version`` whose labels the collection holds (``ai_model_versions`` and label sources)."""
    found: set[str] = set()
    if "ai_model_versions" in collection.get_field_schema():
        found.update(str(v) for v in collection.distinct("ai_model_versions") if v)
    for field, kind in label_fields(collection, "ai").items():
        found.update(str(v) for v in collection.distinct(f"{_list_path(field, kind)}.source") if v)
    return sorted(found, key=_version_sort_key)


def _version_sort_key(ref: str) -> tuple[str, Any]:
    from catalog.semver import version_key

    name, _, version = ref.partition("@")
    try:
        return name, (0, version_key(version))
    except Exception:  # not a semantic version: after the others, by text
        return name, (1, version)


@dataclass
class Agreement:
    """One model version on one control of one dataset, against the experts' labels."""

    dataset: str
    model_version: str
    control: str
    kind: str
    samples: int  # reviewed samples carrying this version's labels
    expert_labels: int
    validated: int
    corrected: int
    rejected: int
    metrics: dict[str, float | None]  # mAP (detections), precision, recall, fscore, accuracy
    classes: list[str]
    confusion_matrix: list[list[int]]

    @property
    def correction_rate(self) -> float | None:
        return self.corrected / self.expert_labels if self.expert_labels else None

    @property
    def rejection_rate(self) -> float | None:
        return self.rejected / self.expert_labels if self.expert_labels else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in vars(self).items()},
            "correction_rate": self.correction_rate,
            "rejection_rate": self.rejection_rate,
        }


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN: no value


def agreement(collection: fo.SampleCollection, dataset_name: str | None = None) -> list[Agreement]:
    """Each model version's agreement with the expert labels, per control, by FiftyOne's evaluation.

    Ground truth: the expert's labels on the samples an expert annotated, rejected ones left out
    (a rejected region is a model's false positive). Predictions: that version's labels only.
    """
    from fiftyone import ViewField as F

    fields = label_fields(collection)
    out: list[Agreement] = []
    name = dataset_name or getattr(collection, "dataset_name", None) or getattr(collection, "name", "") or ""
    for ai, kind in fields.items():
        if not ai.startswith("ai_"):
            continue
        control = ai.split("_", 1)[1]
        expert = f"expert_{control}"
        if expert not in fields or fields[expert] != kind:
            continue
        reviewed = collection.match({expert: {"$ne": None}})
        for version in model_versions(reviewed):
            if kind == "classification":
                view = reviewed.match({f"{ai}.source": version})
            else:
                path = _list_path(ai, kind)
                view = reviewed.match({path: {"$elemMatch": {"source": version}}}).filter_labels(
                    ai, F("source") == version, only_matches=False
                )
            samples = view.count()
            if not samples:
                continue
            states = Counter(
                {str(k): int(v) for k, v in view.count_values(f"{_list_path(expert, kind)}.state").items() if k}
            )
            total = sum(states.values())
            if kind == "classification":
                # Review rules mark a chosen trait value as entered, not as agreeing: compare the values.
                differ = view.match({"$expr": {"$ne": [f"${expert}.label", f"${ai}.label"]}}).count()
                rejected = states.get("rejected", 0)
                states = Counter({"validated": total - differ - rejected, "corrected": differ, "rejected": rejected})
            if kind == "classification":
                kept = view.match({f"{expert}.state": {"$ne": "rejected"}})
                results = kept.evaluate_classifications(ai, gt_field=expert, progress=False)
                metrics = dict(results.metrics())
                metrics["mAP"] = None
            else:
                kept = view.filter_labels(expert, F("state") != "rejected", only_matches=False)
                results = kept.evaluate_detections(ai, gt_field=expert, compute_mAP=True, iou=0.5, progress=False)
                metrics = dict(results.metrics())
                metrics["mAP"] = _float(results.mAP())
            classes = list(results.classes)
            matrix = results.confusion_matrix(classes=classes)
            labels = list(classes)
            if kind != "classification":
                labels.append(results.missing)
            out.append(
                Agreement(
                    dataset=name,
                    model_version=version,
                    control=control,
                    kind=kind,
                    samples=samples,
                    expert_labels=total,
                    validated=states.get("validated", 0),
                    corrected=states.get("corrected", 0),
                    rejected=states.get("rejected", 0),
                    metrics={k: _float(v) for k, v in metrics.items() if k != "support"},
                    classes=[str(c) for c in labels],
                    confusion_matrix=[[int(x) for x in row] for row in matrix],
                )
            )
    return out


def version_changes(agreements: Sequence[Agreement]) -> list[dict[str, Any]]:
    """For each model version after the first (same model, dataset and control): its metrics minus the previous."""
    groups: dict[tuple[str, str, str], list[Agreement]] = defaultdict(list)
    for item in agreements:
        groups[(item.dataset, item.model_version.partition("@")[0], item.control)].append(item)
    changes: list[dict[str, Any]] = []
    for (dataset, model, control), items in sorted(groups.items()):
        items.sort(key=lambda a: _version_sort_key(a.model_version))
        for before, after in itertools.pairwise(items):
            delta: dict[str, float | None] = {}
            for key in ("mAP", "precision", "recall", "fscore"):
                a, b = after.metrics.get(key), before.metrics.get(key)
                delta[key] = None if a is None or b is None else a - b
            for key in ("correction_rate", "rejection_rate"):
                a, b = getattr(after, key), getattr(before, key)
                delta[key] = None if a is None or b is None else a - b
            changes.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "control": control,
                    "from": before.model_version,
                    "to": after.model_version,
                    "delta": delta,
                }
            )
    return changes


def catalog_versions(catalog: Catalog) -> list[dict[str, Any]]:
    """Every catalog version with its stage and metrics."""
    rows = []
    for model in catalog.list_models():
        for version in catalog.versions(model.name):
            rows.append(
                {
                    "model": version.model,
                    "version": version.version,
                    "ref": version.ref,
                    "task": version.task,
                    "stage": version.stage,
                    "metrics": dict(version.metrics),
                    "registered_at": version.registered_at.isoformat(),
                }
            )
    return rows


def dataset_summary(dataset: fo.SampleCollection, name: str) -> dict[str, Any]:
    """Specimen and label counts of one dataset."""
    return {
        "name": name,
        "specimens": dataset.count(),
        "reviewed": dataset.match({"review_state": {"$nin": [None, "unreviewed"]}}).count()
        if "review_state" in dataset.get_field_schema()
        else 0,
        "by_taxon": _counts(dataset, SEARCH_FIELDS["taxon"]),
        "by_family": _counts(dataset, SEARCH_FIELDS["family"]),
        "by_institution": _counts(dataset, SEARCH_FIELDS["institution"]),
        "by_year": _year_counts(dataset),
        "by_review_state": _counts(dataset, "review_state"),
        "labels": label_counts(dataset),
        "model_versions": model_versions(dataset),
    }


def _merge(target: dict[str, int], counts: Mapping[str, int]) -> None:
    for key, value in counts.items():
        target[key] = target.get(key, 0) + value


def dashboard(
    dataset_names: Sequence[str] | None = None, catalog: Catalog | None = None, evaluate: bool = True
) -> dict[str, Any]:
    """Everything the dashboard shows, as plain data (JSON-ready)."""
    import fiftyone as fo

    names = list(dataset_names) if dataset_names is not None else specimen_datasets()
    datasets = []
    totals: dict[str, Any] = {"specimens": 0, "reviewed": 0}
    merged: dict[str, dict[str, int]] = defaultdict(dict)
    labels: dict[str, dict[str, int]] = defaultdict(dict)
    agreements: list[Agreement] = []
    for name in names:
        dataset = fo.load_dataset(name)
        summary = dataset_summary(dataset, name)
        datasets.append(summary)
        totals["specimens"] += summary["specimens"]
        totals["reviewed"] += summary["reviewed"]
        for key in ("by_taxon", "by_family", "by_institution", "by_year", "by_review_state"):
            _merge(merged[key], summary[key])
        for field, counts in summary["labels"].items():
            _merge(labels[field], counts)
        if evaluate:
            agreements += agreement(dataset, name)
    totals.update({k: dict(sorted(v.items(), key=lambda kv: -kv[1])) for k, v in merged.items()})
    totals["by_year"] = dict(sorted(merged["by_year"].items()))
    totals["labels"] = dict(labels)
    return {
        "datasets": datasets,
        "totals": totals,
        "agreement": [a.as_dict() for a in agreements],
        "version_changes": version_changes(agreements),
        "catalog": catalog_versions(catalog) if catalog is not None else [],
    }


__all__ = [
    "SAVED_VIEWS",
    "SEARCH_FIELDS",
    "Agreement",
    "Query",
    "agreement",
    "catalog_versions",
    "dashboard",
    "dataset_summary",
    "drop_search_indexes",
    "ensure_indexes",
    "label_counts",
    "label_fields",
    "model_versions",
    "prepare",
    "save_views",
    "saved_view",
    "search",
    "specimen_datasets",
    "version_changes",
]
