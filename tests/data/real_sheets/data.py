"""A tiny samples folder in the layout of ../shared/data/herbarium-samples, with one annotation file.

python -m tests.data.real_sheets.data OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

from herbarium.labels.labelstudio import as_labelstudio
from herbarium.labels.model import BoxLabel, SpecimenLabels

PHENOLOGY = {
    "10": "Specimen has flowers",
    "11": "No reproductive structures seen on specimen",
    "12": "Specimen is reproductive",
}


def write_samples(root: Path) -> Path:
    (root / "plant-masks" / "images").mkdir(parents=True)
    (root / "plant-masks" / "masks").mkdir()
    Image.new("RGB", (60, 80), (240, 235, 220)).save(root / "plant-masks" / "images" / "m1.jpg")
    Image.new("L", (60, 80), 0).save(root / "plant-masks" / "masks" / "m1.png")
    (root / "unb" / "images").mkdir(parents=True)
    rows = []
    for number, text in PHENOLOGY.items():
        Image.new("RGB", (80, 100), (240, 235, 220)).save(root / "unb" / "images" / f"u-{number}.jpg")
        row = [""] * 60
        row[1], row[36] = number, text
        rows.append(",".join(row))
    (root / "unb" / "records.csv").write_text("\n".join(rows) + "\n")
    (root / "unb" / "label-boxes.json").write_text(json.dumps({"u-10": {"label": [30, 60, 70, 90], "size": [80, 100]}}))
    labels = SpecimenLabels(
        width=80,
        height=100,
        labels=[
            BoxLabel(label="label", x=30, y=60, width=40, height=30, control="nonvegetal"),
            BoxLabel(label="leaf", x=5, y=5, width=10, height=20, control="organs"),
        ],
    )
    task = {
        "data": {"image": "unb/images/u-10.jpg"},
        "meta": {"exhaustive": ["barcode", "label"], "notes": "", "width": 80, "height": 100},
        "annotations": [{"result": as_labelstudio(labels, to_name="image"), "ground_truth": True}],
    }
    (root / "annotations").mkdir()
    (root / "annotations" / "unb.json").write_text(json.dumps([task]))
    return root


if __name__ == "__main__":
    print(write_samples(Path(sys.argv[1])))
