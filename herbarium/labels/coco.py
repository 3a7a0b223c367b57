"""SpecimenLabels <-> COCO detection/segmentation JSON (a dict; the caller reads/writes the file).

Boxes become ``bbox`` annotations without ``segmentation``; polygons a one-part polygon
``segmentation``; masks an uncompressed RLE ``{"counts": [...], "size": [h, w]}`` in COCO's
column-major order, with ``iscrowd`` 0 (they are instances, not crowd regions). ``bbox`` is
``[x, y, width, height]`` in pixels, ``score`` is written when set, and category ids are the
label set's class index + 1. Specimen-level classifications have no COCO form and are left out;
rotated boxes are an error. Reading accepts polygon segmentations, and uncompressed and
compressed (string, as ``pycocotools`` writes it) RLE whose runs cover the image exactly; a
polygon of several parts becomes several ``PolygonLabel``. Category names go through the label
set, so aliases are accepted. Image and category ids must be unique, as :func:`as_coco` writes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from herbarium.labels.model import (
    BoxLabel,
    Label,
    LabelError,
    LabelState,
    MaskLabel,
    PolygonLabel,
    SpecimenLabels,
    check_mask_size,
    finite_number,
)
from herbarium.taxonomy import LabelSet


def as_coco(images: Sequence[tuple[int, str, SpecimenLabels]], label_set: LabelSet) -> dict[str, Any]:
    """A COCO dict for ``(image_id, file_name, labels)`` triples."""
    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    seen: set[int] = set()
    for image_id, file_name, specimen in images:
        if image_id in seen:
            raise LabelError(f"image_id: {image_id} appears twice")
        seen.add(image_id)
        coco_images.append({"id": image_id, "file_name": file_name, "width": specimen.width, "height": specimen.height})
        for label in specimen.labels:
            if not isinstance(label, (BoxLabel, PolygonLabel, MaskLabel)):
                continue
            annotation: dict[str, Any] = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": label_set.index(label.label) + 1,
                **_geometry(label),
                "iscrowd": 0,
            }
            if label.score is not None:
                annotation["score"] = label.score
            annotations.append(annotation)
    categories = [
        {"id": index + 1, "name": name, "supercategory": label_set.name} for index, name in enumerate(label_set.classes)
    ]
    return {"images": coco_images, "annotations": annotations, "categories": categories}


def from_coco(
    coco: Mapping[str, Any],
    label_set: LabelSet,
    *,
    source: str | None = None,
    state: LabelState = LabelState.PREDICTED,
) -> dict[int, SpecimenLabels]:
    """Labels of every image in a COCO dict, by image id (images without annotations included)."""
    if not isinstance(coco, Mapping):
        raise LabelError(
            f"COCO file: expected an object of images, annotations and categories, got {type(coco).__name__}"
        )
    categories: dict[int, str] = {}
    for i, category in enumerate(_list(coco, "categories")):
        category_id = _unique_id(category, categories, f"categories[{i}]")
        categories[category_id] = label_set.resolve(_field(category, "name", str, f"categories[{i}]"))
    sizes: dict[int, tuple[int, int, str | None]] = {}
    for i, image in enumerate(_list(coco, "images")):
        where = f"images[{i}]"
        image_id = _unique_id(image, sizes, where)
        width, height = _side(image, "width", where), _side(image, "height", where)
        file_name = image.get("file_name")
        sizes[image_id] = (width, height, file_name if isinstance(file_name, str) else None)
    labels: dict[int, list[Label]] = {image_id: [] for image_id in sizes}
    for i, annotation in enumerate(_list(coco, "annotations")):
        where = f"annotations[{i}]"
        image_id = _field(annotation, "image_id", int, where)
        if image_id not in sizes:
            raise LabelError(f"{where}.image_id: {image_id} is not in images")
        category_id = _field(annotation, "category_id", int, where)
        if category_id not in categories:
            raise LabelError(f"{where}.category_id: {category_id} is not in categories")
        score = annotation.get("score")
        if score is not None:
            score = finite_number(score, f"{where}.score")
        common: dict[str, Any] = {"label": categories[category_id], "score": score, "source": source, "state": state}
        width, height, _ = sizes[image_id]
        labels[image_id].extend(_read_annotation(annotation, width, height, common, where))
    return {
        image_id: SpecimenLabels(width=width, height=height, labels=labels[image_id], image=file_name)
        for image_id, (width, height, file_name) in sizes.items()
    }


def _geometry(label: BoxLabel | PolygonLabel | MaskLabel) -> dict[str, Any]:
    if isinstance(label, BoxLabel):
        if label.rotation % 360 != 0:
            raise LabelError(
                f"rotation: box {label.label!r} is rotated by {label.rotation} degrees; COCO boxes are axis-aligned"
            )
        return {"bbox": [label.x, label.y, label.width, label.height], "area": label.width * label.height}
    if isinstance(label, PolygonLabel):
        xs = np.array([p[0] for p in label.points])
        ys = np.array([p[1] for p in label.points])
        # Shoelace formula.
        area = 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))))
        return {
            "segmentation": [[c for point in label.points for c in point]],
            "bbox": list(label.bounding_box()),
            "area": area,
        }
    box = label.bounding_box()
    return {
        "segmentation": {"counts": _rle_counts(label.mask), "size": list(label.mask.shape)},
        "bbox": list(box) if box is not None else [0, 0, 0, 0],
        "area": int(label.mask.sum()),
    }


def _rle_counts(mask: npt.NDArray[np.bool_]) -> list[int]:
    """Uncompressed COCO RLE: run lengths over the column-major pixels, starting with a 0 run."""
    flat = mask.ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return [0, *runs] if flat.size and flat[0] else runs


def _decode_rle(segmentation: Mapping[str, Any], width: int, height: int, where: str) -> npt.NDArray[np.bool_]:
    size = segmentation.get("size")
    if not isinstance(size, list) or size != [height, width]:
        raise LabelError(f"{where}.segmentation.size: expected [height, width] = {[height, width]}, got {size!r}")
    check_mask_size(width, height, f"{where}.segmentation.size")
    counts = segmentation.get("counts")
    if isinstance(counts, (str, bytes)):
        counts = _compressed_counts(counts, f"{where}.segmentation.counts")
    if (
        not isinstance(counts, list)
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
        or sum(counts) != width * height
    ):
        raise LabelError(
            f"{where}.segmentation.counts: expected non-negative run lengths adding up to "
            f"height x width = {height * width}"
        )
    flat = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    mask: npt.NDArray[np.bool_] = flat.reshape((height, width), order="F")
    return mask


def _compressed_counts(text: str | bytes, field: str) -> list[int]:
    """The run lengths of compressed COCO RLE (``pycocotools``' ``rleFrString``): each run, less the one two
    before it from the fourth on, in 5-bit groups least significant first, ``0x20`` = more, ``0x10`` = the
    sign of the last group, each group + 48 as one character. A character out of range, a run cut off by
    the end or one over 64 bits is an error (the caller checks the runs' total, so that the mask it builds
    covers the image exactly)."""
    data = text.encode() if isinstance(text, str) else text
    counts: list[int] = []
    run = bits = 0
    for byte in data:
        group = byte - 48
        if not 0 <= group < 64:
            raise LabelError(f"{field}: {chr(byte)!r} is not a compressed RLE character")
        if bits >= 64:
            raise LabelError(f"{field}: a run length of over 64 bits")
        run |= (group & 0x1F) << bits
        bits += 5
        if group & 0x20:
            continue
        if group & 0x10:
            run -= 1 << bits  # negative
        counts.append(run + counts[-2] if len(counts) > 2 else run)
        run = bits = 0
    if bits:
        raise LabelError(f"{field}: the compressed RLE ends inside a run length")
    return counts


def _read_annotation(
    annotation: Mapping[str, Any], width: int, height: int, common: dict[str, Any], where: str
) -> list[Label]:
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, Mapping):
        return [MaskLabel(mask=_decode_rle(segmentation, width, height, where), **common)]
    if isinstance(segmentation, list) and segmentation:
        polygons: list[Label] = []
        for j, part in enumerate(segmentation):
            if not isinstance(part, list) or len(part) < 6 or len(part) % 2:
                raise LabelError(f"{where}.segmentation: expected polygons [x1, y1, x2, y2, ...] of 3+ points")
            xy = [finite_number(c, f"{where}.segmentation[{j}][{k}]") for k, c in enumerate(part)]
            polygons.append(PolygonLabel(points=tuple(zip(xy[::2], xy[1::2], strict=True)), **common))
        return polygons
    if segmentation not in (None, []):
        raise LabelError(f"{where}.segmentation: expected a polygon list or an RLE object, got {segmentation!r}")
    bbox = annotation.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise LabelError(f"{where}.bbox: expected [x, y, width, height], got {bbox!r}")
    x, y, w, h = (finite_number(v, f"{where}.bbox[{k}]") for k, v in enumerate(bbox))
    return [BoxLabel(x=x, y=y, width=w, height=h, **common)]


def _list(coco: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = coco.get(key, [] if key == "annotations" else None)
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise LabelError(f"{key}: expected a list of objects")
    return value


def _field(obj: Mapping[str, Any], key: str, kind: type[Any], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LabelError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _unique_id(obj: Mapping[str, Any], seen: Mapping[int, Any], where: str) -> int:
    object_id: int = _field(obj, "id", int, where)
    if object_id in seen:
        raise LabelError(f"{where}.id: {object_id} appears twice")
    return object_id


def _side(image: Mapping[str, Any], key: str, where: str) -> int:
    side: int = _field(image, key, int, where)
    if side <= 0:
        raise LabelError(f"{where}.{key}: expected a positive number of pixels, got {side}")
    return side
