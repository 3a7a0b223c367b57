"""The default models on real sheets they never trained on: k-fold cross-validation by sheet, and the loop.

(1) Cross-validation. The real sample sheets (``../shared/data/herbarium-samples``, or ``--samples``)
    are split into ``--folds`` folds by sheet, every collection spread over all folds. For each fold,
    a SheetNet trains by the bootstrap's own recipe (``--profile``, the demo's by default: real sheets
    of the other folds, composites of them, generated sheets) and is measured on the fold's sheets. Every
    sheet is scored once, by the model that did not see it; average precision is pooled over all sheets.
    Beside each figure, a trivial baseline from the same run: the plant mask by thresholding the paper
    colour (Otsu), boxes at each class's median place and size on the training sheets, and the majority
    phenology class of the training sheets. Barcodes: the values a person reads on the sheet (the printed
    line; ``herbarium/real_sheets/annotations/barcode-values.json``) or zxing-cpp decodes in the true box,
    against those the backend reads (bars, else printed line) in the barcode boxes it shows.
(2) The correction loop, as a herbarium whose sheets the defaults never saw would run it. Version 1 is
    the model the bootstrap makes without the real sheets (the ``--floor`` model, trained first when
    missing), in a temporary catalog. Half the boxed real sheets (every other one by name) go into a
    real Label Studio; the team's boxes stand in for the experts (validated annotations); ``retrain``
    collects them and fine-tunes through the gate; version 1 and the candidate (version 2, promoted or
    not) are measured on the other half: ``loop_gain`` is the difference of their non-vegetal mAP50.

Trained folds are kept under ``--out`` and reused by a rerun with the same settings. Last line:
``RESULT plant_iou=<x> nonveg_map50=<y> leaf_ap50=<z> label_ap50=<l> fertile_acc=<f>
barcode_read=<k>/<n> loop_gain=<g>``; the full per-sheet table goes to ``<out>/real_sheets.json``.

    python bench/real_sheets.py [--folds 3] [--profile demo] [--samples DIR] [--out DIR] [--no-loop] [--floor]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from catalog.sheetnet import network  # noqa: E402
from catalog.sheetnet.runtime import SheetNetRunner  # noqa: E402
from catalog.sheetnet.spec import BOX_CLASSES, BOX_TASK_CHANNELS, SheetNetSpec  # noqa: E402
from herbarium.real_sheets import RealSheet, default_samples_dir, load_real_sheets  # noqa: E402
from training.bootstrap import (  # noqa: E402
    PROFILES,
    Profile,
    calibrate_box_scales,
    majority_fertile,
    train_default_sheetnet,
)
from training.evaluation import RealSheetScores, evaluate, evaluate_folds  # noqa: E402
from training.metrics import SheetBoxes, detection_scores  # noqa: E402
from training.pools import build_pools  # noqa: E402
from training.sheetnet_trainer import fit_trait_head  # noqa: E402

NONVEGETAL_TASK = "detect-nonvegetal"


def folds_of(sheets: Sequence[RealSheet], k: int) -> list[list[RealSheet]]:
    """Sheet i of each collection (in name order) goes to fold i mod k."""
    folds: list[list[RealSheet]] = [[] for _ in range(k)]
    for collection in sorted({s.collection for s in sheets}):
        members = sorted((s for s in sheets if s.collection == collection), key=lambda s: s.name)
        for i, sheet in enumerate(members):
            folds[i % k].append(sheet)
    return folds


def _fold_model(profile: Profile, training: Sequence[RealSheet], path: Path) -> network.SheetNet:
    if path.is_file():
        print(f"  reusing {path}", flush=True)
        net = network.load(path)
        if training and not net.spec.box_scales:  # trained before the bootstrap calibrated its boxes
            calibrate_box_scales(net, training, lambda done, total: None)
            network.save(net, path)
            print(f"  box scales measured on the fold's training sheets: {dict(net.spec.box_scales)}", flush=True)
        if net.spec.trait_features != SheetNetSpec().trait_features:  # trained before the trait head's features changed
            net = _refit_trait_head(profile, net, training)
            network.save(net, path)
        return net
    last = [""]

    def progress(stage: str, done: int, total: int) -> None:
        if stage != last[0] or done == total:
            last[0] = stage
            print(f"  {stage} {done}/{total}", flush=True)

    started = time.perf_counter()
    trained = train_default_sheetnet(profile, training, progress)
    print(f"  trained in {time.perf_counter() - started:.0f} s ({trained.outcome.iterations} iterations)", flush=True)
    network.save(trained.net, path)
    return trained.net


def _refit_trait_head(profile: Profile, net: network.SheetNet, training: Sequence[RealSheet]) -> network.SheetNet:
    """``net`` with the trait head the recipe fits today: every other weight kept, the trait refitted on the
    same trait pool (the bootstrap fits it last, on whole sheets, leaving the rest of the net untouched)."""
    spec = replace(net.spec, trait_features=SheetNetSpec().trait_features)
    refitted = network.build(spec, pretrained=True)
    kept = {k: v for k, v in net.state_dict().items() if not k.startswith("trait.")}
    missing, unexpected = refitted.load_state_dict(kept, strict=False)
    if unexpected or any(not k.startswith(("trait.", "trait_encoder.")) for k in missing):
        raise RuntimeError(f"cannot carry the fold's weights over: missing {missing}, unexpected {unexpected}")
    pools = build_pools(training, spec, profile.pools, seed=0)
    fit = fit_trait_head(refitted, pools.trait)
    print(
        f"  trait head refitted ({spec.trait_features} features) on {fit.sheets} sheets: cross-validated "
        f"{fit.probe_accuracy:.3f} vs prior {fit.prior_accuracy:.3f} -> {'prior' if fit.uses_prior else 'probe'}",
        flush=True,
    )
    return refitted.eval()


def _prior_boxes(training: Sequence[RealSheet]) -> dict[int, np.ndarray[Any, Any]]:
    """Each class's median box on the training sheets, as a share of the sheet's width and height."""
    shares: dict[int, list[tuple[float, float, float, float]]] = {}
    for sheet in training:
        if sheet.boxes is None:
            continue
        w, h = sheet.boxes.width, sheet.boxes.height
        for box in sheet.boxes.boxes:
            if box.label in BOX_CLASSES:
                shares.setdefault(BOX_CLASSES.index(box.label), []).append(
                    (box.x / w, box.y / h, (box.x + box.width) / w, (box.y + box.height) / h)
                )
    return {c: np.median(np.asarray(v), axis=0) for c, v in shares.items()}


def _baseline_boxes(
    folds: Sequence[Sequence[RealSheet]], sheets: Sequence[RealSheet], floor: bool = False
) -> dict[str, float]:
    """AP50 of the trivial detector: one box per class at the class's median place, on every held-out sheet
    (the median over the other folds' sheets; over all sheets for the floor, which has no training sheets)."""
    truths, predictions, knowns = [], [], []
    for fold in folds:
        prior = _prior_boxes(sheets if floor else [s for s in sheets if s not in fold])
        for sheet in fold:
            if sheet.boxes is None:
                continue
            w, h = sheet.boxes.width, sheet.boxes.height
            truth_rows = [
                (b.x, b.y, b.x + b.width, b.y + b.height) for b in sheet.boxes.boxes if b.label in BOX_CLASSES
            ]
            truth_classes = [BOX_CLASSES.index(b.label) for b in sheet.boxes.boxes if b.label in BOX_CLASSES]
            truths.append(
                SheetBoxes(np.asarray(truth_rows, np.float32).reshape(-1, 4), np.asarray(truth_classes, np.int64))
            )
            classes = sorted(prior)
            boxes = np.asarray([prior[c] * [w, h, w, h] for c in classes], np.float32).reshape(-1, 4)
            predictions.append(SheetBoxes(boxes, np.asarray(classes, np.int64), np.ones(len(classes), np.float32)))
            knowns.append(np.array([name in sheet.exhaustive for name in BOX_CLASSES]))
    nonveg = np.array([c in BOX_TASK_CHANNELS[NONVEGETAL_TASK] for c in range(len(BOX_CLASSES))])
    non = detection_scores(truths, predictions, [k & nonveg for k in knowns], BOX_CLASSES)
    org = detection_scores(truths, predictions, [k & ~nonveg for k in knowns], BOX_CLASSES)
    return {"nonvegetal_mAP50": non.map50, "leaf_AP50": org.ap50.get("leaf", float("nan"))}


def _print_sheets(scores: RealSheetScores) -> None:
    def cell(value: object) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    columns = (
        "name", "collection", "plant_iou", "baseline_plant_iou", "nonvegetal_recall50", "leaf_recall50",
        "main_label_iou", "fertile_truth", "fertile_predicted",
    )  # fmt: skip
    print("\t".join(columns))
    for sheet in sorted(scores.sheets, key=lambda s: (s.collection, s.name)):
        print("\t".join(cell(getattr(sheet, c)) for c in columns))


def correction_round(v1_path: Path, sheets: Sequence[RealSheet], samples: Path, work: Path) -> dict[str, Any]:
    """Half the boxed ``sheets`` corrected in a real Label Studio, retrained through the gate, measured on the
    other half."""
    from catalog.registry import Catalog
    from connectors.label_config import IMAGE_NAME, REVIEW_CONTROL
    from connectors.labelstudio_client import label_studio_client
    from connectors.projects import CATALOG_NUMBER_KEY, SpecimenTask, create_project, import_specimens
    from herbarium.labels.labelstudio import as_labelstudio
    from local_services.labelstudio import LabelStudioServer, LocalLabelStudio
    from training.retraining import retrain

    boxed = sorted((s for s in sheets if s.boxes is not None and "label" in s.exhaustive), key=lambda s: s.name)
    corrected, measured = boxed[0::2], boxed[1::2]
    validated = {"from_name": REVIEW_CONTROL, "to_name": IMAGE_NAME, "type": "choices",
                 "value": {"choices": ["validated"]}}  # fmt: skip
    catalog = Catalog.open(home=work / "catalog")
    v1 = catalog.register(
        "nonvegetal-detector", NONVEGETAL_TASK, v1_path, metrics={"dataset": "bench-loop"}, promote=True
    )
    root = samples.parent  # Label Studio serves files below its document root, never the root itself
    server = LabelStudioServer(data_dir=work / "label-studio", document_root=root)
    with LocalLabelStudio(server, work / "label-studio-template") as label_studio:
        client = label_studio_client(label_studio.url, label_studio.token)
        project = create_project(client, "Real sheets: correction round", samples, root)
        import_specimens(client, project.id, [SpecimenTask(s.name, s.image, {}) for s in corrected], root)
        by_name = {s.name: s for s in corrected}
        for task in client.tasks.list(project=project.id, fields="all"):
            sheet = by_name[str(task.data[CATALOG_NUMBER_KEY])]
            assert sheet.boxes is not None
            client.annotations.create(id=task.id, result=[*as_labelstudio(sheet.boxes, to_name=IMAGE_NAME), validated])
        print(f"  {len(corrected)} sheets corrected in Label Studio; retraining", flush=True)
        result = retrain(catalog, "nonvegetal-detector", client, [project.id], document_root=root)
    candidate = catalog.version("nonvegetal-detector", str(result.candidate).split("@")[1])
    before = evaluate(SheetNetRunner.open(catalog.artefact_path(v1), "sheetnet"), measured)
    after = evaluate(SheetNetRunner.open(catalog.artefact_path(candidate), "sheetnet"), measured)
    assert before.nonvegetal is not None
    assert after.nonvegetal is not None
    return {
        "corrected": [s.name for s in corrected],
        "measured": [s.name for s in measured],
        "status": result.status,
        "gate": {"metric": result.metric, "candidate": result.candidate_score, "production": result.production_score},
        "v1_nonvegetal_mAP50": before.nonvegetal.map50,
        "v2_nonvegetal_mAP50": after.nonvegetal.map50,
        "gain": after.nonvegetal.map50 - before.nonvegetal.map50,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    parser.add_argument("--samples", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".cache" / "bench-real-sheets")
    parser.add_argument("--no-loop", action="store_true", help="skip the Label Studio correction round")
    parser.add_argument(
        "--floor", action="store_true",
        help="what PlantAI reaches without the real sheets: one model trained on generated sheets only, measured on "
        "every real sheet (no folds, no loop)",
    )  # fmt: skip
    args = parser.parse_args()
    samples = args.samples or default_samples_dir()
    sheets = load_real_sheets(samples)
    if samples is None or not sheets:  # `make bench` on a machine without them goes on to the next bench
        print("skipped: no real sample sheets here (give --samples or set PLANTAI_REAL_SAMPLES)")
        return
    profile = PROFILES[args.profile]
    out = args.out / (f"{args.profile}-floor" if args.floor else f"{args.profile}-k{args.folds}")
    out.mkdir(parents=True, exist_ok=True)
    folds = [list(sheets)] if args.floor else folds_of(sheets, args.folds)
    paths = []
    for k, fold in enumerate(folds):
        training = [] if args.floor else [s for s in sheets if s not in fold]
        print(f"fold {k + 1}/{len(folds)}: {len(fold)} held-out, {len(training)} real training sheets", flush=True)
        paths.append(out / f"fold-{k}.safetensors")
        _fold_model(profile, training, paths[-1])
    runners = [SheetNetRunner.open(path, "sheetnet") for path in paths]
    print("measuring every sheet with the model that did not see it", flush=True)
    scores = evaluate_folds(
        list(zip(runners, folds, strict=True)), dict(profile.thresholds), fertile_majority=majority_fertile(sheets)
    )
    _print_sheets(scores)
    baseline = _baseline_boxes(folds, sheets, args.floor)
    assert scores.nonvegetal is not None
    assert scores.organs is not None
    barcodes = sum(s.barcodes for s in scores.sheets)
    readable = sum(s.barcodes_readable for s in scores.sheets)
    read = sum(s.barcodes_read for s in scores.sheets)
    plant, paper = scores.mean("plant_iou") or float("nan"), scores.mean("baseline_plant_iou") or float("nan")
    print(f"plant-mask IoU {plant:.3f}  (paper-colour threshold {paper:.3f})")
    print(f"non-vegetal mAP50 {scores.nonvegetal.map50:.3f}  (median-box baseline {baseline['nonvegetal_mAP50']:.3f})")
    print("  AP50 per class: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.nonvegetal.ap50.items()))
    leaf = scores.organs.ap50.get("leaf", float("nan"))
    print(f"leaf AP50 {leaf:.3f}  (median-box baseline {baseline['leaf_AP50']:.3f})")
    print("  AP50 per organ: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.organs.ap50.items()))
    print(f"UNB main-label AP50 {scores.main_label_ap50:.3f}")
    print(f"fertile accuracy {scores.fertile_accuracy:.3f}  (majority class {scores.fertile_baseline:.3f})")
    print(
        f"barcodes: {barcodes} boxed, {readable} readable (by a person, or by zxing-cpp in the true box), "
        f"{read} read the same in a box the detector shows"
    )
    loop: dict[str, Any] = {}
    if not (args.no_loop or args.floor):
        print("correction round: half the boxed real sheets corrected, from the model without them", flush=True)
        floor = args.out / f"{args.profile}-floor" / "fold-0.safetensors"  # the --floor run's model, shared
        floor.parent.mkdir(parents=True, exist_ok=True)
        _fold_model(profile, [], floor)
        with tempfile.TemporaryDirectory(prefix="plantai-loop-") as work:
            os.environ["PLANTAI_HOME"] = str(Path(work) / "home")
            loop = correction_round(floor, sheets, Path(samples).resolve(), Path(work))
        print(f"  {loop['status']}: non-vegetal mAP50 on {len(loop['measured'])} other sheets "
              f"{loop['v1_nonvegetal_mAP50']:.3f} -> {loop['v2_nonvegetal_mAP50']:.3f}")  # fmt: skip
    report = {
        "profile": args.profile, "folds": 0 if args.floor else args.folds, **scores.to_dict(), "baseline": baseline,
        "loop": loop,
    }  # fmt: skip
    (out / "real_sheets.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    gain = f"{loop['gain']:.3f}" if loop else "nan"
    print(
        f"RESULT plant_iou={plant:.3f} nonveg_map50={scores.nonvegetal.map50:.3f} "
        f"leaf_ap50={leaf:.3f} label_ap50={scores.main_label_ap50:.3f} "
        f"fertile_acc={scores.fertile_accuracy:.3f} barcode_read={read}/{readable} loop_gain={gain}"
    )


if __name__ == "__main__":
    main()
