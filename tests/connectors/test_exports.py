from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from dwca.read import DwCAReader
from PIL import Image

from connectors.exports import (
    ExportSpecimen,
    clean_images,
    export_annotations,
    export_coco,
    export_dwca,
    export_image,
    export_yolo,
    measurements,
)
from herbarium.labels import BoxLabel, ClassificationLabel, LabelState
from herbarium.labels.yolo import from_yolo_detect
from herbarium.synth import generate_sheet
from herbarium.taxonomy import NONVEGETAL


@pytest.fixture
def specimen(tmp_path: Path) -> ExportSpecimen:
    sheet = generate_sheet(11, 500, 724)
    path = tmp_path / f"{sheet.catalog_number}.jpg"
    sheet.image.save(path, quality=95)
    return ExportSpecimen(sheet.catalog_number, path, sheet.labels, dict(sheet.darwin_core))


def _as_model(specimen: ExportSpecimen) -> ExportSpecimen:
    predicted = [
        replace(label, state=LabelState.PREDICTED, source="organs@1.0.0", score=0.8) for label in specimen.labels.labels
    ]
    return replace(specimen, labels=specimen.labels.with_labels(predicted))


def test_expert_traits_and_counts_win_over_the_models(specimen: ExportSpecimen) -> None:
    model = _as_model(specimen)
    truth_phenology = next(c.label for c in specimen.labels.classifications if c.control == "phenology")
    wrong = "sterile" if truth_phenology != "sterile" else "flowering"
    expert = ClassificationLabel(label=wrong, control="phenology", source="expert:4", state=LabelState.CORRECTED)
    mixed = replace(model, labels=model.labels.with_labels([*model.labels.labels, expert]))
    rows = {row.measurement_type: row for row in measurements(mixed)}
    phenology = rows["phenology"]
    assert (phenology.value, phenology.method, phenology.determined_by) == (wrong, "expert review", "expert:4")
    assert (rows["leaf_margin"].method, rows["leaf_margin"].determined_by) == ("organs@1.0.0", "")  # nobody checked it
    leaves = sum(1 for b in specimen.labels.boxes if b.label == "leaf")
    assert rows["leaf count"].value == str(leaves)


def test_rejected_labels_are_not_counted(specimen: ExportSpecimen) -> None:
    boxes = [replace(b, state=LabelState.REJECTED) if b.label == "leaf" else b for b in specimen.labels.boxes]
    rows = {row.measurement_type for row in measurements(replace(specimen, labels=specimen.labels.with_labels(boxes)))}
    assert "leaf count" not in rows


def test_darwin_core_archive_carries_measurements(specimen: ExportSpecimen, tmp_path: Path) -> None:
    archive = export_dwca([specimen], tmp_path / "out.zip")
    with DwCAReader(str(archive)) as reader:
        [row] = list(reader)
        assert row.data["http://rs.tdwg.org/dwc/terms/catalogNumber"] == specimen.catalog_number
        facts = [e.data for e in row.extensions if e.rowtype == "http://rs.tdwg.org/dwc/terms/MeasurementOrFact"]
    phenology = next(c.label for c in specimen.labels.classifications if c.control == "phenology")
    assert row.data["http://rs.tdwg.org/dwc/terms/reproductiveCondition"] == phenology
    types = {f["http://rs.tdwg.org/dwc/terms/measurementType"] for f in facts}
    assert {"phenology", "leaf_margin", "leaf count"} <= types
    # The generated sheets' truth stands for an expert's word: its source is who determined it.
    assert {f["http://rs.tdwg.org/dwc/terms/measurementMethod"] for f in facts} == {"expert review"}
    assert {f["http://rs.tdwg.org/dwc/terms/measurementDeterminedBy"] for f in facts} == {"synthetic"}


