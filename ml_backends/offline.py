"""``plantai predict``: a catalog model on local images, through the backend's own adapters.

Each image gets a Label Studio task file (its data and the prediction, importable as is) and,
for segmentation models, a 0/255 PNG plant mask at the image's size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from catalog.predictors import load_model
from catalog.registry import Catalog
from catalog.tasks import resolve_task
from herbarium.imaging import ImageReadError, read_image
from herbarium.labels import MaskLabel
from herbarium.labels.labelstudio import as_labelstudio
from ml_backends.adapters import Tiling, adapter_for, organ_prompter

OUTPUT_CONTROLS = {"box": "label", "polygon": "outline", "mask": "mask"}


@dataclass(frozen=True)
class PredictedImage:
    image: Path
    task_file: Path | None
    mask_file: Path | None
    regions: int
    error: str | None = None


def predict_files(
    model_ref: str,
    images: Iterable[Path],
    out_dir: Path,
    catalog: Catalog | None = None,
    conf: float | None = None,
    tiling: Tiling | None = None,
    progress: Callable[[PredictedImage], None] | None = None,
) -> list[PredictedImage]:
    """Predict every image with ``model_ref`` (``name`` = production, or ``name@version``).

    ``conf`` None: the version's own score threshold (calibrated on its held-out set, else 0.25).
    """
    catalog = catalog or Catalog.open()
    loaded = load_model(model_ref, catalog=catalog)
    conf = loaded.score_threshold if conf is None else conf
    prompter = organ_prompter(catalog, conf) if loaded.framework == "sam" else None  # SAM needs box prompts
    adapter = adapter_for(loaded, resolve_task(loaded.task).kind, conf=conf, prompter=prompter)
    out_dir.mkdir(parents=True, exist_ok=True)
    done: list[PredictedImage] = []
    for path in images:
        try:
            picture = read_image(path, max_side=adapter.decode_side(tiling))
        except ImageReadError as exc:
            outcome = PredictedImage(path, None, None, 0, error=str(exc))
        else:
            [labels] = adapter.predict([picture], tiling)
            scores = [label.score for label in labels if label.score is not None]
            task = {
                "data": {"image": str(path.resolve())},
                "predictions": [
                    {
                        "model_version": loaded.ref,
                        "score": sum(scores) / len(scores) if scores else 0.0,
                        "result": as_labelstudio(labels, default_controls=OUTPUT_CONTROLS),
                    }
                ],
            }
            task_file = out_dir / f"{path.stem}.json"
            task_file.write_text(json.dumps(task))
            mask_file = None
            masks = [label.mask for label in labels.labels if isinstance(label, MaskLabel)]
            if loaded.task == "segment-plant":
                plant = np.zeros((labels.height, labels.width), dtype=bool)
                for mask in masks:
                    plant |= mask
                mask_file = out_dir / f"{path.stem}.mask.png"
                Image.fromarray(plant.astype(np.uint8) * 255).save(mask_file)
            outcome = PredictedImage(path, task_file, mask_file, len(labels.labels))
        done.append(outcome)
        if progress is not None:
            progress(outcome)
    return done
