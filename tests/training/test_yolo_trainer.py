"""Training on exported data sets: quiet, offline, and models the catalog accepts and that detect."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from catalog.predictors import load_model
from catalog.registry import Catalog
from herbarium.labels.yolo_dataset import export_classification, export_detection, synthetic_specimens
from herbarium.synth import generate_sheet, write_sheets
from herbarium.taxonomy import NONVEGETAL, PLANT, TRAITS
from training.yolo_trainer import TrainingError, train_yolo

if TYPE_CHECKING:
    from training.synthetic_yolo import TrainedModels


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_trained_models_register_and_the_detector_finds_elements(trained_models: TrainedModels, tmp_path: Path) -> None:
    snapshot = trained_models.snapshots["detect"]
    with Catalog.open(url=f"sqlite:///{tmp_path / 'catalog.db'}", home=tmp_path) as catalog:
        detector = catalog.register(
            "nonvegetal-tiny",
            "detect-nonvegetal",
            trained_models.detect,
            metrics={"dataset": f"synth-val-{snapshot['sha256'][:12]}", **trained_models.metrics["detect"]},
        )
        segmenter = catalog.register("plant-tiny", "segment-plant", trained_models.segment)
        classifier = catalog.register("phenology-tiny", "phenology", trained_models.classify)
        assert segmenter.labels == PLANT.classes
        assert classifier.labels == TRAITS["phenology"].classes

        loaded = load_model(detector.ref, catalog=catalog)
        assert loaded.labels == NONVEGETAL.classes
        found, matched = 0, 0
        for seed in trained_models.val_seeds:  # sheets the detector never trained on
            sheet = generate_sheet(seed, trained_models.width, trained_models.height)
            truths = [b for b in sheet.boxes if b.group == NONVEGETAL.name]
            result = loaded.predict(sheet.image, conf=0.1)[0]
            for xyxy, cls in zip(result.boxes.xyxy.tolist(), result.boxes.cls.tolist(), strict=True):
                found += 1
                name = NONVEGETAL.classes[int(cls)]
                matched += any(
                    t.label == name and _iou(tuple(xyxy), (t.x, t.y, t.x + t.width, t.y + t.height)) >= 0.5
                    for t in truths
                )
        assert found > 0, "the detector found nothing at conf 0.1 on its validation sheets"
        assert matched > 0, f"none of {found} detections overlaps a true box of its class (IoU >= 0.5)"

        sheet = generate_sheet(trained_models.val_seeds[0], trained_models.width, trained_models.height)
        probs = load_model(classifier.ref, catalog=catalog).predict(sheet.image)[0].probs
        assert len(probs.data) == len(TRAITS["phenology"].classes)
    assert trained_models.metrics["detect"]["mAP50"] > 0.05


@pytest.fixture(scope="module")
def tiny_sheets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-sheets")
    write_sheets(root, n=6, size=512, seed=11)
    return root


def test_train_yolo_logs_to_a_file_not_stdout(
    tiny_sheets: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    dataset = export_classification(synthetic_specimens(tiny_sheets, masks=False), tmp_path / "cls", "phenology")
    capfd.readouterr()
    seen: list[tuple[int, int]] = []
    trained = train_yolo(
        dataset, "classify", tmp_path / "run", epochs=1, imgsz=64, batch=5, progress=lambda *p: seen.append(p)
    )
    out = capfd.readouterr().out
    assert out == ""
    assert seen == [(1, 1)]
    assert trained.path.is_file()
    assert trained.path.suffix == ".pt"
    assert trained.names == TRAITS["phenology"].classes
    assert 0.0 <= trained.metrics["top1"] <= 1.0
    assert "epoch" in trained.log.read_text().lower()


def test_train_yolo_refuses_a_mismatched_request(tiny_sheets: Path, tmp_path: Path) -> None:
    dataset = export_detection(synthetic_specimens(tiny_sheets, masks=False), tmp_path / "det")
    with pytest.raises(TrainingError, match="detect data set"):
        train_yolo(dataset, "segment", tmp_path / "run", epochs=1, imgsz=32, batch=2)
    with pytest.raises(TrainingError, match="kind"):
        train_yolo(dataset, "track", tmp_path / "run", epochs=1, imgsz=32, batch=2)  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match="does not exist"):
        train_yolo(tmp_path / "nowhere.yaml", "detect", tmp_path / "run", epochs=1, imgsz=32, batch=2)
    with pytest.raises(TrainingError, match="epochs"):
        train_yolo(dataset, "detect", tmp_path / "run", epochs=0, imgsz=32, batch=2)
