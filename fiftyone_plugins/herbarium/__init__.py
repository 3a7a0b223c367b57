"""``@plantai/herbarium``: PlantAI in the FiftyOne App, a thin face over :mod:`connectors` and :mod:`catalog`.

Each operator parses its inputs, calls the package function the CLI calls, reports its result
and, in the App, reloads or sets the view. The long ones (sync, send for review, annotate,
export) may be delegated (``fiftyone delegated launch``) and report progress.

Label Studio's URL and key are the plugin's secrets ``LABEL_STUDIO_URL`` and
``LABEL_STUDIO_API_KEY`` (FiftyOne resolves them from the environment); its document root is the
``document_root`` parameter, by default ``LOCAL_FILES_DOCUMENT_ROOT``. The key goes to the configured
``LABEL_STUDIO_URL`` and nowhere else: an operator given another ``label_studio_url`` refuses
(:class:`LabelStudioURLRefusedError`) and sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_plugins.herbarium.figures import dashboard_figures
from fiftyone_plugins.herbarium.retrain import RetrainModel

LONG_RUNNING = {
    "allow_immediate_execution": True,
    "allow_delegated_execution": True,
    "default_choice_to_delegated": False,
}


# ---------------------------------------------------------------------------------------------
# Shared plumbing


def _secret(ctx: Any, key: str) -> str | None:
    from herbarium.settings import setting

    value: Any = None
    try:
        value = ctx.secret(key)
    except Exception:  # no secrets backend (a context built by hand): the environment speaks
        value = None
    return str(value) if value else setting(key)


class LabelStudioURLRefusedError(ValueError):
    """An operator was given a ``label_studio_url`` other than the configured ``LABEL_STUDIO_URL``."""


def label_studio_url(ctx: Any) -> str | None:
    """The configured ``LABEL_STUDIO_URL`` (the plugin's secret, else the setting): the one place the plugin
    sends Label Studio's key.

    A ``label_studio_url`` parameter (kept for callers that pass it) must name that same server;
    any other raises :class:`LabelStudioURLRefusedError` before anything is sent: App users choose
    parameters, and the key is not theirs to send elsewhere.
    """
    from connectors.labelstudio_client import same_label_studio

    configured = _secret(ctx, "LABEL_STUDIO_URL")
    given = (ctx.params or {}).get("label_studio_url")
    if given and not (configured and same_label_studio(str(given), configured)):
        raise LabelStudioURLRefusedError(
            f"label_studio_url {str(given)!r} refused: the Label Studio API key is only sent to the configured "
            "LABEL_STUDIO_URL; leave label_studio_url empty (or set LABEL_STUDIO_URL where the plugin runs)"
        )
    return configured


def label_studio_client(ctx: Any) -> Any:
    """A Label Studio client from the plugin's secrets, for the configured URL only (:func:`label_studio_url`;
    the key is never an operator parameter: delegated runs store their parameters)."""
    from connectors.labelstudio_client import label_studio_client as build_label_studio_client

    return build_label_studio_client(label_studio_url(ctx), _secret(ctx, "LABEL_STUDIO_API_KEY"))


def _document_root(ctx: Any) -> Path:
    from herbarium.settings import document_root

    given = ctx.params.get("document_root")
    root = Path(str(given)) if given else document_root()
    if root is None:
        raise ValueError("document_root: give Label Studio's LOCAL_FILES_DOCUMENT_ROOT")
    return root


def _target(ctx: Any) -> Any:
    """The view the operator acts on: the App's choice of dataset, current view or selection."""
    try:
        return ctx.target_view()
    except Exception:  # an old request without a view target
        return ctx.view


def _progress(ctx: Any, what: str) -> Any:
    def report(done: int, total: int) -> None:
        ctx.set_progress(progress=done / total if total else 1.0, label=f"{what}: {done} of {total}")

    return report


def _reload(ctx: Any) -> None:
    if ctx.executor is not None:
        ctx.trigger("reload_dataset")


def _catalog(ctx: Any) -> Any:
    from catalog.registry import Catalog

    return Catalog.open(url=ctx.params.get("catalog_url") or None)


def _result_view(inputs: Mapping[str, str]) -> Any:
    outputs = types.Object()
    for name, label in inputs.items():
        outputs.str(name, label=label)
    return types.Property(outputs)


def _view_target(ctx: Any, inputs: Any) -> None:
    try:
        inputs.view_target(ctx)
    except Exception:  # older FiftyOne, or no App context
        return


# ---------------------------------------------------------------------------------------------
# Operators


