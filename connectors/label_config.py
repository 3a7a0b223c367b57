"""Labelling configs for expert review of PlantAI predictions (Label Studio Community).

Community edition has no review workflow, so review lives in the config itself: each region
gets a verdict and a comment, each task a review state and a comment.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

from herbarium.taxonomy import NONVEGETAL, ORGANS, TRAITS, UnknownLabelError

IMAGE_NAME = "image"
IMAGE_KEY = "image"
VERDICT_CONTROL = "verdict"
VERDICTS = ("correct", "wrong label", "wrong shape", "not a plant part")
REGION_COMMENT_CONTROL = "region_comment"
REVIEW_CONTROL = "review"
REVIEW_STATES = ("validated", "needs work")
COMMENT_CONTROL = "comment"
REVIEW_TASKS = ("detect-nonvegetal", "detect-organs", "segment-plant", *TRAITS)

# Colours that read on cream paper and green plants.
_COLOURS = {
    "barcode": "#1f77b4", "label": "#ff7f0e", "envelope": "#8c564b", "colour_chart": "#e377c2",
    "ruler": "#7f7f7f", "stamp": "#9467bd", "leaf": "#2ca02c", "flower": "#d62728", "fruit": "#ff9896",
    "seed": "#bcbd22", "stem": "#17becf", "root": "#c49c94", "plant": "#98df8a",
}  # fmt: skip


def _tag(tag: str, inner: str = "", **attributes: str) -> str:
    attrs = "".join(f" {key}={quoteattr(value)}" for key, value in attributes.items())
    return f"<{tag}{attrs}>{inner}</{tag}>" if inner else f"<{tag}{attrs}/>"


def _labels(values: Sequence[str]) -> str:
    return "".join(_tag("Label", value=v, background=_COLOURS.get(v, "#aec7e8")) for v in values)


def _choices(values: Sequence[str]) -> str:
    return "".join(_tag("Choice", value=v) for v in values)


def review_config(tasks: Sequence[str] = REVIEW_TASKS) -> str:
    """A config that shows the given model tasks' predictions and collects expert verdicts.

    ``tasks``: ``detect-nonvegetal``, ``detect-organs``, ``segment-plant`` and trait names.
    """
    if not tasks:
        raise ValueError("tasks: name at least one of " + ", ".join(REVIEW_TASKS))
    on_image = {"toName": IMAGE_NAME}
    parts = [_tag("Image", name=IMAGE_NAME, value=f"${IMAGE_KEY}", zoom="true", zoomControl="true")]
    for task in tasks:
        if task == "detect-nonvegetal":
            parts.append(_tag("RectangleLabels", _labels(NONVEGETAL.classes), name="nonvegetal", **on_image))
        elif task == "detect-organs":
            parts.append(_tag("RectangleLabels", _labels(ORGANS.classes), name="organs", **on_image))
        elif task == "segment-plant":
            parts.append(_tag("BrushLabels", _labels(["plant"]), name="plant_mask", **on_image))
            parts.append(_tag("PolygonLabels", _labels(["plant"]), name="plant_outline", **on_image))
        elif task in TRAITS:
            parts.append(_tag("Header", value=TRAITS[task].description))
            parts.append(_tag("Choices", _choices(TRAITS[task].classes), name=task, choice="single", **on_image))
        else:
            raise UnknownLabelError(f"task {task!r}: expected one of {', '.join(REVIEW_TASKS)}")
    region_review = "".join(
        [
            _tag("Header", value="Verdict on the selected region"),
            _tag("Choices", _choices(VERDICTS), name=VERDICT_CONTROL, perRegion="true", choice="single", **on_image),
            _tag("TextArea", name=REGION_COMMENT_CONTROL, perRegion="true", placeholder="Comment", **on_image),
        ]
    )
    parts += [
        _tag("View", region_review, visibleWhen="region-selected"),
        _tag("Header", value="Review of the whole sheet"),
        _tag("Choices", _choices(REVIEW_STATES), name=REVIEW_CONTROL, choice="single", **on_image),
        _tag("TextArea", name=COMMENT_CONTROL, placeholder="Comment on this sheet", **on_image),
    ]
    return _tag("View", "".join(parts))
