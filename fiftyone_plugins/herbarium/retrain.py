"""``@plantai/herbarium/retrain_model``: retrain catalog models from Label Studio expert corrections.

A thin face over :func:`training.retrain_queue.run_job`: parses the inputs and reports. Delegated
by default (training takes minutes): the App queues it, ``fiftyone delegated launch`` runs it.
"""

from __future__ import annotations

from typing import Any

import fiftyone.operators as foo
import fiftyone.operators.types as types


def _dataset_project(ctx: Any) -> int | None:
    """The Label Studio project a synced dataset mirrors (``dataset.info["plantai_sync"]``)."""
    dataset = getattr(ctx, "dataset", None)
    if dataset is None:
        return None
    try:
        project = (dataset.info or {}).get("plantai_sync", {}).get("project_id")
    except Exception:
        return None
    return int(project) if isinstance(project, int) else None


class RetrainModel(foo.Operator):  # type: ignore[misc]
    @property
    def config(self) -> Any:
        return foo.OperatorConfig(
            name="retrain_model",
            label="PlantAI: retrain from expert corrections",
            description="Fine-tune a catalog model on validated corrections; promote it only if it is not worse",
            allow_delegated_execution=True,
            allow_immediate_execution=False,
            default_choice_to_delegated=True,
            dynamic=False,
        )

    def resolve_input(self, ctx: Any) -> Any:
        inputs = types.Object()
        inputs.str("model", label="Model", description="Catalog model name (empty: the project's models)")
        inputs.int("project", label="Label Studio project", default=_dataset_project(ctx))
        # What queued jobs carry (plantai retrain, the webhook): several projects and models.
        inputs.list("projects", types.Number(int=True), label="Projects", view=types.HiddenView())
        inputs.list("models", types.String(), label="Models", view=types.HiddenView())
        inputs.int("epochs", label="Epochs", default=10)
        inputs.float("margin", label="Promotion margin", default=0.0)
        return types.Property(inputs, view=types.View(label="Retrain a PlantAI model"))

    def execute(self, ctx: Any) -> dict[str, Any]:
        from fiftyone_plugins.herbarium import label_studio_url
        from training.retrain_queue import run_job

        label_studio_url(ctx)  # run_job sends the key to a given label_studio_url: only the configured one passes
        params = dict(ctx.params or {})
        if params.get("project") is not None and not params.get("projects"):
            params["projects"] = [int(params["project"])]
        if params.get("model") and not params.get("models"):
            params["models"] = [str(params["model"])]

        def progress(message: str, fraction: float) -> None:
            ctx.set_progress(progress=fraction, label=message)

        return run_job(params, progress=progress)

    def resolve_output(self, ctx: Any) -> Any:
        outputs = types.Object()
        outputs.list("jobs", types.Object(), label="Retraining results")
        return types.Property(outputs)