class SyncFromLabelStudio(foo.Operator):  # type: ignore[misc]
    @property
    def config(self) -> Any:
        return foo.OperatorConfig(
            name="sync_from_label_studio",
            label="PlantAI: sync from Label Studio",
            description="Bring a dataset up to date with a Label Studio review project",
            dynamic=False,
            **LONG_RUNNING,
        )

    def resolve_input(self, ctx: Any) -> Any:
        inputs = types.Object()
        inputs.int("project_id", label="Label Studio project id", required=True)
        inputs.str("dataset_name", label="Dataset (default: plantai-ls-<project>)")
        inputs.str("document_root", label="LOCAL_FILES_DOCUMENT_ROOT")
        inputs.bool("full", label="Full sync (reread every task)", default=False)
        return types.Property(inputs)

    def execute(self, ctx: Any) -> dict[str, Any]:
        import fiftyone as fo

        from connectors.search import prepare
        from connectors.sync import sync_project

        report = sync_project(
            label_studio_client(ctx),
            int(ctx.params["project_id"]),
            ctx.params.get("dataset_name") or None,
            document_root=_document_root(ctx),
            full=bool(ctx.params.get("full", False)),
            progress=_progress(ctx, "tasks"),
        )
        prepared = prepare(fo.load_dataset(report.dataset))
        _reload(ctx)
        return {**report.as_dict(), **prepared}


class SendViewForReview(foo.Operator):  # type: ignore[misc]
    @property
    def config(self) -> Any:
        return foo.OperatorConfig(
            name="send_view_for_review",
            label="PlantAI: send view to Label Studio for expert review",
            dynamic=False,
            **LONG_RUNNING,
        )

    def resolve_input(self, ctx: Any) -> Any:
        inputs = types.Object()
        _view_target(ctx, inputs)
        inputs.int("project_id", label="Label Studio project id", required=True)
        inputs.str("document_root", label="LOCAL_FILES_DOCUMENT_ROOT")
        return types.Property(inputs)

    def execute(self, ctx: Any) -> dict[str, Any]:
        from connectors.view_actions import send_view_for_review

        report = send_view_for_review(
            _target(ctx),
            label_studio_client(ctx),
            int(ctx.params["project_id"]),
            _document_root(ctx),
            progress=_progress(ctx, "specimens"),
        )
        return report.as_dict()


class AnnotateWithModel(foo.Operator):  # type: ignore[misc]
    @property
    def config(self) -> Any:
        return foo.OperatorConfig(
            name="annotate_with_model",
            label="PlantAI: annotate view with a catalog model",
            dynamic=False,
            **LONG_RUNNING,
        )

    def resolve_input(self, ctx: Any) -> Any:
        inputs = types.Object()
        _view_target(ctx, inputs)
        inputs.str("model", label="Catalog model (name = production, or name@version)", required=True)
        inputs.float("confidence", label="Minimum confidence", default=0.25, min=0.0, max=1.0)
        inputs.int("batch_size", label="Images per batch", default=8, min=1)
        return types.Property(inputs)

    def execute(self, ctx: Any) -> dict[str, Any]:
        from connectors.view_actions import annotate_view

        report = annotate_view(
            _target(ctx),
            str(ctx.params["model"]),
            catalog=_catalog(ctx),
            conf=float(ctx.params.get("confidence", 0.25)),
            batch_size=int(ctx.params.get("batch_size", 8)),
            progress=_progress(ctx, "images"),
        )
        _reload(ctx)
        return report.as_dict()


class PromoteModel(foo.Operator):  # type: ignore[misc]
    @property
    def config(self) -> Any:
        return foo.OperatorConfig(name="promote_model", label="PlantAI: promote a model version", dynamic=False)

    def resolve_input(self, ctx: Any) -> Any:
        inputs = types.Object()
        inputs.str("model", label="Model", required=True)
        inputs.str("version", label="Version to put in production", required=True)
        return types.Property(inputs)

    def execute(self, ctx: Any) -> dict[str, Any]:
        with _catalog(ctx) as catalog:
            info = catalog.promote(str(ctx.params["model"]), str(ctx.params["version"]))
        return {"model": info.model, "version": info.version, "stage": info.stage}


class RollbackModel(foo.Operator):  # type: ignore[misc]
    @property
    def config(self) -> Any:
        return foo.OperatorConfig(name="rollback_model", label="PlantAI: roll back a model", dynamic=False)

    def resolve_input(self, ctx: Any) -> Any:
        inputs = types.Object()
        inputs.str("model", label="Model", required=True)
        return types.Property(inputs)

    def execute(self, ctx: Any) -> dict[str, Any]:
        with _catalog(ctx) as catalog:
            info = catalog.rollback(str(ctx.params["model"]))
        return {"model": info.model, "version": info.version, "stage": info.stage}


