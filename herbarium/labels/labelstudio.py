"""Label Studio result JSON <-> :class:`SpecimenLabels`.

The only module in PlantAI that computes Label Studio percent coordinates or Label Studio brush
RLE (the RLE goes through ``label_studio_sdk.converter.brush``, never our own encoder).

Results are written as Label Studio 1.23 serialises them: region results carry
``original_width``, ``original_height`` and ``image_rotation``; per-region Choices and TextArea
results repeat their region's geometry in ``value`` (as the editor does); task-level results carry
neither. ``as_labelstudio(from_labelstudio(results))`` gives back the same list when the input is
in that shape and in canonical order (each region's results together: labels, then per-region
Choices in order, then its TextArea; task-level Choices where they stood; the task-level TextArea
last), with these documented exceptions:

* coordinates are floats converted percent -> pixels -> percent, so they may differ in the last
  bit (no float pixel value maps back onto every float percentage: exactness is impossible);
* the task-level TextArea has no label to keep its ``id`` and ``origin`` on (``SpecimenLabels``
  only has ``comment``): it is written without either (Label Studio gives an id-less result one
  when it loads it). No id means no region's id can claim it: on reading, a result is per-region
  only when its id is a region's;
* brush RLE that the editor produced after an expert painted is decoded to the same mask, but is
  re-encoded by the SDK encoder, so its bytes may differ (untouched RLE comes back identical);
* several texts in one TextArea result are joined with newlines into one text;
* polygons are always written with ``"closed": true`` (an open one is an error on reading);
* ``meta``, ``readonly``, ``hidden``, ``parentID``, ``item_index`` (0 or absent; multi-image
  tasks are an error) and the ``score`` of per-region Choices/TextArea results are not kept.

Classifications that share a control (and region id) are written as one Choices result, which has
one ``score`` and one ``origin``: when theirs differ, writing them is an error rather than a loss.

Label Studio bookkeeping the model has no field for is kept in ``attributes`` under reserved
``labelstudio:`` keys, so that it survives other round trips (e.g. through FiftyOne):
``labelstudio:origin`` (``manual``, ``prediction``, ``prediction-changed``) and
``labelstudio:textarea`` (the control name of a region's TextArea).

``image_rotation`` (the viewer's rotation of the image) must be 0: with a rotated view the
coordinates are not in the oriented image frame the model uses, so anything else is an error.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from herbarium.labels.labelstudio_tags import KNOWN_TYPES, REGION_TAGS
from herbarium.labels.model import (
    BoxLabel,
    ClassificationLabel,
    Label,
    LabelError,
    LabelState,
    MaskLabel,
    PolygonLabel,
    SpecimenLabels,
    check_mask_size,
    finite_number,
)

ORIGIN_ATTRIBUTE = "labelstudio:origin"
TEXTAREA_ATTRIBUTE = "labelstudio:textarea"
RESERVED_ATTRIBUTES = frozenset({ORIGIN_ATTRIBUTE, TEXTAREA_ATTRIBUTE})

# Label kind -> control (from_name) used when a label carries no ``control``.
DEFAULT_CONTROLS: Mapping[str, str] = {
    "box": "label",
    "polygon": "label",
    "mask": "label",
    "region_comment": "comment",
    "comment": "comment",  # the task-level TextArea
}

# Result type -> the label class its regions become (the tag table in labelstudio_tags is the source).
_REGION_TYPES = {tag.result_type: tag.label_class for tag in REGION_TAGS}
# Keys of a region's value that carry its shape (connectors.sync's fast path reads the same ones).
GEOMETRY_KEYS = frozenset({"x", "y", "width", "height", "rotation", "points", "closed", "rle", "format"})


@dataclass
class _Region:
    """A region result, and the per-region results that refer to it."""

    item: Mapping[str, Any]
    index: int
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    comment: str | None = None


def from_labelstudio(
    results: Sequence[Mapping[str, Any]],
    *,
    source: str | None = None,
    state: LabelState = LabelState.PREDICTED,
    score: float | None = None,
    width: int | None = None,
    height: int | None = None,
) -> SpecimenLabels:
    """Read one annotation's (or prediction's) ``result`` list.

    ``score`` is used for results that carry none (a prediction's overall score); ``width`` and
    ``height`` size the image when no result carries ``original_width``/``original_height``.
    """
    if not isinstance(results, Sequence) or isinstance(results, (str, bytes)):
        raise LabelError(f"results: expected a list of result objects, got {type(results).__name__}")
    items = [_check_item(item, i) for i, item in enumerate(results)]
    to_names = sorted({item["to_name"] for item in items if "to_name" in item})
    if len(to_names) > 1:
        raise LabelError(f"to_name: results refer to several object tags ({', '.join(to_names)}); one image per task")
    image_width, image_height = _image_size(items, width, height)

    # Regions by id, for the per-region results that refer to them (one without an id has no entry:
    # nothing can refer to it), and the areas in order: regions, and task-level Choices by index.
    regions: dict[str, _Region] = {}
    order: list[_Region | int] = []
    for i, item in enumerate(items):
        if item["type"] not in _REGION_TYPES:
            continue
        area = _Region(item=item, index=i)
        region_id = item.get("id")
        if region_id is not None:
            if region_id in regions:
                raise LabelError(f"results[{i}].id: region id {region_id!r} is used by two region results")
            regions[region_id] = area
        order.append(area)

    comment: str | None = None
    comment_from: str | None = None
    for i, item in enumerate(items):
        kind = item["type"]
        if kind in _REGION_TYPES:
            continue
        from_name = item["from_name"]
        region_key = item.get("id")
        region = regions.get(region_key) if region_key is not None else None
        if region is None and GEOMETRY_KEYS & item["value"].keys():
            raise LabelError(f"results[{i}].id: per-region {kind} result {item.get('id')!r} refers to no region result")
        if kind == "choices":
            choices = _strings(item["value"], "choices", i)
            if region is None:
                order.insert(_task_position(order, i), i)
            elif from_name in region.attributes or from_name in RESERVED_ATTRIBUTES:
                raise LabelError(f"results[{i}].from_name: region {item['id']!r} has two {from_name!r} results")
            else:
                region.attributes[from_name] = choices
        else:  # textarea (types were checked up front)
            text = "\n".join(_texts(item["value"], i))
            if region is None:
                if comment_from is not None:
                    raise LabelError(
                        f"results[{i}].from_name: two task-level TextArea results ({comment_from!r}, "
                        f"{from_name!r}); a specimen holds one comment"
                    )
                comment, comment_from = text, from_name
            elif region.comment is not None:
                raise LabelError(f"results[{i}].from_name: region {item['id']!r} has two TextArea results")
            else:
                region.comment = text
                region.attributes[TEXTAREA_ATTRIBUTE] = (from_name,)

    common: dict[str, Any] = {"source": source, "state": state}
    labels: list[Label] = []
    for entry in order:
        if isinstance(entry, _Region):
            labels.append(_region_label(entry, image_width, image_height, common, score))
        else:
            item = items[entry]
            for choice in _strings(item["value"], "choices", entry):
                labels.append(
                    ClassificationLabel(
                        label=choice,
                        score=_score(item, entry, score),
                        region_id=item.get("id"),
                        control=item["from_name"],
                        attributes=_origin(item),
                        **common,
                    )
                )
    return SpecimenLabels(width=image_width, height=image_height, labels=labels, comment=comment)


def task_image_size(task: Mapping[str, Any]) -> tuple[int, int] | None:
    """The image size a task's first region gives (``original_width``, ``original_height``), if any does."""
    for record in (*(task.get("predictions") or ()), *(task.get("annotations") or ())):
        if not isinstance(record, Mapping):
            continue
        for item in record.get("result") or ():
            width, height = item.get("original_width"), item.get("original_height")
            if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
                return width, height
    return None


def as_labelstudio(
    specimen: SpecimenLabels,
    *,
    to_name: str = "image",
    default_controls: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Write the specimen as a Label Studio ``result`` list.

    ``default_controls`` maps a label kind (``box``, ``polygon``, ``mask``, ``classification``,
    ``region_comment``, ``comment``) to the control name used when a label has no ``control``
    (and, for the two comment kinds, when no TextArea control name was kept).
    """
    controls = {**DEFAULT_CONTROLS, **(default_controls or {})}
    width, height = specimen.width, specimen.height
    used_ids = {label.region_id for label in specimen.labels if label.region_id is not None}
    region_ids = [
        label.region_id
        for label in specimen.labels
        if not isinstance(label, ClassificationLabel) and label.region_id is not None
    ]
    if len(set(region_ids)) != len(region_ids):
        raise LabelError("region_id: two region labels share an id; Label Studio would merge them")
    for classification in specimen.classifications:
        if classification.region_id in region_ids:
            raise LabelError(f"region_id: classification {classification.label!r} reuses a region's id")
    fresh_ids = (f"region{n}" for n in range(len(specimen.labels) + len(used_ids) + 1))

    def new_id() -> str:
        return next(candidate for candidate in fresh_ids if candidate not in used_ids)

    out: list[dict[str, Any]] = []
    # One Choices result per (region id, control): the result and the label that opened it.
    groups: dict[tuple[str | None, str], tuple[dict[str, Any], ClassificationLabel]] = {}
    for label in specimen.labels:
        if isinstance(label, ClassificationLabel):
            control = label.control or controls.get("classification")
            if control is None:
                raise LabelError(
                    f"control: classification {label.label!r} has no control; pass "
                    "default_controls={'classification': ...}"
                )
            if label.comment is not None or RESERVED_ATTRIBUTES.union(label.attributes) != RESERVED_ATTRIBUTES:
                # Task-level Choices have no per-region controls to hold them.
                raise LabelError(
                    f"attributes/comment: classification {label.label!r} ({control}) carries per-region data, "
                    "which a task-level Choices result cannot hold"
                )
            key = (label.region_id, control)
            if key in groups:
                item, first = groups[key]
                ours, theirs = _common(label), _common(first)
                differ = [name for name in ("score", "origin") if ours.get(name) != theirs.get(name)]
                if differ:
                    raise LabelError(
                        f"{'/'.join(differ)}: classifications {first.label!r} and {label.label!r} of control "
                        f"{control!r} differ ({theirs} and {ours}); their one Choices result has one score and "
                        "one origin"
                    )
                item["value"]["choices"].append(label.label)
                continue
            item = {
                "id": label.region_id if label.region_id is not None else new_id(),
                "type": "choices",
                "from_name": control,
                "to_name": to_name,
                "value": {"choices": [label.label]},
                **_common(label),
            }
            groups[key] = (item, label)
            out.append(item)
            continue

        kind, value = _region_value(label, width, height)
        region_id = label.region_id if label.region_id is not None else new_id()
        dimensions = {"original_width": width, "original_height": height, "image_rotation": 0}
        region_item: dict[str, Any] = {
            "id": region_id,
            "type": f"{kind}labels",
            "from_name": label.control or controls[_KIND_NAMES[kind]],
            "to_name": to_name,
            **dimensions,
            "value": {**value, f"{kind}labels": [label.label]},
            **_common(label),
        }
        out.append(region_item)
        origin = {"origin": label.attributes[ORIGIN_ATTRIBUTE][0]} if ORIGIN_ATTRIBUTE in label.attributes else {}
        for control, choices in label.attributes.items():
            if control in RESERVED_ATTRIBUTES:
                continue
            out.append(
                {
                    "id": region_id,
                    "type": "choices",
                    "from_name": control,
                    "to_name": to_name,
                    **dimensions,
                    "value": {**copy.deepcopy(value), "choices": list(choices)},
                    **origin,
                }
            )
        if label.comment is not None:
            textarea = label.attributes.get(TEXTAREA_ATTRIBUTE, (controls["region_comment"],))[0]
            out.append(
                {
                    "id": region_id,
                    "type": "textarea",
                    "from_name": textarea,
                    "to_name": to_name,
                    **dimensions,
                    "value": {**copy.deepcopy(value), "text": [label.comment]},
                    **origin,
                }
            )

    if specimen.comment is not None:
        out.append(
            {
                "type": "textarea",
                "from_name": controls["comment"],
                "to_name": to_name,
                "value": {"text": [specimen.comment]},
            }
        )
    return out


_KIND_NAMES = {"rectangle": "box", "polygon": "polygon", "brush": "mask"}


def _common(label: Label) -> dict[str, Any]:
    """The ``origin`` and ``score`` of a label's result, where it has them."""
    common: dict[str, Any] = {}
    if ORIGIN_ATTRIBUTE in label.attributes:
        common["origin"] = label.attributes[ORIGIN_ATTRIBUTE][0]
    if label.score is not None:
        common["score"] = label.score
    return common


def _region_value(label: Label, width: int, height: int) -> tuple[str, dict[str, Any]]:
    """(type prefix, geometry ``value`` in Label Studio units) of a region label."""
    if isinstance(label, BoxLabel):
        return "rectangle", {
            "x": _percent(label.x, width),
            "y": _percent(label.y, height),
            "width": _percent(label.width, width),
            "height": _percent(label.height, height),
            "rotation": label.rotation,
        }
    if isinstance(label, PolygonLabel):
        points = [[_percent(x, width), _percent(y, height)] for x, y in label.points]
        return "polygon", {"points": points, "closed": True}
    if isinstance(label, MaskLabel):
        # Every RGBA channel = 255 where set; the editor and the SDK read the alpha channel.
        from label_studio_sdk.converter.brush import mask2rle  # 4 s to import: only when a mask is written

        rle = mask2rle(label.mask.astype(np.uint8) * np.uint8(255))  # type: ignore[no-untyped-call]
        return "brush", {"format": "rle", "rle": [int(b) for b in rle]}
    raise LabelError(f"label: {type(label).__name__} is not a region label")


def _percent(value: float, size: int) -> float:
    return value / size * 100.0


def _pixels(value: float, size: int) -> float:
    return value / 100.0 * size


def _check_item(item: Any, i: int) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise LabelError(f"results[{i}]: expected a result object, got {type(item).__name__}")
    for key in ("type", "from_name", "value"):
        if key not in item:
            raise LabelError(f"results[{i}].{key}: missing")
    for key in ("type", "from_name", "to_name", "id"):
        if key in item and (not isinstance(item[key], str) or not item[key]):
            raise LabelError(f"results[{i}].{key}: expected a non-empty string, got {item[key]!r}")
    if item["type"] not in KNOWN_TYPES:
        raise LabelError(
            f"results[{i}].type: unknown result type {item['type']!r}; expected one of {', '.join(KNOWN_TYPES)}"
        )
    if not isinstance(item["value"], Mapping):
        raise LabelError(f"results[{i}].value: expected an object, got {type(item['value']).__name__}")
    rotation = item.get("image_rotation", 0)
    if finite_number(rotation, f"results[{i}].image_rotation") % 360 != 0:
        raise LabelError(
            f"results[{i}].image_rotation: {rotation!r} is not supported; coordinates of a rotated view are "
            "not in the oriented image frame (rotate the image itself, then annotate)"
        )
    if item.get("item_index") not in (None, 0):
        raise LabelError(f"results[{i}].item_index: multi-image tasks are not supported")
    return item


def _image_size(items: Sequence[Mapping[str, Any]], width: int | None, height: int | None) -> tuple[int, int]:
    sizes: dict[str, int | None] = {"original_width": width, "original_height": height}
    for i, item in enumerate(items):
        region = item["type"] in _REGION_TYPES
        for key in sizes:
            if key not in item:
                if region:
                    raise LabelError(f"results[{i}].{key}: missing; region coordinates are percentages of it")
                continue
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise LabelError(f"results[{i}].{key}: expected a positive integer, got {value!r}")
            finite_number(value, f"results[{i}].{key}")  # percentages of it are computed in floats
            if sizes[key] is not None and sizes[key] != value:
                raise LabelError(f"results[{i}].{key}: {value} differs from {sizes[key]} (one image per task)")
            sizes[key] = value
    image_width, image_height = sizes["original_width"], sizes["original_height"]
    if image_width is None or image_height is None:
        raise LabelError("original_width/original_height: no result carries the image size; pass width= and height=")
    return image_width, image_height


def _region_label(
    region: _Region, width: int, height: int, common: Mapping[str, Any], default_score: float | None
) -> Label:
    item, i = region.item, region.index
    kind = item["type"]
    value = item["value"]
    names = _strings(value, kind, i)
    if len(names) != 1:
        raise LabelError(f"results[{i}].value.{kind}: expected exactly one label, got {list(names)!r}")
    attributes = {**_origin(item), **region.attributes}
    extra: dict[str, Any] = {
        "label": names[0],
        "score": _score(item, i, default_score),
        "region_id": item.get("id"),
        "control": item["from_name"],
        "comment": region.comment,
        "attributes": attributes,
        **common,
    }
    if kind == "rectanglelabels":
        x, y, w, h = (_number(value, key, i) for key in ("x", "y", "width", "height"))
        rotation = _number(value, "rotation", i) if "rotation" in value else 0.0
        return BoxLabel(
            x=_pixels(x, width),
            y=_pixels(y, height),
            width=_pixels(w, width),
            height=_pixels(h, height),
            rotation=rotation,
            **extra,
        )
    if kind == "polygonlabels":
        if value.get("closed", True) is not True:
            raise LabelError(f"results[{i}].value.closed: an open polyline is not a polygon")
        points = value.get("points")
        if not isinstance(points, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in points):
            raise LabelError(f"results[{i}].value.points: expected a list of [x, y] percentages")
        percentages = [[finite_number(c, f"results[{i}].value.points[{j}]") for c in p] for j, p in enumerate(points)]
        return PolygonLabel(points=tuple((_pixels(px, width), _pixels(py, height)) for px, py in percentages), **extra)
    return MaskLabel(mask=_decode_brush(value, width, height, i), **extra)


def _decode_brush(value: Mapping[str, Any], width: int, height: int, i: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    if value.get("format") != "rle":
        raise LabelError(f"results[{i}].value.format: expected 'rle', got {value.get('format')!r}")
    rle = value.get("rle")
    if not isinstance(rle, list) or not all(isinstance(b, int) and 0 <= b <= 255 for b in rle) or len(rle) < 4:
        raise LabelError(f"results[{i}].value.rle: expected a list of bytes (0-255)")
    check_mask_size(width, height, f"results[{i}].value.rle")
    expected = width * height * 4
    # The first 32 bits give the decoded length; checking it first avoids allocating a bogus size.
    declared = int.from_bytes(bytes(rle[:4]), "big")
    if declared != expected:
        raise LabelError(
            f"results[{i}].value.rle: decodes to {declared} values, expected original_width x "
            f"original_height x 4 = {width} x {height} x 4 = {expected}"
        )
    try:
        from label_studio_sdk.converter.brush import decode_rle  # 4 s to import: only when a mask is read

        rgba = decode_rle(rle)
    except (ValueError, IndexError) as error:
        raise LabelError(f"results[{i}].value.rle: not valid Label Studio RLE ({error})") from None
    if rgba.size != expected:
        raise LabelError(f"results[{i}].value.rle: decodes to {rgba.size} values, expected {expected}")
    mask: np.ndarray[Any, np.dtype[np.bool_]] = rgba.reshape(height, width, 4)[:, :, 3] > 0
    return mask


def _task_position(order: list[_Region | int], i: int) -> int:
    """Where task-level result ``i`` goes among the areas: before the first region listed after it."""
    for position, entry in enumerate(order):
        index = entry.index if isinstance(entry, _Region) else entry
        if index > i:
            return position
    return len(order)


def _origin(item: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    origin = item.get("origin")
    if origin is None:
        return {}
    if not isinstance(origin, str):
        raise LabelError(f"origin: expected a string, got {origin!r}")
    return {ORIGIN_ATTRIBUTE: (origin,)}


def _score(item: Mapping[str, Any], i: int, default: float | None) -> float | None:
    score = item.get("score")
    if score is None:
        return default
    return finite_number(score, f"results[{i}].score")


def _strings(value: Mapping[str, Any], key: str, i: int) -> tuple[str, ...]:
    if key not in value:
        raise LabelError(f"results[{i}].value.{key}: missing")
    strings = value[key]
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        raise LabelError(f"results[{i}].value.{key}: expected a list of strings, got {strings!r}")
    return tuple(strings)


def _texts(value: Mapping[str, Any], i: int) -> list[str]:
    if "text" not in value:
        raise LabelError(f"results[{i}].value.text: missing")
    text = value["text"]
    if isinstance(text, str):
        return [text]
    if not isinstance(text, list) or not text or not all(isinstance(t, str) for t in text):
        raise LabelError(f"results[{i}].value.text: expected a non-empty list of strings, got {text!r}")
    return text


def _number(value: Mapping[str, Any], key: str, i: int) -> float:
    if key not in value:
        raise LabelError(f"results[{i}].value.{key}: missing")
    return finite_number(value[key], f"results[{i}].value.{key}")
