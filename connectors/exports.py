"""Exports for botanists and for training, from specimens with their labels.

* validated labels (an expert confirmed or corrected them) to YOLO and COCO, through our
  converters, never Label Studio's exporter (it merges tags and drops masks);
* a Darwin Core Archive whose MeasurementOrFact rows give each trait and organ count with its
  method: the model's ``name@version``, or ``expert:<id>``; an expert's word wins over a model's;
* cleaned images: the plant alone on white, non-vegetal elements removed, with the mask;
* W3C Web Annotations: a IIIF AnnotationPage per canvas, or DiSSCo openDS annotations
  (:mod:`herbarium.labels.web_annotation`), one JSON file per specimen.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from PIL import Image

from connectors.dwca_writer import Measurement, write_dwca
from connectors.projects import SpecimenTask
from connectors.remote_media import ASSOCIATED_MEDIA
from herbarium.imaging import read_image
from herbarium.labels import (
    EXPERT_STATES,
    BoxLabel,
    ClassificationLabel,
    Label,
    LabelState,
    MaskLabel,
    SpecimenLabels,
)
from herbarium.labels.coco import as_coco
from herbarium.labels.web_annotation import as_annotation_page, as_opends
from herbarium.labels.yolo_dataset import TrainingDataset, export_detection
from herbarium.taxonomy import ORGANS, PLANT, TRAITS, LabelSet, UnknownLabelError

VALIDATED_STATES = frozenset({LabelState.VALIDATED, LabelState.CORRECTED})
EXPERT_METHOD = "expert review"  # measurementMethod of a value an expert set or confirmed (determinedBy names them)


@dataclass(frozen=True)
class ExportSpecimen:
    catalog_number: str
    image: Path | str  # a file, or the URL of an image that stays remote (IIIF)
    labels: SpecimenLabels
    record: dict[str, str] = field(default_factory=dict)


def validated(labels: SpecimenLabels) -> SpecimenLabels:
    """Only what an expert confirmed or corrected."""
    return labels.with_labels(label for label in labels.labels if label.state in VALIDATED_STATES)


def _preferred(labels: Sequence[Label]) -> list[Label]:
    """Expert labels when there are any (rejected ones drop out), else the model's."""
    expert = [label for label in labels if label.state in EXPERT_STATES]
    chosen = expert if expert else list(labels)
    return [label for label in chosen if label.state is not LabelState.REJECTED]


def _resolves(label_set: LabelSet, name: str) -> str | None:
    try:
        return label_set.resolve(name)
    except UnknownLabelError:
        return None


def measurements(specimen: ExportSpecimen) -> list[Measurement]:
    """Traits and organ counts of one specimen, each with the method that gave it."""
    rows: list[Measurement] = []
    for trait, label_set in TRAITS.items():
        label = _trait_label(specimen, trait)
        if label is not None:
            rows.append(
                Measurement(
                    specimen.catalog_number,
                    trait,
                    label_set.resolve(label.label),
                    method=EXPERT_METHOD if label.is_expert else label.source or "unknown",
                    remarks=f"score {label.score:.3f}" if label.score is not None and not label.is_expert else "",
                    determined_by=(label.source or "unknown expert") if label.is_expert else "",
                )
            )
    organs = [
        label
        for label in specimen.labels.labels
        if isinstance(label, BoxLabel) and _resolves(ORGANS, label.label) is not None
    ]
    chosen = _preferred(organs)
    counts = Counter(ORGANS.resolve(label.label) for label in chosen)
    experts = sorted({label.source or "unknown expert" for label in chosen if label.is_expert})
    methods = [EXPERT_METHOD] if experts else sorted({label.source or "unknown" for label in chosen})
    for organ in ORGANS.classes:
        if counts[organ]:
            rows.append(
                Measurement(
                    specimen.catalog_number,
                    f"{organ} count",
                    str(counts[organ]),
                    method=" | ".join(methods),
                    determined_by=" | ".join(experts),
                )
            )
    return rows


