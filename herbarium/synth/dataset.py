"""Synthetic data sets on disk: images, plant masks, instance masks, manifest.json and a Darwin Core CSV.

Layout under ``out_dir`` (masks as in the real herbarium-segmentation sample)::

    images/<catalogNumber>.jpg
    masks/<catalogNumber>.png                    0/255 plant mask, 8-bit greyscale
    instance-masks/<catalogNumber>_plant_<k>.png 0/255, one per plant
    manifest.json                                every sheet: paths, size, seed, boxes, traits, Darwin Core
    occurrence.csv                               Darwin Core terms plus associatedMedia (the image path)

Sheet ``i`` of a run with ``seed`` is ``generate_sheet(seed + i, ...)``: any one sheet can be
regenerated alone. manifest.json and occurrence.csv are written as sheets come and moved into
place at the end, so a run that stops half-way leaves no manifest that claims missing files.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image

from herbarium import __version__
from herbarium.labels.model import SpecimenLabels
from herbarium.synth.params import check_count, check_seed, parse_size
from herbarium.synth.sheet import SheetBox, SyntheticSheet, build_labels, generate_sheet
from herbarium.synth.vocab import DARWIN_CORE_TERMS
from herbarium.taxonomy import NONVEGETAL, ORGANS, PLANT, TRAITS

MANIFEST_FORMAT = "plantai-synth/1"
MANIFEST_NAME = "manifest.json"
OCCURRENCE_NAME = "occurrence.csv"
JPEG_QUALITY = 92

Progress = Callable[[int, int], None]  # (sheets done, sheets in all)


class ManifestError(ValueError):
    """A manifest.json this reader cannot use; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class SheetRecord:
    """One sheet as the manifest lists it; paths are relative to the data set's root."""

    catalog_number: str
    seed: int
    image: str
    width: int
    height: int
    mask: str
    instance_masks: tuple[str, ...]
    boxes: tuple[SheetBox, ...]
    traits: Mapping[str, str]
    darwin_core: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "catalogNumber": self.catalog_number,
            "seed": self.seed,
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "mask": self.mask,
            "instance_masks": list(self.instance_masks),
            "boxes": [
                {
                    "class": b.label,
                    "group": b.group,
                    "plant": b.plant,
                    "x": b.x,
                    "y": b.y,
                    "width": b.width,
                    "height": b.height,
                }
                for b in self.boxes
            ],
            "traits": dict(self.traits),
            "darwin_core": dict(self.darwin_core),
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> SheetRecord:
        boxes = tuple(
            SheetBox(
                # Interned: a few distinct names repeated in every record, held once.
                sys.intern(str(b["class"])),
                sys.intern(str(b["group"])),
                None if b["plant"] is None else int(b["plant"]),
                int(b["x"]),
                int(b["y"]),
                int(b["width"]),
                int(b["height"]),
            )
            for b in entry["boxes"]
        )
        return cls(
            catalog_number=str(entry["catalogNumber"]),
            seed=int(entry["seed"]),
            image=str(entry["image"]),
            width=int(entry["width"]),
            height=int(entry["height"]),
            mask=str(entry["mask"]),
            instance_masks=tuple(str(p) for p in entry["instance_masks"]),
            boxes=boxes,
            traits=MappingProxyType({str(k): str(v) for k, v in entry["traits"].items()}),
            darwin_core=MappingProxyType({str(k): str(v) for k, v in entry["darwin_core"].items()}),
        )

    def specimen_labels(self, root: str | Path, *, masks: bool = True) -> SpecimenLabels:
        """Rebuild the sheet's labels; instance masks are read from their PNGs unless ``masks`` is False."""
        instance = [_read_mask(Path(root) / path) for path in self.instance_masks] if masks else []
        return build_labels(self.width, self.height, self.boxes, self.traits, instance, image=self.image)


def _read_mask(path: Path) -> Any:
    with Image.open(path) as mask:
        return np.asarray(mask.convert("L")) > 127


@dataclass(frozen=True)
class Manifest:
    """A written data set: where it is, how it was made, and its sheets (about 8 kB of memory each)."""

    root: Path
    seed: int
    width: int
    height: int
    sheets: tuple[SheetRecord, ...]
    seconds: float | None = None  # generation time, when this process wrote it

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def occurrence_path(self) -> Path:
        return self.root / OCCURRENCE_NAME


