"""Real herbarium sheets with ground truth: the sample folders in place, the team's boxes from this package.

The images stay where they are (``../shared/data/herbarium-samples``, or ``$PLANTAI_REAL_SAMPLES``):
their licences are not the project's. What this package holds is ground truth the team made for
them, in Label Studio JSON (``annotations/<collection>.json``, one task per sheet naming its image
by path inside the samples folder), and what it reads from the folders themselves: plant masks,
the UNB records (phenology) and the UNB main-label boxes. See ``annotations/README.md`` for how
the boxes were drawn.

>>> sheets = load_real_sheets()  # doctest: +SKIP
>>> [s.name for s in sheets if s.plant_mask is not None]  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herbarium.labels.labelstudio import from_labelstudio
from herbarium.labels.model import BoxLabel, LabelState, SpecimenLabels
from herbarium.settings import real_samples_dir
from herbarium.taxonomy import NONVEGETAL, ORGANS

ANNOTATIONS_DIR = Path(__file__).resolve().parent / "annotations"
# The samples folder beside a checkout of the repository (../shared next to it), when there is one.
_CHECKOUT_SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "herbarium-samples"
COLLECTIONS = ("plant-masks", "mock-sheets", "unb", "aafc")
GROUND_TRUTH_SOURCE = "plantai-team"
BOX_CONTROLS = {NONVEGETAL.name: NONVEGETAL, ORGANS.name: ORGANS}

# UNB's phenology records in their own words, as PlantAI's phenology classes.
UNB_PHENOLOGY: Mapping[str, str] = {
    "specimen has flowers or flower buds": "flowering",
    "specimen has flowers": "flowering",
    "specimen has both fruit and flowers": "flowering",
    "specimen has fruit but no flowers": "fruiting",
    "specimen has fruit": "fruiting",
    "no reproductive structures seen on specimen": "sterile",
    "specimen has neither fruit nor flowers": "sterile",
    "specimen is not reproductive": "sterile",
}
# Records that say fertile without saying flower or fruit: fertile for fertile/sterile, no phenology class.
UNB_FERTILE_ONLY = frozenset({"specimen is reproductive"})
UNB_PHENOLOGY_COLUMN = 36
UNB_ACCESSION_COLUMN = 1


class RealSheetsError(ValueError):
    """Ground truth that does not match the sample folder, or a malformed annotation file."""


@dataclass(frozen=True)
class RealSheet:
    """One real sheet: its image, and whatever ground truth exists for it."""

    name: str  # the image's file stem
    collection: str
    image: Path
    plant_mask: Path | None = None  # binary plant mask (255 = plant), same size as the image
    boxes: SpecimenLabels | None = None  # the team's boxes, in the upright image's pixels
    exhaustive: frozenset[str] = field(default_factory=frozenset)  # classes boxed completely
    phenology: str | None = None  # flowering / fruiting / sterile, from the herbarium's own record
    fertile: bool | None = None  # flowering or fruiting (also known when the record says "reproductive" only)
    main_label: tuple[float, float, float, float] | None = None  # UNB: the main label's box, x0 y0 x1 y1
    barcode_values: tuple[str, ...] = ()  # what a person reads on the sheet's barcodes (their printed lines)

    @property
    def has_boxes(self) -> bool:
        return self.boxes is not None


def default_samples_dir() -> Path | None:
    """``$PLANTAI_REAL_SAMPLES``, else ``../shared/data/herbarium-samples`` beside the checkout, else None."""
    configured = real_samples_dir()
    if configured is not None:
        return configured
    return _CHECKOUT_SAMPLES if _CHECKOUT_SAMPLES.is_dir() else None


def load_real_sheets(
    samples_dir: Path | str | None = None, collections: Sequence[str] = COLLECTIONS
) -> list[RealSheet]:
    """Every sheet of ``collections`` under ``samples_dir``, with its ground truth; [] when there is no folder."""
    root = Path(samples_dir) if samples_dir is not None else default_samples_dir()
    if root is None or not root.is_dir():
        return []
    sheets: list[RealSheet] = []
    for collection in collections:
        folder = root / collection / "images"
        if not folder.is_dir():
            continue
        boxes = _annotations(collection)
        records = _unb_records(root / collection) if collection == "unb" else {}
        label_boxes = _unb_label_boxes(root / collection) if collection == "unb" else {}
        barcode_values = _barcode_values()
        for image in sorted(folder.glob("*.jpg")):
            name = image.stem
            mask = root / collection / "masks" / f"{name}.png"
            labels, exhaustive = boxes.get(f"{collection}/images/{image.name}", (None, frozenset()))
            phenology_text = records.get(name)
            sheets.append(
                RealSheet(
                    name=name,
                    collection=collection,
                    image=image,
                    plant_mask=mask if mask.is_file() else None,
                    boxes=labels,
                    exhaustive=exhaustive,
                    phenology=UNB_PHENOLOGY.get(phenology_text or ""),
                    fertile=_fertile(phenology_text),
                    main_label=label_boxes.get(name),
                    barcode_values=barcode_values.get(f"{collection}/images/{image.name}", ()),
                )
            )
    return sheets


def _fertile(text: str | None) -> bool | None:
    if text is None:
        return None
    if text in UNB_FERTILE_ONLY:
        return True
    phenology = UNB_PHENOLOGY.get(text)
    return None if phenology is None else phenology != "sterile"


def annotation_path(collection: str) -> Path:
    return ANNOTATIONS_DIR / f"{collection}.json"


def _annotations(collection: str) -> dict[str, tuple[SpecimenLabels, frozenset[str]]]:
    """image path inside the samples folder → (the team's boxes, the classes boxed completely)."""
    path = annotation_path(collection)
    tasks = _read_json(path, [])
    out: dict[str, tuple[SpecimenLabels, frozenset[str]]] = {}
    for i, task in enumerate(tasks):
        try:
            image = str(task["data"]["image"])
            annotation = task["annotations"][0]
            labels = from_labelstudio(
                annotation["result"],
                source=GROUND_TRUTH_SOURCE,
                state=LabelState.VALIDATED,
                width=int(task["meta"]["width"]),
                height=int(task["meta"]["height"]),
            )
            exhaustive = frozenset(str(c) for c in task["meta"]["exhaustive"])
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise RealSheetsError(f"{path}: task {i}: {error}") from None
        for label in labels.boxes:
            _check_box(label, path, image)
        unknown = exhaustive - set(NONVEGETAL.classes) - set(ORGANS.classes)
        if unknown:
            raise RealSheetsError(f"{path}: {image}: unknown classes in meta.exhaustive: {sorted(unknown)}")
        out[image] = (labels, exhaustive)
    return out


BARCODE_VALUES = ANNOTATIONS_DIR / "barcode-values.json"


def _read_json(path: Path, missing: Any) -> Any:
    """The JSON in ``path``; ``missing`` when there is no such file."""
    if not path.is_file():
        return missing
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RealSheetsError(f"{path}: not valid JSON ({error})") from None


def _barcode_values() -> dict[str, tuple[str, ...]]:
    """image path inside the samples folder → the values a person read on its barcodes."""
    data = _read_json(BARCODE_VALUES, {})
    if not isinstance(data, dict) or not all(
        isinstance(values, list) and values and all(isinstance(v, str) and v.strip() for v in values)
        for values in data.values()
    ):
        raise RealSheetsError(f"{BARCODE_VALUES}: expected {{image path: [value, ...]}} with non-empty strings")
    return {str(image): tuple(values) for image, values in data.items()}


def _check_box(label: BoxLabel, path: Path, image: str) -> None:
    label_set = BOX_CONTROLS.get(label.control or "")
    if label_set is None or label.label not in label_set.classes:
        raise RealSheetsError(f"{path}: {image}: box {label.label!r} from control {label.control!r} is unknown")


def _unb_records(folder: Path) -> dict[str, str]:
    """``u-<AccNum>`` → the record's phenology text (lower case), for records that give one."""
    path = folder / "records.csv"
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.reader(handle):
            if len(row) > UNB_PHENOLOGY_COLUMN and row[UNB_ACCESSION_COLUMN].strip():
                text = row[UNB_PHENOLOGY_COLUMN].strip().lower()
                if text:
                    out[f"u-{row[UNB_ACCESSION_COLUMN].strip()}"] = text
    return out


def _unb_label_boxes(folder: Path) -> dict[str, tuple[float, float, float, float]]:
    path = folder / "label-boxes.json"
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    boxes: dict[str, tuple[float, float, float, float]] = {}
    for name, entry in data.items():
        x0, y0, x1, y1 = (float(v) for v in entry["label"])
        boxes[name] = (x0, y0, x1, y1)
    return boxes


def box_ground_truth(sheet: RealSheet, classes: Sequence[str]) -> list[BoxLabel]:
    """The sheet's boxes of ``classes`` (only classes it has boxed completely count as ground truth)."""
    if sheet.boxes is None:
        return []
    wanted = set(classes) & sheet.exhaustive
    return [box for box in sheet.boxes.boxes if box.label in wanted]


__all__ = [
    "ANNOTATIONS_DIR",
    "COLLECTIONS",
    "GROUND_TRUTH_SOURCE",
    "UNB_PHENOLOGY",
    "RealSheet",
    "RealSheetsError",
    "annotation_path",
    "box_ground_truth",
    "default_samples_dir",
    "load_real_sheets",
]