def _trait_label(specimen: ExportSpecimen, trait: str) -> Label | None:
    """The specimen's label for ``trait`` that counts: the expert's, else the model's; None without one."""
    label_set = TRAITS[trait]
    values = [
        label
        for label in specimen.labels.labels
        if isinstance(label, ClassificationLabel) and label.control == trait and _resolves(label_set, label.label)
    ]
    return next(iter(_preferred(values)), None)


def reproductive_condition(specimen: ExportSpecimen) -> str | None:
    """Darwin Core's reproductiveCondition from the specimen's phenology (the expert's, else the model's)."""
    label = _trait_label(specimen, "phenology")
    return TRAITS["phenology"].resolve(label.label) if label is not None else None


def export_dwca(specimens: Sequence[ExportSpecimen], out_zip: Path) -> Path:
    """A Darwin Core Archive with images, reproductiveCondition from the phenology, and MeasurementOrFact rows
    (measurementMethod: the model's name@version or expert review; measurementDeterminedBy: the expert)."""
    tasks = []
    for specimen in specimens:
        condition = reproductive_condition(specimen)
        extra = {"reproductiveCondition": condition} if condition else {}
        tasks.append(SpecimenTask(specimen.catalog_number, specimen.image, {**specimen.record, **extra}))
    rows = [row for specimen in specimens for row in measurements(specimen)]
    return write_dwca(tasks, out_zip, measurements=rows)


@dataclass(frozen=True)
class AnnotationExport:
    folder: Path
    files: int
    annotations: int
    left_out: int  # outlines and masks: neither form has a place for their pixels


def export_annotations(specimens: Sequence[ExportSpecimen], out_dir: Path, form: str) -> AnnotationExport:
    """``<catalogNumber>.json`` per specimen: a IIIF AnnotationPage (``form`` "iiif") or openDS annotations
    ("opends"). The target is the canvas a IIIF import recorded (iiifCanvas), else the image itself."""
    out_dir.mkdir(parents=True, exist_ok=True)
    annotations = left_out = 0
    names: set[str] = set()
    for specimen in specimens:
        image = specimen.record.get(ASSOCIATED_MEDIA) or _image_uri(specimen.image)
        canvas = specimen.record.get("iiifCanvas") or image
        document: Any
        if form == "iiif":
            page = f"urn:plantai:{quote(specimen.catalog_number, safe='')}"
            document, skipped = as_annotation_page(specimen.labels, canvas, page)
            annotations += len(document["items"])
        elif form == "opends":
            document, skipped = as_opends(specimen.labels, image)
            annotations += len(document)
        else:
            raise ValueError(f"annotation form: iiif or opends, not {form!r}")
        left_out += skipped
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in specimen.catalog_number)
        name, copy = stem, 1
        while name in names:  # "A/1" and "A_1" both read A_1: the second gets A_1-2
            copy += 1
            name = f"{stem}-{copy}"
        names.add(name)
        (out_dir / f"{name}.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
    return AnnotationExport(out_dir, len(specimens), annotations, left_out)


def export_coco(specimens: Sequence[ExportSpecimen], out_json: Path, label_set: LabelSet) -> Path:
    """Validated boxes, polygons and masks of ``label_set`` as one COCO file."""
    images = []
    for image_id, specimen in enumerate(specimens, start=1):
        kept = [
            label
            for label in validated(specimen.labels).labels
            if not isinstance(label, ClassificationLabel) and _resolves(label_set, label.label) is not None
        ]
        images.append((image_id, str(specimen.image), specimen.labels.with_labels(kept)))
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(as_coco(images, label_set)))
    return out_json


def export_yolo(
    specimens: Sequence[ExportSpecimen], out_dir: Path, label_set: LabelSet, seed: int = 0
) -> TrainingDataset:
    """Validated boxes of ``label_set`` as a YOLO detect data set (train/val split by specimen)."""
    remote = [s.catalog_number for s in specimens if isinstance(s.image, str)]
    if remote:
        raise ValueError(f"{len(remote)} specimens' images are remote ({', '.join(remote[:3])}...): a YOLO data set "
                         "needs the files; import them from a DwC-A or CSV of their URLs to fetch them")  # fmt: skip
    pairs = [(s.image, validated(s.labels)) for s in specimens if isinstance(s.image, Path)]
    return export_detection(pairs, out_dir, label_set, seed=seed, val_fraction=0.2)


