"""The largest sheet: 6900 x 9900 px, written and checked like a small one."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from herbarium.synth import generate_sheet, save_sheet


def test_largest_sheet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for sub in ("images", "masks", "instance-masks"):
        (tmp_path / sub).mkdir()
    start = time.perf_counter()
    sheet = generate_sheet(77, 6900, 9900)
    record = save_sheet(sheet, tmp_path)
    seconds = time.perf_counter() - start
    assert seconds < 30, f"a 6900x9900 sheet took {seconds:.1f} s"
    assert sheet.image.size == (6900, 9900)
    for box in sheet.boxes:
        assert box.x >= 0
        assert box.x + box.width <= 6900
        assert box.y >= 0
        assert box.y + box.height <= 9900
    union = np.zeros_like(sheet.plant_mask)
    for mask in sheet.instance_masks:
        union |= mask
    assert sheet.plant_mask.any()
    assert np.array_equal(union, sheet.plant_mask)
    # Decode around the barcode only: the same JPEG pixels, without scanning 68 megapixels.
    box = next(b for b in sheet.boxes if b.label == "barcode")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # not for the rest of the session
    with Image.open(tmp_path / record.image) as image:
        crop = image.crop((box.x - 50, box.y - 50, box.x + box.width + 50, box.y + box.height + 50))
    assert sheet.catalog_number in [r.text for r in zxingcpp.read_barcodes(np.asarray(crop))]
