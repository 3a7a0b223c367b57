"""Specimens to Ultralytics training data sets on disk: detection, segmentation, trait classification.

Labels go through the project's converters only (:mod:`herbarium.labels.yolo`). Specimens are
split into train and val by a seeded hash of their id (the image file's stem), so a specimen never
lands in both splits and the split does not depend on the order specimens come in.

Layouts (what Ultralytics' ``data=`` takes)::

    detect / segment:  data.yaml, images/{train,val}/<id>.jpg, labels/{train,val}/<id>.txt
    classify:          train/<class>/<id>.jpg, val/<class>/<id>.jpg (and data.yaml, for people)

Images are symlinked, or copied reduced to ``max_side`` pixels on their long side (training on
big sheets then decodes far fewer pixels; YOLO labels are normalised, so they stay valid).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from PIL import Image

from herbarium.imaging import oriented_size, read_image
from herbarium.labels.model import (
    BoxLabel,
    Label,
    LabelState,
    MaskLabel,
    PolygonLabel,
    SpecimenLabels,
)
from herbarium.labels.yolo import as_yolo_detect, as_yolo_segment
from herbarium.synth import load_manifest
from herbarium.taxonomy import NONVEGETAL, ORGANS, PLANT, TRAITS, LabelSet, UnknownLabelError

Kind: TypeAlias = Literal["detect", "segment", "classify"]
Specimen: TypeAlias = tuple[str | Path, SpecimenLabels]
KINDS: tuple[Kind, ...] = ("detect", "segment", "classify")
SPLITS = ("train", "val")
DATA_YAML = "data.yaml"
SNAPSHOT_FORMAT = "plantai-training-data/1"
_JPEG_QUALITY = 92
_EXIF_ORIENTATION_TAG = 0x0112
# Box label sets whose names, used as a box's control, say the box belongs to that set and no other.
_BOX_SETS = frozenset({NONVEGETAL.name, ORGANS.name})


class TrainingDataError(ValueError):
    """Specimens that cannot make the asked-for data set; the message says which and why."""


@dataclass(frozen=True)
class TrainingDataset:
    """A data set written for Ultralytics; ``data`` is what its ``train(data=...)`` takes."""

    kind: Kind
    root: Path
    data: Path  # data.yaml (detect, segment) or the root folder (classify)
    label_set: LabelSet
    splits: Mapping[str, tuple[str, ...]]  # specimen ids per split, sorted
    snapshot: Mapping[str, Any]

    @property
    def names(self) -> tuple[str, ...]:
        return self.label_set.classes


def split_specimens(ids: Sequence[str], val_fraction: float = 0.2, seed: int = 0) -> dict[str, tuple[str, ...]]:
    """Split ids into ``train`` and ``val``: val takes the ``round(n * val_fraction)`` (>= 1) first by seeded hash."""
    if not 0.0 < val_fraction < 1.0:
        raise TrainingDataError(f"val_fraction: expected a number between 0 and 1 (exclusive), got {val_fraction!r}")
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise TrainingDataError(f"specimen ids must be unique (image file stems), repeated: {duplicates[:5]}")
    if len(ids) < 2:
        raise TrainingDataError(f"need at least 2 specimens to make a train and a val split, got {len(ids)}")
    n_val = min(len(ids) - 1, max(1, round(len(ids) * val_fraction)))
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    return {"train": tuple(sorted(ranked[n_val:])), "val": tuple(sorted(ranked[:n_val]))}


def synthetic_specimens(root: str | Path, *, masks: bool = True) -> list[tuple[Path, SpecimenLabels]]:
    """The sheets of a data set written by ``herbarium.synth.write_sheets``, as (image path, labels)."""
    manifest = load_manifest(root)
    return [
        (manifest.root / record.image, record.specimen_labels(manifest.root, masks=masks)) for record in manifest.sheets
    ]


def export_detection(
    specimens: Iterable[Specimen],
    out_dir: str | Path,
    label_set: LabelSet = NONVEGETAL,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_side: int | None = None,
) -> TrainingDataset:
    """A YOLO detect data set of the boxes whose label resolves in ``label_set`` (e.g. NONVEGETAL, ORGANS)."""

    def labels(specimen: SpecimenLabels) -> str:
        return as_yolo_detect(specimen.with_labels(boxes_of(specimen, label_set)), label_set)

    return _export_yolo("detect", specimens, Path(out_dir), label_set, labels, val_fraction, seed, max_side)


def export_segmentation(
    specimens: Iterable[Specimen],
    out_dir: str | Path,
    label_set: LabelSet = PLANT,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_side: int | None = None,
) -> TrainingDataset:
    """A YOLO segment data set of the masks and polygons whose label resolves in ``label_set`` (the plant)."""

    def labels(specimen: SpecimenLabels) -> str:
        regions = [
            label
            for label in specimen.labels
            if isinstance(label, MaskLabel | PolygonLabel) and usable(label) and _resolves(label_set, label.label)
        ]
        return as_yolo_segment(specimen.with_labels(regions), label_set)

    return _export_yolo("segment", specimens, Path(out_dir), label_set, labels, val_fraction, seed, max_side)


def export_classification(
    specimens: Iterable[Specimen],
    out_dir: str | Path,
    trait: str,
    label_set: LabelSet | None = None,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_side: int | None = 256,
) -> TrainingDataset:
    """A folder-per-class data set of the specimens with a ``trait`` classification (``control == trait``).

    ``label_set`` defaults to the taxonomy's for ``trait``. Specimens without that trait are left out.
    Ultralytics numbers classes by sorted folder name, so the label set's classes must be in that order.
    """
    if label_set is None:
        if trait not in TRAITS:
            raise TrainingDataError(f"trait {trait!r} is not in the taxonomy ({', '.join(TRAITS)}): give its label_set")
        label_set = TRAITS[trait]
    if list(label_set.classes) != sorted(label_set.classes):
        raise TrainingDataError(
            f"label set {label_set.name!r} classes {list(label_set.classes)} are not in sorted order; "
            "Ultralytics classifiers number classes by sorted folder name"
        )
    chosen: list[tuple[Path, SpecimenLabels, str]] = []
    for path, specimen in specimens:
        values = {
            label_set.resolve(label.label)
            for label in specimen.classifications
            if label.control == trait and usable(label)
        }
        if len(values) > 1:
            raise TrainingDataError(f"{path}: conflicting {trait} values {sorted(values)}")
        if values:
            chosen.append((Path(path), specimen, values.pop()))
    root = Path(out_dir)
    splits = split_specimens([path.stem for path, _, _ in chosen], val_fraction, seed)
    split_of = {sid: split for split, ids in splits.items() for sid in ids}
    _clear(root, SPLITS)
    for split in SPLITS:
        for name in label_set.classes:  # empty folders too: Ultralytics counts classes by folder
            (root / split / name).mkdir(parents=True, exist_ok=True)
    entries = []
    for path, specimen, value in chosen:
        split = split_of[path.stem]
        _place_image(path, specimen, root / split / value / f"{path.stem}.jpg", max_side)
        entries.append((split, path.stem, value))
    data_yaml = _write_data_yaml(root, label_set, train=root / "train", val=root / "val")
    snapshot = _snapshot("classify", label_set, entries, seed, val_fraction, max_side, data_yaml)
    return TrainingDataset("classify", root.resolve(), root.resolve(), label_set, splits, snapshot)


def _export_yolo(
    kind: Kind,
    specimens: Iterable[Specimen],
    root: Path,
    label_set: LabelSet,
    labels: Callable[[SpecimenLabels], str],
    val_fraction: float,
    seed: int,
    max_side: int | None,
) -> TrainingDataset:
    items = [(Path(path), specimen) for path, specimen in specimens]
    splits = split_specimens([path.stem for path, _ in items], val_fraction, seed)
    split_of = {sid: split for split, ids in splits.items() for sid in ids}
    _clear(root, ("images", "labels"))
    for split in SPLITS:
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    entries = []
    for path, specimen in items:
        split = split_of[path.stem]
        text = labels(specimen)
        _place_image(path, specimen, root / "images" / split / f"{path.stem}.jpg", max_side)
        (root / "labels" / split / f"{path.stem}.txt").write_text(text, encoding="utf-8")
        entries.append((split, path.stem, text))
    data_yaml = _write_data_yaml(root, label_set, train=root / "images" / "train", val=root / "images" / "val")
    snapshot = _snapshot(kind, label_set, entries, seed, val_fraction, max_side, data_yaml)
    return TrainingDataset(kind, root.resolve(), data_yaml, label_set, splits, snapshot)


def usable(label: Label) -> bool:
    # An expert's "this is wrong" must never become a training target.
    return label.state != LabelState.REJECTED


def _resolves(label_set: LabelSet, name: str) -> bool:
    try:
        label_set.resolve(name)
    except UnknownLabelError:
        return False
    return True


def boxes_of(specimen: SpecimenLabels, label_set: LabelSet) -> list[BoxLabel]:
    """Boxes of ``label_set``: their label resolves in it, and their control names no other box set."""
    return [
        box
        for box in specimen.boxes
        if usable(box)
        and not (box.control in _BOX_SETS and box.control != label_set.name)
        and _resolves(label_set, box.label)
    ]


def _clear(root: Path, subdirs: Iterable[str]) -> None:
    """Remove what an earlier export left (stale images, Ultralytics' label caches)."""
    root.mkdir(parents=True, exist_ok=True)
    for sub in subdirs:
        shutil.rmtree(root / sub, ignore_errors=True)


def _place_image(source: Path, specimen: SpecimenLabels, target: Path, max_side: int | None) -> None:
    """Link ``source`` at ``target``, or write it oriented and reduced to ``max_side``; sizes must match the labels."""
    size = oriented_size(source)
    if size != (specimen.width, specimen.height):
        raise TrainingDataError(
            f"{source}: image is {size[0]} x {size[1]} px but its labels are for {specimen.width} x {specimen.height}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if max_side is None and source.suffix.lower() in (".jpg", ".jpeg") and not _has_orientation(source):
        os.symlink(source.resolve(), target)
        return
    # Labels are in the oriented frame: a file that needs EXIF rotation is written already rotated.
    read_image(source, max_side=max_side).image.save(target, quality=_JPEG_QUALITY)


def _has_orientation(path: Path) -> bool:
    with Image.open(path) as image:
        return image.getexif().get(_EXIF_ORIENTATION_TAG, 1) not in (1, None)


def _write_data_yaml(root: Path, label_set: LabelSet, *, train: Path, val: Path) -> Path:
    # JSON is YAML: no YAML writer needed, and the names keep their index order.
    data = {
        "path": str(root.resolve()),
        "train": str(train.resolve()),
        "val": str(val.resolve()),
        "nc": len(label_set.classes),
        "names": list(label_set.classes),
        "label_set": label_set.name,
    }
    path = root / DATA_YAML
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path.resolve()


def _snapshot(
    kind: Kind,
    label_set: LabelSet,
    entries: Sequence[tuple[str, str, str]],
    seed: int,
    val_fraction: float,
    max_side: int | None,
    data_yaml: Path,
) -> dict[str, Any]:
    """What a training run records about its data: counts per split and a hash of every file and label."""
    digest = hashlib.sha256()
    for split, sid, labels in sorted(entries):
        digest.update(f"{split}\t{sid}\t{hashlib.sha256(labels.encode()).hexdigest()}\n".encode())
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        rows = [labels for s, _, labels in entries if s == split]
        if kind == "classify":
            counts[split] = {"images": len(rows), **{name: rows.count(name) for name in label_set.classes}}
        else:
            counts[split] = {"images": len(rows), "instances": sum(len(r.splitlines()) for r in rows)}
    return {
        "format": SNAPSHOT_FORMAT,
        "kind": kind,
        "label_set": label_set.name,
        "names": list(label_set.classes),
        "counts": counts,
        "seed": seed,
        "val_fraction": val_fraction,
        "max_side": max_side,
        "data": str(data_yaml),
        "sha256": digest.hexdigest(),
    }


__all__ = [
    "DATA_YAML",
    "KINDS",
    "Kind",
    "Specimen",
    "TrainingDataError",
    "TrainingDataset",
    "export_classification",
    "export_detection",
    "export_segmentation",
    "split_specimens",
    "synthetic_specimens",
]
