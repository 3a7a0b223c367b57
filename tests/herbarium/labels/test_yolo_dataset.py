"""Training data export: YOLO files read back equal to the source labels; splits by specimen, deterministic."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from herbarium.labels.model import BoxLabel, LabelState, SpecimenLabels
from herbarium.labels.yolo import from_yolo_detect, from_yolo_segment
from herbarium.labels.yolo_dataset import (
    TrainingDataError,
    export_classification,
    export_detection,
    export_segmentation,
    split_specimens,
    synthetic_specimens,
)
from herbarium.synth import write_sheets
from herbarium.taxonomy import NONVEGETAL, ORGANS, PLANT, TRAITS, LabelSet


@pytest.fixture(scope="module")
def specimens(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, SpecimenLabels]]:
    root = tmp_path_factory.mktemp("sheets")
    write_sheets(root, n=8, size=512, seed=3)
    return synthetic_specimens(root)


def _expected_boxes(specimen: SpecimenLabels, label_set: LabelSet) -> list[tuple[str, float, float, float, float]]:
    return [
        (label_set.resolve(b.label), b.x, b.y, b.width, b.height) for b in specimen.boxes if b.control == label_set.name
    ]


@pytest.mark.parametrize("label_set", [NONVEGETAL, ORGANS], ids=lambda s: s.name)
@pytest.mark.parametrize("max_side", [None, 200])
def test_detection_export_reads_back_as_the_source_boxes(
    specimens: list[tuple[Path, SpecimenLabels]], tmp_path: Path, label_set: LabelSet, max_side: int | None
) -> None:
    dataset = export_detection(specimens, tmp_path / "data", label_set, max_side=max_side)
    data = json.loads(dataset.data.read_text())
    assert data["names"] == list(label_set.classes)
    assert Path(data["train"]).is_absolute()
    assert Path(data["train"]).is_dir()
    assert Path(data["val"]).is_absolute()
    assert Path(data["val"]).is_dir()
    by_id = {path.stem: specimen for path, specimen in specimens}
    seen = 0
    for split in ("train", "val"):
        for label_file in sorted((dataset.root / "labels" / split).glob("*.txt")):
            source = by_id[label_file.stem]
            image = dataset.root / "images" / split / f"{label_file.stem}.jpg"
            with Image.open(image) as picture:
                size = picture.size
            if max_side is None:
                assert image.is_symlink()
                assert size == (source.width, source.height)
            else:
                assert max(size) <= max_side
            back = from_yolo_detect(label_file.read_text(), source.width, source.height, label_set)
            got = [(b.label, b.x, b.y, b.width, b.height) for b in back.boxes]
            expected = _expected_boxes(source, label_set)
            assert len(got) == len(expected) > 0
            for g, e in zip(got, expected, strict=True):
                assert g[0] == e[0]
                assert g[1:] == pytest.approx(e[1:], abs=1e-6)
            seen += 1
    assert seen == len(specimens)
    assert dataset.snapshot["counts"]["train"]["images"] + dataset.snapshot["counts"]["val"]["images"] == seen


def test_detection_leaves_out_rejected_and_other_sets_boxes(tmp_path: Path) -> None:
    image = tmp_path / "S1.jpg"
    Image.new("RGB", (100, 50), "white").save(image)
    labels = [
        BoxLabel(label="barcode", control="nonvegetal", x=1, y=2, width=10, height=5),
        BoxLabel(label="ruler", control="nonvegetal", x=1, y=2, width=10, height=5, state=LabelState.REJECTED),
        BoxLabel(label="leaf", control="organs", x=3, y=4, width=10, height=5),
        BoxLabel(label="Color Card", x=20, y=10, width=30, height=20),  # no control: an alias still resolves
    ]
    other = tmp_path / "S2.jpg"
    Image.new("RGB", (100, 50), "white").save(other)
    specimen = SpecimenLabels(width=100, height=50, labels=labels)
    dataset = export_detection([(image, specimen), (other, SpecimenLabels(width=100, height=50))], tmp_path / "d")
    text = next(dataset.root.glob("labels/*/S1.txt")).read_text()
    back = from_yolo_detect(text, 100, 50, NONVEGETAL)
    assert [b.label for b in back.boxes] == ["barcode", "colour_chart"]


def test_segmentation_export_outlines_the_plant_masks(
    specimens: list[tuple[Path, SpecimenLabels]], tmp_path: Path
) -> None:
    dataset = export_segmentation(specimens, tmp_path / "seg", max_side=256)
    assert json.loads(dataset.data.read_text())["names"] == ["plant"]
    for path, source in specimens[:4]:
        label_file = next(dataset.root.glob(f"labels/*/{path.stem}.txt"))
        back = from_yolo_segment(label_file.read_text(), source.width, source.height, PLANT)
        drawn = np.zeros((source.height, source.width), np.uint8)
        for polygon in back.polygons:
            cv2.fillPoly(drawn, [np.round(np.array(polygon.points)).astype(np.int32)], 1)
        truth = np.zeros_like(drawn, dtype=bool)
        for mask in source.masks:
            truth |= mask.mask
        iou = (truth & (drawn > 0)).sum() / (truth | (drawn > 0)).sum()
        assert iou > 0.95, f"{path.stem}: IoU {iou:.3f}"


def test_classification_puts_each_image_in_its_trait_folder(
    specimens: list[tuple[Path, SpecimenLabels]], tmp_path: Path
) -> None:
    dataset = export_classification(specimens, tmp_path / "cls", "phenology", max_side=64)
    assert dataset.data == dataset.root
    for split in ("train", "val"):
        assert sorted(p.name for p in (dataset.root / split).iterdir()) == list(TRAITS["phenology"].classes)
    placed = {p.stem: (p.parent.parent.name, p.parent.name) for p in dataset.root.glob("*/*/*.jpg")}
    assert len(placed) == len(specimens)
    for path, source in specimens:
        value = next(c.label for c in source.classifications if c.control == "phenology")
        split, folder = placed[path.stem]
        assert folder == value
        assert path.stem in dataset.splits[split]
    with Image.open(next(dataset.root.glob("*/*/*.jpg"))) as picture:
        assert max(picture.size) <= 64


def test_classification_refuses_classes_ultralytics_would_renumber(
    specimens: list[tuple[Path, SpecimenLabels]], tmp_path: Path
) -> None:
    unsorted = LabelSet(name="phenology", description="", classes=("sterile", "flowering", "fruiting"))
    with pytest.raises(TrainingDataError, match="sorted"):
        export_classification(specimens, tmp_path / "cls", "phenology", unsorted)


def test_split_is_by_specimen_deterministic_and_disjoint() -> None:
    ids = [f"FX{k:08d}" for k in range(50)]
    first = split_specimens(ids, 0.2, seed=5)
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    assert split_specimens(shuffled, 0.2, seed=5) == first
    assert not set(first["train"]) & set(first["val"])
    assert set(first["train"]) | set(first["val"]) == set(ids)
    assert len(first["val"]) == 10
    assert split_specimens(ids, 0.2, seed=6) != first
    # Adding specimens never moves an existing one into the other split's place by reshuffling everything.
    assert len(set(split_specimens([*ids, "FX99999999"], 0.2, seed=5)["val"]) & set(first["val"])) >= 9


def test_export_is_reproducible_and_its_snapshot_says_so(
    specimens: list[tuple[Path, SpecimenLabels]], tmp_path: Path
) -> None:
    one = export_detection(specimens, tmp_path / "a", seed=1)
    two = export_detection(list(reversed(specimens)), tmp_path / "b", seed=1)
    other = export_detection(specimens, tmp_path / "c", seed=2)
    assert one.splits == two.splits
    assert one.snapshot["sha256"] == two.snapshot["sha256"]
    assert other.snapshot["sha256"] != one.snapshot["sha256"]
    assert one.snapshot["kind"] == "detect"
    assert one.snapshot["label_set"] == "nonvegetal"
    train = {p.stem for p in (one.root / "images" / "train").iterdir()}
    val = {p.stem for p in (one.root / "images" / "val").iterdir()}
    assert train
    assert val
    assert not train & val


def test_split_refuses_bad_input() -> None:
    with pytest.raises(TrainingDataError, match="unique"):
        split_specimens(["a", "a", "b"])
    with pytest.raises(TrainingDataError, match="at least 2"):
        split_specimens(["a"])
    with pytest.raises(TrainingDataError, match="val_fraction"):
        split_specimens(["a", "b"], 1.0)


def test_labels_for_another_image_size_are_refused(
    specimens: list[tuple[Path, SpecimenLabels]], tmp_path: Path
) -> None:
    path, specimen = specimens[0]
    wrong = SpecimenLabels(width=specimen.width + 1, height=specimen.height, labels=specimen.boxes)
    with pytest.raises(TrainingDataError, match="labels are for"):
        export_detection([(path, wrong), specimens[1]], tmp_path / "d")
