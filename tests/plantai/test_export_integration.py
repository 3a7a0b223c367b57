"""`plantai export` on a real FiftyOne dataset of generated sheets."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from herbarium.labels import BoxLabel, ClassificationLabel, LabelState, SpecimenLabels
from herbarium.labels.fiftyone import as_fiftyone
from herbarium.synth import generate_sheet
from plantai.cli import cli

pytestmark = pytest.mark.integration


@pytest.fixture
def synced_like_dataset(fiftyone_db: Any, tmp_path: Path) -> str:
    import fiftyone as fo

    dataset = fo.Dataset("export-cli", overwrite=True)
    samples = []
    for seed in (21, 22, 23):
        sheet = generate_sheet(seed, 400, 580)
        path = tmp_path / f"{sheet.catalog_number}.jpg"
        sheet.image.save(path, quality=95)
        truth = sheet.labels
        boxes = [b for b in truth.boxes if b.control == "nonvegetal"]
        masks = truth.masks
        phenology = [c for c in truth.classifications if c.control == "phenology"]

        def converted(labels: list[Any], truth: SpecimenLabels = truth) -> Any:
            return as_fiftyone(SpecimenLabels(width=truth.width, height=truth.height, labels=labels))

        predicted = [ClassificationLabel(label=c.label, control="phenology", source="phen@1.0.0", score=0.7)
                     for c in phenology]  # fmt: skip
        sample = fo.Sample(
            filepath=str(path),
            metadata=fo.ImageMetadata(width=truth.width, height=truth.height),
            catalogNumber=sheet.catalog_number,
            scientificName=sheet.darwin_core["scientificName"],
            review_state="validated",
            expert_nonvegetal=converted(boxes).detections,
            expert_plant_mask=converted(masks).detections,
            ai_phenology=converted(predicted).classifications["phenology"],
        )
        samples.append(sample)
    # One rejected barcode box must not be exported.
    rejected = BoxLabel(label="barcode", x=5, y=5, width=10, height=10, state=LabelState.REJECTED, source="expert:1")
    samples[0]["ai_nonvegetal"] = as_fiftyone(SpecimenLabels(width=400, height=580, labels=[rejected])).detections
    dataset.add_samples(samples)
    return dataset.name


def _run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["export", *args, "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_coco_has_the_validated_boxes_only(synced_like_dataset: str, tmp_path: Path) -> None:
    report = _run("--dataset", synced_like_dataset, "--format", "coco", "--out", str(tmp_path / "coco"))
    coco = json.loads(Path(report["path"]).read_text())
    expected = sum(
        1 for seed in (21, 22, 23) for b in generate_sheet(seed, 400, 580).labels.boxes if b.control == "nonvegetal"
    )
    assert len(coco["images"]) == 3
    assert len(coco["annotations"]) == expected


def test_dwca_and_cleaned_images(synced_like_dataset: str, tmp_path: Path) -> None:
    report = _run("--dataset", synced_like_dataset, "--format", "dwca", "--out", str(tmp_path / "out.zip"))
    with zipfile.ZipFile(report["path"]) as archive:
        facts = archive.read("measurementorfact.txt").decode()
    assert "phen@1.0.0" in facts
    assert "phenology" in facts
    cleaned = _run("--dataset", synced_like_dataset, "--format", "clean", "--out", str(tmp_path / "clean"))
    assert cleaned["cleaned"] == 3


def test_web_annotation_exports(synced_like_dataset: str, tmp_path: Path) -> None:
    for form in ("iiif", "opends"):
        report = _run("--dataset", synced_like_dataset, "--format", form, "--out", str(tmp_path / form))
        files = sorted((tmp_path / form).glob("*.json"))
        assert len(files) == report["specimens"] == 3
        assert report["annotations"] > 0


def test_unknown_dataset_is_a_clear_error(fiftyone_db: Any) -> None:
    result = CliRunner().invoke(cli, ["export", "--dataset", "nope", "--format", "coco", "--out", "x"])
    assert result.exit_code != 0
    assert "no FiftyOne dataset named 'nope'" in result.output