@dataclass(frozen=True)
class CleanedImage:
    catalog_number: str
    image: Path | None
    mask: Path | None
    reason: str | None = None  # why there is no cleaned image


def clean_images(specimens: Iterable[ExportSpecimen], out_dir: Path) -> list[CleanedImage]:
    """The plant alone on white (and its 0/255 mask) for every specimen with a plant mask."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done: list[CleanedImage] = []
    for specimen in specimens:
        masks = _preferred(
            [
                label
                for label in specimen.labels.labels
                if isinstance(label, MaskLabel) and _resolves(PLANT, label.label) is not None
            ]
        )
        if not masks:
            done.append(CleanedImage(specimen.catalog_number, None, None, "no plant mask"))
            continue
        if isinstance(specimen.image, str):
            done.append(CleanedImage(specimen.catalog_number, None, None, "the image is remote (not fetched)"))
            continue
        plant = np.logical_or.reduce([label.mask for label in masks if isinstance(label, MaskLabel)])
        picture = np.asarray(read_image(specimen.image).image)
        if picture.shape[:2] != plant.shape:
            done.append(CleanedImage(specimen.catalog_number, None, None, "mask size differs from the image"))
            continue
        cleaned = np.where(plant[..., None], picture, np.uint8(255))
        image_path = out_dir / f"{specimen.catalog_number}.png"
        mask_path = out_dir / f"{specimen.catalog_number}.mask.png"
        Image.fromarray(cleaned.astype(np.uint8)).save(image_path)
        Image.fromarray(plant.astype(np.uint8) * 255).save(mask_path)
        done.append(CleanedImage(specimen.catalog_number, image_path, mask_path))
    return done


def export_image(filepath: str, record: dict[str, str]) -> Path | str:
    """A synced sample's image: its file, else (a task whose image stayed remote) the URL it was imported from."""
    path = Path(filepath)
    url = record.get(ASSOCIATED_MEDIA, "")
    return url if not path.is_file() and url.startswith(("http://", "https://")) else path


def _image_uri(image: Path | str) -> str:
    return image if isinstance(image, str) else image.resolve().as_uri()


def specimens_from_samples(samples: Iterable[Any], catalog_field: str = "catalogNumber") -> list[ExportSpecimen]:
    """Specimens of synced FiftyOne samples: their ``ai_*`` and ``expert_*`` labels, record and image."""
    import fiftyone as fo

    from herbarium.labels.fiftyone import from_fiftyone

    specimens: list[ExportSpecimen] = []
    for sample in samples:
        metadata = sample.metadata
        if metadata is None or not metadata.width or not metadata.height:
            raise ValueError(f"sample {sample.id}: no image size in its metadata (run compute_metadata())")
        width, height = int(metadata.width), int(metadata.height)
        labels: list[Label] = []
        record: dict[str, str] = {}
        for name, value in sample.iter_fields():
            if name.startswith(("ai_", "expert_")) and value is not None:
                control = name.split("_", 1)[1]
                if isinstance(value, fo.Detections):
                    labels += from_fiftyone(width, height, detections=value).labels
                elif isinstance(value, fo.Polylines):
                    labels += from_fiftyone(width, height, polylines=value).labels
                elif isinstance(value, fo.Classification):
                    labels += from_fiftyone(width, height, classifications={control: value}).labels
            elif (
                isinstance(value, str)
                and not name.startswith(("ls_", "review_", "expert_", "ai_"))
                and name
                not in (
                    "filepath",
                    "id",
                )
            ):
                record[name] = value
        specimens.append(
            ExportSpecimen(
                catalog_number=record.get(catalog_field) or str(sample.id),
                image=export_image(sample.filepath, record),
                labels=SpecimenLabels(width=width, height=height, labels=labels),
                record=record,
            )
        )
    return specimens
