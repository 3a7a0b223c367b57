"""Drawing real-sheet ground truth by eye: render a sheet (or a crop) with a pixel grid and its boxes, tighten boxes.

Per-sheet files (``<name>.json``) hold boxes in pixels of the upright (EXIF-oriented) image:
{"image": "<collection>/images/<file>", "boxes": [{"label": "leaf", "xyxy": [x0, y0, x1, y1]}, ...],
 "exhaustive": [...classes boxed completely...], "notes": "..."}

    python tools/ann.py show SHEET.json [--crop x0,y0,x1,y1] [--grid 50] [--only leaf,flower] --out view.png
    python tools/ann.py tighten SHEET.json INDEX [INDEX ...]   # shrink boxes to the ink/plant inside them
    python tools/ann.py new IMAGE_PATH SHEET.json             # a new file for an image (with zxing barcodes)
    python tools/ann.py export DIR                            # every DIR/*.json -> herbarium/real_sheets/annotations/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "herbarium-samples"
COLOURS = {
    "barcode": (255, 0, 255),
    "label": (0, 90, 255),
    "envelope": (0, 200, 200),
    "colour_chart": (255, 140, 0),
    "ruler": (160, 0, 255),
    "stamp": (255, 0, 0),
    "leaf": (0, 170, 0),
    "flower": (255, 215, 0),
    "fruit": (200, 60, 0),
    "seed": (120, 80, 0),
    "stem": (0, 100, 0),
    "root": (110, 70, 40),
}
CLASSES = tuple(COLOURS)


def load_image(rel: str) -> Image.Image:
    with Image.open(SAMPLES / rel) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf", size)
    except OSError:
        return ImageFont.load_default(size)


def show(
    sheet: dict, crop: tuple[int, int, int, int] | None, grid: int, only: set[str] | None, out: Path, target: int
) -> None:
    image = load_image(sheet["image"])
    x0, y0, x1, y1 = crop or (0, 0, image.width, image.height)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(image.width, x1), min(image.height, y1)
    view = image.crop((x0, y0, x1, y1))
    scale = target / max(view.size)
    view = view.resize((round(view.width * scale), round(view.height * scale)), Image.Resampling.LANCZOS)
    margin = 40
    canvas = Image.new("RGB", (view.width + margin, view.height + margin), (255, 255, 255))
    canvas.paste(view, (margin, margin))
    draw = ImageDraw.Draw(canvas)
    small = font(11)
    first = (x0 // grid + 1) * grid
    for gx in range(first, x1, grid):
        px = margin + (gx - x0) * scale
        major = gx % (grid * 2) == 0
        draw.line([(px, margin), (px, canvas.height)], fill=(0, 160, 255) if major else (150, 210, 255), width=1)
        if major:
            draw.text((px - 10, 2 + (14 if (gx // (grid * 2)) % 2 else 0)), str(gx), fill=(0, 0, 0), font=small)
    first = (y0 // grid + 1) * grid
    for gy in range(first, y1, grid):
        py = margin + (gy - y0) * scale
        major = gy % (grid * 2) == 0
        draw.line([(margin, py), (canvas.width, py)], fill=(0, 160, 255) if major else (150, 210, 255), width=1)
        if major:
            draw.text((1, py - 6), str(gy), fill=(0, 0, 0), font=small)
    label_font = font(13)
    for index, box in enumerate(sheet.get("boxes", [])):
        if only and box["label"] not in only:
            continue
        bx0, by0, bx1, by1 = box["xyxy"]
        if bx1 < x0 or by1 < y0 or bx0 > x1 or by0 > y1:
            continue
        rect = [
            margin + (bx0 - x0) * scale,
            margin + (by0 - y0) * scale,
            margin + (bx1 - x0) * scale,
            margin + (by1 - y0) * scale,
        ]
        colour = COLOURS.get(box["label"], (0, 0, 0))
        draw.rectangle(rect, outline=colour, width=2)
        tag = f"{index}:{box['label'][:4]}"
        tx, ty = max(margin, rect[0]), max(margin, rect[1])
        draw.rectangle([tx, ty, tx + 8 * len(tag), ty + 15], fill=colour)
        draw.text((tx + 1, ty), tag, fill=(255, 255, 255), font=label_font)
    canvas.save(out)
    print(f"{out}: view of {sheet['image']} x {x0}-{x1}, y {y0}-{y1} at {scale:.2f} screen px per image px")


def tighten(sheet: dict, index: int, pad: int = 1) -> tuple[int, int, int, int]:
    """Shrink a box to the bounding box of what differs from the paper along its edge (never grows it)."""
    image = np.asarray(load_image(sheet["image"]), dtype=np.float32)
    x0, y0, x1, y1 = (round(v) for v in sheet["boxes"][index]["xyxy"])
    patch = image[y0:y1, x0:x1]
    edge = np.concatenate([patch[0], patch[-1], patch[:, 0], patch[:, -1]])
    paper = np.median(edge, axis=0)
    distance = np.abs(patch - paper).sum(axis=2)
    ink = distance > max(45.0, float(np.percentile(np.abs(edge - paper).sum(axis=1), 90)) * 1.5)
    rows, cols = np.flatnonzero(ink.sum(axis=1) >= 2), np.flatnonzero(ink.sum(axis=0) >= 2)
    if rows.size == 0 or cols.size == 0:
        return x0, y0, x1, y1
    return (
        int(x0 + max(0, cols[0] - pad)),
        int(y0 + max(0, rows[0] - pad)),
        int(x0 + min(patch.shape[1], cols[-1] + 1 + pad)),
        int(y0 + min(patch.shape[0], rows[-1] + 1 + pad)),
    )


def barcodes(rel: str) -> list[dict]:
    import zxingcpp

    image = load_image(rel)
    found = []
    for scale in (1.0, 2.0):
        picture = image if scale == 1 else image.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS)
        for result in zxingcpp.read_barcodes(picture):
            p = result.position
            xs = [p.top_left.x, p.top_right.x, p.bottom_left.x, p.bottom_right.x]
            ys = [p.top_left.y, p.top_right.y, p.bottom_left.y, p.bottom_right.y]
            box = [min(xs) / scale, min(ys) / scale, max(xs) / scale, max(ys) / scale]
            found.append(
                {
                    "label": "barcode",
                    "xyxy": [round(v) for v in box],
                    "value": result.text,
                    "format": str(result.format),
                }
            )
        if found:
            break
    return found


def export(folder: Path) -> None:
    """Per-sheet drafts -> one Label Studio task list per collection, written with PlantAI's own converter."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from herbarium.labels.labelstudio import as_labelstudio
    from herbarium.labels.model import BoxLabel, LabelState, SpecimenLabels
    from herbarium.real_sheets import ANNOTATIONS_DIR
    from herbarium.taxonomy import NONVEGETAL

    tasks: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*.json")):
        sheet = json.loads(path.read_text())
        labels = []
        for box in sheet["boxes"]:
            x0, y0, x1, y1 = box["xyxy"]
            control = "nonvegetal" if box["label"] in NONVEGETAL.classes else "organs"
            comment = box.get("value")
            labels.append(
                BoxLabel(
                    label=box["label"],
                    x=x0,
                    y=y0,
                    width=x1 - x0,
                    height=y1 - y0,
                    control=control,
                    state=LabelState.VALIDATED,
                    comment=comment,
                )
            )
        specimen = SpecimenLabels(width=sheet["width"], height=sheet["height"], labels=labels)
        task = {
            "data": {"image": sheet["image"]},
            "meta": {
                "exhaustive": sorted(sheet["exhaustive"]),
                "notes": sheet.get("notes", ""),
                "width": sheet["width"],
                "height": sheet["height"],
            },
            "annotations": [{"result": as_labelstudio(specimen, to_name="image"), "ground_truth": True}],
        }
        tasks.setdefault(sheet["image"].split("/")[0], []).append(task)
    ANNOTATIONS_DIR.mkdir(parents=True, exist_ok=True)
    for collection, items in tasks.items():
        out = ANNOTATIONS_DIR / f"{collection}.json"
        out.write_text(json.dumps(sorted(items, key=lambda t: t["data"]["image"]), indent=1) + "\n")
        print(f"{out}: {len(items)} sheets, {sum(len(t['annotations'][0]['result']) for t in items)} results")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("show")
    s.add_argument("sheet", type=Path)
    s.add_argument("--crop")
    s.add_argument("--grid", type=int, default=50)
    s.add_argument("--only")
    s.add_argument("--size", type=int, default=1100)
    s.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("tighten")
    t.add_argument("sheet", type=Path)
    t.add_argument("indexes", type=int, nargs="+")
    e = sub.add_parser("export")
    e.add_argument("folder", type=Path)
    n = sub.add_parser("new")
    n.add_argument("image")
    n.add_argument("sheet", type=Path)
    args = parser.parse_args(argv)
    if args.command == "new":
        rel = str(Path(args.image).resolve().relative_to(SAMPLES))
        image = load_image(rel)
        sheet = {
            "image": rel,
            "width": image.width,
            "height": image.height,
            "boxes": barcodes(rel),
            "exhaustive": [],
            "notes": "",
        }
        args.sheet.write_text(json.dumps(sheet, indent=1) + "\n")
        print(f"{args.sheet}: {image.width}x{image.height}, {len(sheet['boxes'])} barcode(s) read by zxing")
        return
    if args.command == "export":
        export(args.folder)
        return
    sheet = json.loads(args.sheet.read_text())
    for box in sheet.get("boxes", []):
        if box["label"] not in CLASSES:
            sys.exit(f"unknown label {box['label']!r}; expected one of {', '.join(CLASSES)}")
    if args.command == "show":
        crop = tuple(int(v) for v in args.crop.split(",")) if args.crop else None
        only = set(args.only.split(",")) if args.only else None
        show(sheet, crop, args.grid, only, args.out, args.size)
    else:
        for index in args.indexes:
            before = sheet["boxes"][index]["xyxy"]
            sheet["boxes"][index]["xyxy"] = list(tighten(sheet, index))
            print(index, before, "->", sheet["boxes"][index]["xyxy"])
        args.sheet.write_text(json.dumps(sheet, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
