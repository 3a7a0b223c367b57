"""The dashboard's figures (Plotly JSON) and tables (Markdown) from :func:`connectors.search.dashboard`'s data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOP = 15  # bars per chart: the most frequent values


def _bar(title: str, counts: Mapping[str, int], horizontal: bool = False) -> dict[str, Any]:
    items = list(counts.items())[:TOP]
    keys, values = [k for k, _ in items], [v for _, v in items]
    trace: dict[str, Any] = {"type": "bar", "x": values, "y": keys, "orientation": "h"} if horizontal else {
        "type": "bar", "x": keys, "y": values,
    }  # fmt: skip
    trace["text"] = values
    trace["textposition"] = "auto"
    return {
        "data": [trace],
        "layout": {"title": {"text": title}, "height": 320, "margin": {"l": 140 if horizontal else 40, "t": 40}},
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def dashboard_figures(stats: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Name -> ``{"data", "layout"}`` (a Plotly chart) or ``{"markdown"}`` (a table), in display order."""
    totals = stats.get("totals") or {}
    datasets = stats.get("datasets") or []
    figures: dict[str, dict[str, Any]] = {}
    figures["summary"] = {
        "markdown": f"### PlantAI herbarium dashboard\n**{totals.get('specimens', 0)}** specimens in "
        f"**{len(datasets)}** datasets, **{totals.get('reviewed', 0)}** reviewed by experts\n\n"
        + _table(
            ["dataset", "specimens", "reviewed", "model versions"],
            [[d["name"], d["specimens"], d["reviewed"], ", ".join(d["model_versions"])] for d in datasets],
        )
    }
    if totals.get("by_taxon"):
        figures["by_taxon"] = _bar("Specimens per taxon", totals["by_taxon"], horizontal=True)
    if totals.get("by_institution"):
        figures["by_institution"] = _bar("Specimens per institution", totals["by_institution"])
    if totals.get("by_year"):
        figures["by_year"] = _bar("Specimens per year", totals["by_year"])
    labels = totals.get("labels") or {}
    traces = []
    for field, counts in sorted(labels.items()):
        if counts:
            traces.append({"type": "bar", "name": field, "x": list(counts), "y": list(counts.values())})
    if traces:
        figures["labels_per_class"] = {
            "data": traces,
            "layout": {"title": {"text": "Labels per class (AI and expert fields)"}, "barmode": "group", "height": 360},
        }

    agreement = stats.get("agreement") or []
    if agreement:
        figures["agreement_table"] = {
            "markdown": "### Model versions against the experts\n"
            + _table(
                ["dataset", "version", "control", "samples", "mAP", "precision", "recall", "corrected", "rejected"],
                [
                    [
                        a["dataset"],
                        a["model_version"],
                        a["control"],
                        a["samples"],
                        a["metrics"].get("mAP"),
                        a["metrics"].get("precision"),
                        a["metrics"].get("recall"),
                        a["correction_rate"],
                        a["rejection_rate"],
                    ]
                    for a in agreement
                ],
            )
        }
        versions = [f"{a['model_version']} ({a['control']}, {a['dataset']})" for a in agreement]
        figures["agreement_by_version"] = {
            "data": [
                {"type": "bar", "name": key, "x": versions, "y": [a["metrics"].get(key) for a in agreement]}
                for key in ("mAP", "precision", "recall")
            ]
            + [
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": f"{key} rate",
                    "x": versions,
                    "y": [a[f"{key}_rate"] for a in agreement],
                }
                for key in ("correction", "rejection")
            ],
            "layout": {
                "title": {"text": "Agreement with experts per model version"},
                "barmode": "group",
                "height": 380,
            },
        }
        for i, a in enumerate(agreement):
            if a["confusion_matrix"]:
                figures[f"confusion_{i}"] = {
                    "data": [
                        {
                            "type": "heatmap",
                            "z": a["confusion_matrix"],
                            "x": a["classes"],
                            "y": a["classes"],
                            "colorscale": "Viridis",
                        }
                    ],
                    "layout": {
                        "title": {"text": f"Confusion: {a['model_version']} vs experts ({a['control']})"},
                        "xaxis": {"title": {"text": "model"}},
                        "yaxis": {"title": {"text": "expert"}},
                        "height": 360,
                    },
                }
    changes = stats.get("version_changes") or []
    if changes:
        figures["version_changes"] = {
            "markdown": "### From version to version\n"
            + _table(
                ["dataset", "control", "from", "to", "Δ mAP", "Δ precision", "Δ recall", "Δ corrected", "Δ rejected"],
                [
                    [
                        c["dataset"],
                        c["control"],
                        c["from"],
                        c["to"],
                        c["delta"]["mAP"],
                        c["delta"]["precision"],
                        c["delta"]["recall"],
                        c["delta"]["correction_rate"],
                        c["delta"]["rejection_rate"],
                    ]
                    for c in changes
                ],
            )
        }
    catalog = stats.get("catalog") or []
    if catalog:
        figures["catalog"] = {
            "markdown": "### Catalog\n"
            + _table(
                ["model", "version", "task", "stage", "metrics"],
                [
                    [
                        c["model"],
                        c["version"],
                        c["task"],
                        c["stage"],
                        ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(c["metrics"].items())),
                    ]
                    for c in catalog
                ],
            )
        }
    return figures