def test_coco_and_yolo_keep_only_validated_labels(specimen: ExportSpecimen, tmp_path: Path) -> None:
    boxes = specimen.labels.boxes
    predicted_barcode = BoxLabel(label="barcode", x=1, y=1, width=5, height=5, state=LabelState.PREDICTED)
    labels = specimen.labels.with_labels([*specimen.labels.labels, predicted_barcode])
    mixed = replace(specimen, labels=labels)
    coco = json.loads(export_coco([mixed], tmp_path / "coco.json", NONVEGETAL).read_text())
    expected = [b for b in boxes if b.label in NONVEGETAL.classes]
    assert len(coco["annotations"]) == len(expected)
    twin = tmp_path / "twin.jpg"
    twin.write_bytes(specimen.image.read_bytes())
    dataset = export_yolo([mixed, replace(mixed, catalog_number="twin", image=twin)], tmp_path / "yolo", NONVEGETAL)
    label_files = sorted(dataset.root.rglob("*.txt"))
    assert len(label_files) == 2
    for label_file in label_files:
        read = from_yolo_detect(label_file.read_text(), labels.width, labels.height, NONVEGETAL)
        assert len(read.boxes) == len(expected)


def test_cleaned_image_keeps_the_plant_on_white(specimen: ExportSpecimen, tmp_path: Path) -> None:
    [done] = clean_images([specimen], tmp_path / "clean")
    assert done.reason is None
    assert done.image is not None
    assert done.mask is not None
    cleaned = np.asarray(Image.open(done.image))
    mask = np.asarray(Image.open(done.mask)) > 0
    original = np.asarray(Image.open(specimen.image).convert("RGB"))
    assert (cleaned[~mask] == 255).all()
    assert np.array_equal(cleaned[mask], original[mask])
    assert mask.any()


def test_no_mask_no_cleaned_image(specimen: ExportSpecimen, tmp_path: Path) -> None:
    boxes_only = replace(specimen, labels=specimen.labels.with_labels(specimen.labels.boxes))
    [done] = clean_images([boxes_only], tmp_path / "clean")
    assert done.reason == "no plant mask"


def test_web_annotation_exports_write_one_file_per_specimen(specimen: ExportSpecimen, tmp_path: Path) -> None:
    iiif = export_annotations([specimen], tmp_path / "iiif", "iiif")
    page = json.loads((tmp_path / "iiif" / f"{specimen.catalog_number}.json").read_text())
    assert (page["type"], len(page["items"])) == ("AnnotationPage", iiif.annotations)
    boxes_and_traits = len(specimen.labels.boxes) + len(specimen.labels.classifications)
    assert iiif.annotations == boxes_and_traits
    assert iiif.left_out == len(specimen.labels.labels) - boxes_and_traits
    opends = export_annotations([specimen], tmp_path / "opends", "opends")
    assert opends.annotations == iiif.annotations
    with pytest.raises(ValueError, match="iiif or opends"):
        export_annotations([specimen], tmp_path / "x", "w3c")
    twins = [replace(specimen, catalog_number=n) for n in ("A/1", "A_1", "A 1")]
    export_annotations(twins, tmp_path / "twins", "iiif")
    assert sorted(p.name for p in (tmp_path / "twins").iterdir()) == ["A_1-2.json", "A_1-3.json", "A_1.json"]


def test_a_specimen_whose_image_stayed_remote_is_exported_by_its_url(specimen: ExportSpecimen, tmp_path: Path) -> None:
    url = "https://iiif.example.org/iiif/3/E00001234/full/max/0/default.jpg"
    record = {**specimen.record, "associatedMedia": url}
    assert export_image("/https://iiif.example.org/iiif/3/E00001234/full/max/0/default.jpg", record) == url
    assert export_image(str(specimen.image), record) == specimen.image  # a file on disk wins
    remote = replace(specimen, image=url, record=record)
    with DwCAReader(str(export_dwca([remote], tmp_path / "out.zip"))) as reader:
        [row] = list(reader)
        media = [e.data for e in row.extensions if "Multimedia" in e.rowtype]
    assert [m["http://purl.org/dc/terms/identifier"] for m in media] == [url]
    [cleaned] = clean_images([remote], tmp_path / "clean")
    assert cleaned.reason == "the image is remote (not fetched)"
    with pytest.raises(ValueError, match="images are remote"):
        export_yolo([remote], tmp_path / "yolo", NONVEGETAL)