class ExportView(foo.Operator):  # type: ignore[misc]
    @property
    def config(self) -> Any:
        return foo.OperatorConfig(
            name="export_view", label="PlantAI: export view (YOLO, COCO, Darwin Core Archive)", dynamic=False,
            **LONG_RUNNING,
        )  # fmt: skip

    def resolve_input(self, ctx: Any) -> Any:
        from connectors.view_actions import EXPORT_FORMATS

        inputs = types.Object()
        _view_target(ctx, inputs)
        inputs.enum("format", list(EXPORT_FORMATS), label="Format", required=True, default="dwca")
        inputs.str("out_dir", label="Output folder", required=True)
        inputs.str("labels", label="Label set (YOLO/COCO)", default="nonvegetal")
        return types.Property(inputs)

    def execute(self, ctx: Any) -> dict[str, Any]:
        from connectors.view_actions import export_view

        return export_view(
            _target(ctx),
            str(ctx.params["format"]),
            Path(str(ctx.params["out_dir"])),
            labels=str(ctx.params.get("labels") or "nonvegetal"),
        )


class SearchSpecimens(foo.Operator):  # type: ignore[misc]
    @property
    def config(self) -> Any:
        return foo.OperatorConfig(
            name="search_specimens", label="PlantAI: search specimens (metadata + AI and expert labels)", dynamic=False
        )

    def resolve_input(self, ctx: Any) -> Any:
        inputs = types.Object()
        for name, label in (
            ("taxon", "Taxon (scientificName)"),
            ("family", "Family"),
            ("institution", "Institution code"),
            ("collector", "Collector (recordedBy)"),
            ("country", "Country"),
            ("model_version", "Model version (name@version)"),
            ("review_state", "Review state"),
            ("label", "Label (class name)"),
            ("control", "Control (nonvegetal, organs, phenology, ...)"),
        ):
            inputs.str(name, label=label)
        inputs.int("year", label="Year")
        inputs.enum("label_source", ["any", "ai", "expert"], default="any", label="Label from")
        inputs.float("min_confidence", label="Minimum AI confidence", min=0.0, max=1.0)
        return types.Property(inputs)

    def execute(self, ctx: Any) -> dict[str, Any]:
        from connectors.search import Query, search

        view = search(ctx.dataset, Query.from_params(ctx.params))
        if ctx.executor is not None:
            ctx.ops.set_view(view=view)
        return {"count": view.count(), "view": view._serialize()}


class PrepareSearch(foo.Operator):  # type: ignore[misc]
    @property
    def config(self) -> Any:
        return foo.OperatorConfig(
            name="prepare_search", label="PlantAI: refresh search indexes and saved views", dynamic=False
        )

    def execute(self, ctx: Any) -> dict[str, Any]:
        from connectors.search import prepare

        result = prepare(ctx.dataset)
        _reload(ctx)
        return result


# ---------------------------------------------------------------------------------------------
# Dashboard panel


class HerbariumDashboard(foo.Panel):  # type: ignore[misc]
    """Specimens, labels and models across every specimen dataset, with each model version's agreement."""

    @property
    def config(self) -> Any:
        return foo.PanelConfig(
            name="herbarium_dashboard",
            label="PlantAI dashboard",
            surfaces="grid",
            help_markdown="Specimens and labels across datasets; model versions against the experts.",
        )

    def on_load(self, ctx: Any) -> None:
        self._refresh(ctx)

    def on_refresh(self, ctx: Any) -> None:
        self._refresh(ctx)

    def _refresh(self, ctx: Any) -> None:
        from connectors.search import dashboard

        catalog = None
        try:
            catalog = _catalog(ctx)
        except Exception:  # no catalog configured: the dashboard shows the datasets alone
            catalog = None
        stats = dashboard(catalog=catalog)
        ctx.panel.set_state("stats", stats)

    def render(self, ctx: Any) -> Any:
        panel = types.Object()
        stats = ctx.panel.get_state("stats") or {}
        panel.btn("refresh", label="Refresh", on_click=self.on_refresh)
        for name, figure in dashboard_figures(stats).items():
            if figure.get("markdown") is not None:
                panel.md(figure["markdown"], name=name)
            else:
                panel.plot(name, data=figure["data"], layout=figure["layout"], config={"displayModeBar": False})
        return types.Property(panel, view=types.GridView(orientation="vertical", height=100, width=100))


OPERATORS = (
    SyncFromLabelStudio,
    SendViewForReview,
    AnnotateWithModel,
    PromoteModel,
    RollbackModel,
    ExportView,
    SearchSpecimens,
    PrepareSearch,
    RetrainModel,  # training.retrain_queue queues delegated runs of it
    HerbariumDashboard,
)


def register(p: Any) -> None:
    for operator in OPERATORS:
        p.register(operator)
