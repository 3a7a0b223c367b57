"""A real sheet with the default models' pre-annotations, before and after, side by side (the README's picture).

Each panel runs one SheetNet weight file on the sheet as a backend would (boxes at the bootstrap's score
thresholds, the plant mask tinted) and is titled with what that model learned from and its figures.

    python docs/real_sheet_picture.py SHEET.jpg --before A.safetensors "generated sheets only" \\
        --after B.safetensors "with the real sample sheets" --out docs/images/real-sheet-before-after.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog.sheetnet.runtime import SheetNetRunner
from catalog.sheetnet.spec import BOX_CLASSES, BOX_TASK_CHANNELS
from herbarium.barcodes import read_barcode
from herbarium.imaging import read_image
from herbarium.real_sheets import RealSheet
from training.bootstrap import PROFILES
from training.evaluation import predict_sheet

PANEL_HEIGHT = 1100
# The organs the real ground truth measures; stems, roots and seeds (learned from generated sheets only)
# are served too but would bury the picture.
DRAWN_ORGANS = ("leaf", "flower", "fruit")
COLOURS = {
    "barcode": (230, 25, 75), "label": (0, 130, 200), "envelope": (245, 130, 48), "colour_chart": (145, 30, 180),
    "ruler": (240, 50, 230), "stamp": (128, 0, 0), "leaf": (60, 180, 75), "flower": (255, 225, 25),
    "fruit": (170, 110, 40), "seed": (0, 0, 128), "stem": (0, 128, 128), "root": (128, 128, 0),
}  # fmt: skip


def panel(sheet: Path, weights: Path, title: str) -> Image.Image:
    thresholds = PROFILES["demo"].thresholds
    predicted = predict_sheet(SheetNetRunner.open(weights, "sheetnet"), RealSheet(sheet.stem, "", sheet), plant=True)
    picture = read_image(sheet, max_side=PANEL_HEIGHT * 2).image.convert("RGB")
    scale = PANEL_HEIGHT / picture.height
    picture = picture.resize((round(picture.width * scale), PANEL_HEIGHT), Image.Resampling.LANCZOS)
    full_scale = PANEL_HEIGHT / read_image(sheet, max_side=64).original_height
    if predicted.plant is not None:
        mask = Image.fromarray(predicted.plant.astype(np.uint8) * 255).resize(picture.size, Image.Resampling.NEAREST)
        tint = Image.new("RGB", picture.size, (0, 255, 90))
        picture = Image.composite(Image.blend(picture, tint, 0.45), picture, mask)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=16)
    task_of = {c: task for task, channels in BOX_TASK_CHANNELS.items() for c in channels}
    boxes = predicted.boxes
    assert boxes.scores is not None
    for box, cls, score in zip(boxes.boxes, boxes.classes, boxes.scores, strict=True):
        if score < thresholds[task_of[int(cls)]]:
            continue
        name = BOX_CLASSES[int(cls)]
        if task_of[int(cls)] == "detect-organs" and name not in DRAWN_ORGANS:
            continue
        text = f"{name} {score:.2f}"
        if name == "barcode":  # as the backend reads it: the bars, else the printed line
            found = read_barcode(read_image(sheet).image, (float(box[0]), float(box[1]), float(box[2]), float(box[3])))
            text += f" = {found.text}" if found is not None else " (unread)"
        x0, y0, x1, y1 = (float(v) * full_scale for v in box)
        draw.rectangle((x0, y0, x1, y1), outline=COLOURS[name], width=3)
        draw.text((x0 + 3, y0 + 2), text, fill=COLOURS[name], font=font)
    banner = Image.new("RGB", (picture.width, 40), (255, 255, 255))
    ImageDraw.Draw(banner).text((8, 10), title, fill=(0, 0, 0), font=ImageFont.load_default(size=20))
    out = Image.new("RGB", (picture.width, picture.height + 40), (255, 255, 255))
    out.paste(banner, (0, 0))
    out.paste(picture, (0, 40))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sheet", type=Path)
    parser.add_argument("--before", nargs=2, metavar=("WEIGHTS", "TITLE"), required=True)
    parser.add_argument("--after", nargs=2, metavar=("WEIGHTS", "TITLE"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    left = panel(args.sheet, Path(args.before[0]), args.before[1])
    right = panel(args.sheet, Path(args.after[0]), args.after[1])
    both = Image.new("RGB", (left.width + right.width + 16, max(left.height, right.height)), (255, 255, 255))
    both.paste(left, (0, 0))
    both.paste(right, (left.width + 16, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    both.save(args.out, quality=85)
    print(f"wrote {args.out} ({both.width}x{both.height})")


if __name__ == "__main__":
    main()