def save_sheet(sheet: SyntheticSheet, root: Path) -> SheetRecord:
    """Write one sheet's image and masks under ``root``; return its manifest record."""
    name = sheet.catalog_number
    image = f"images/{name}.jpg"
    mask = f"masks/{name}.png"
    instances = tuple(f"instance-masks/{name}_plant_{k}.png" for k in range(len(sheet.instance_masks)))
    sheet.image.save(root / image, quality=JPEG_QUALITY)
    # compress_level 1: binary masks shrink almost as well, at a fraction of the time.
    Image.fromarray(sheet.plant_mask.view(np.uint8) * np.uint8(255), "L").save(root / mask, compress_level=1)
    for path, instance in zip(instances, sheet.instance_masks, strict=True):
        Image.fromarray(instance.view(np.uint8) * np.uint8(255), "L").save(root / path, compress_level=1)
    return SheetRecord(
        catalog_number=name,
        seed=sheet.seed,
        image=image,
        width=sheet.width,
        height=sheet.height,
        mask=mask,
        instance_masks=instances,
        boxes=sheet.boxes,
        traits=sheet.traits,
        darwin_core=sheet.darwin_core,
    )


def _header(seed: int, count: int, width: int, height: int) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "generator": f"herbarium.synth {__version__}",
        "seed": seed,
        "count": count,
        "width": width,
        "height": height,
        "classes": {
            NONVEGETAL.name: list(NONVEGETAL.classes),
            ORGANS.name: list(ORGANS.classes),
            PLANT.name: list(PLANT.classes),
            **{name: list(labels.classes) for name, labels in TRAITS.items()},
        },
    }


def write_sheets(
    out_dir: str | Path,
    n: int,
    size: str | int | tuple[int, int] = 1024,
    seed: int = 0,
    progress: Progress | None = None,
) -> Manifest:
    """Generate ``n`` sheets of ``size`` (long side, or ``(width, height)``, or ``"WxH"``) into ``out_dir``.

    Files already there with the same names are replaced.
    """
    check_count(n)
    check_seed(seed)
    width, height = parse_size(size)
    root = Path(out_dir)
    for sub in ("images", "masks", "instance-masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    records: list[SheetRecord] = []
    manifest_tmp = root / f".{MANIFEST_NAME}.partial"
    csv_tmp = root / f".{OCCURRENCE_NAME}.partial"
    with manifest_tmp.open("w", encoding="utf-8") as manifest, csv_tmp.open("w", encoding="utf-8", newline="") as table:
        # One sheet per line inside an ordinary JSON document: valid JSON, still easy to grep.
        manifest.write("{\n")
        for key, value in _header(seed, n, width, height).items():
            manifest.write(f"  {json.dumps(key)}: {json.dumps(value)},\n")
        manifest.write('  "sheets": [')
        writer = csv.DictWriter(table, fieldnames=[*DARWIN_CORE_TERMS, "associatedMedia"], lineterminator="\n")
        writer.writeheader()
        for i in range(n):
            record = save_sheet(generate_sheet(seed + i, width, height), root)
            records.append(record)
            manifest.write(("\n    " if i == 0 else ",\n    ") + json.dumps(record.to_json(), separators=(",", ":")))
            writer.writerow({**record.darwin_core, "associatedMedia": record.image})
            if progress is not None:
                progress(i + 1, n)
        manifest.write("\n  ]\n}\n")
    os.replace(csv_tmp, root / OCCURRENCE_NAME)
    os.replace(manifest_tmp, root / MANIFEST_NAME)
    seconds = time.perf_counter() - start
    return Manifest(root=root, seed=seed, width=width, height=height, sheets=tuple(records), seconds=seconds)


def load_manifest(out_dir: str | Path) -> Manifest:
    """Read ``out_dir/manifest.json`` back; each record rebuilds its :class:`SpecimenLabels`."""
    root = Path(out_dir)
    path = root / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file (not a synthetic data set?)") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ManifestError(f"{path}: format: expected {MANIFEST_FORMAT!r}, got {found!r}")
    try:
        sheets = tuple(SheetRecord.from_json(entry) for entry in data["sheets"])
        return Manifest(
            root=root, seed=int(data["seed"]), width=int(data["width"]), height=int(data["height"]), sheets=sheets
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{path}: malformed entry ({type(exc).__name__}: {exc})") from None
