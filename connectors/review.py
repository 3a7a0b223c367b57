"""How Label Studio's records become PlantAI labels with provenance and review state.

One rule set, used by the sync, the training export and the review tools:

* a prediction's regions are ``predicted``, their source the prediction's ``model_version``
  (catalog ``name@version``, or several joined by ``+`` when one backend filled several tags;
  :func:`model_sources` splits them);
* an annotation's regions are expert work, ``source = expert:<user id>``; a region's verdict
  decides its state: ``correct`` -> validated, ``wrong label``/``wrong shape`` -> corrected,
  ``not a plant part`` -> rejected; without a verdict, a region taken unchanged from a
  prediction is validated and one the expert drew or changed is corrected;
* the task's review choice (``validated``/``needs work``) and comment are the sheet's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from connectors.label_config import COMMENT_CONTROL, REVIEW_CONTROL, VERDICT_CONTROL
from herbarium.labels import ClassificationLabel, Label, LabelState, SpecimenLabels, expert_source
from herbarium.labels.labelstudio import ORIGIN_ATTRIBUTE, from_labelstudio

VERDICT_STATES: Mapping[str, LabelState] = {
    "correct": LabelState.VALIDATED,
    "wrong label": LabelState.CORRECTED,
    "wrong shape": LabelState.CORRECTED,
    "not a plant part": LabelState.REJECTED,
}
ORIGIN_STATES: Mapping[str, LabelState] = {
    "prediction": LabelState.VALIDATED,
    "prediction-changed": LabelState.CORRECTED,
    "manual": LabelState.CORRECTED,
}


@dataclass(frozen=True)
class ReviewedSheet:
    """An expert's annotation of one sheet: labels with states, and the sheet-level review."""

    labels: SpecimenLabels
    review: str | None  # "validated", "needs work", or None when not given
    annotation_id: int | None
    updated_at: str | None


def model_sources(model_version: str) -> Sequence[str]:
    """The catalog refs a prediction's ``model_version`` names (``a@1+b@2`` -> ``[a@1, b@2]``)."""
    return [part for part in model_version.split("+") if part]


def prediction_labels(
    prediction: Mapping[str, Any], width: int | None = None, height: int | None = None
) -> SpecimenLabels:
    """A Label Studio prediction as ``predicted`` labels; each label's source is its model's ``name@version``."""
    version = str(prediction.get("model_version") or "")
    score = prediction.get("score")
    specimen = from_labelstudio(
        prediction.get("result") or [],
        source=version or None,
        state=LabelState.PREDICTED,
        score=float(score) if isinstance(score, (int, float)) else None,
        width=width,
        height=height,
    )
    return specimen


def reviewed_sheet(annotation: Mapping[str, Any], width: int | None = None, height: int | None = None) -> ReviewedSheet:
    """An annotation as expert labels with states, verdict choices consumed into the state."""
    user = annotation.get("completed_by")
    user_id = user.get("id") if isinstance(user, Mapping) else user
    source = expert_source(user_id if user_id is not None else "unknown")
    specimen = from_labelstudio(
        annotation.get("result") or [], source=source, state=LabelState.CORRECTED, width=width, height=height
    )
    review: str | None = None
    labels: list[Label] = []
    for label in specimen.labels:
        if isinstance(label, ClassificationLabel) and label.control == REVIEW_CONTROL:
            review = label.label
            continue
        labels.append(replace(label, state=_state_of(label)))
    return ReviewedSheet(
        labels=replace(specimen, labels=labels),
        review=review,
        annotation_id=annotation.get("id") if isinstance(annotation.get("id"), int) else None,
        updated_at=str(annotation.get("updated_at")) if annotation.get("updated_at") else None,
    )


def expert_state(verdict: str | None, origin: str | None, classification: bool) -> LabelState:
    """An expert label's state: its verdict, else how it came to be (LS ``origin``), else what it is."""
    if verdict is not None and verdict in VERDICT_STATES:
        return VERDICT_STATES[verdict]
    if origin is not None and origin in ORIGIN_STATES:
        return ORIGIN_STATES[origin]
    return LabelState.VALIDATED if classification else LabelState.CORRECTED


def _state_of(label: Label) -> LabelState:
    verdict = label.attributes.get(VERDICT_CONTROL, ())
    origin = label.attributes.get(ORIGIN_ATTRIBUTE, ())
    return expert_state(
        verdict[0] if verdict else None, origin[0] if origin else None, isinstance(label, ClassificationLabel)
    )


__all__ = ["COMMENT_CONTROL", "ReviewedSheet", "expert_state", "model_sources", "prediction_labels", "reviewed_sheet"]
