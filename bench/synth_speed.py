"""Speed of ``write_sheets`` at 1024 px beside the I/O floor, measured in the same process.

Baseline: encode and write a blank JPEG of the same size and quality N times, the least any
writer of N sheets must pay. Last line: ``RESULT sheets_per_s=<x> baseline_per_s=<y> ratio=<r>``.

    python bench/synth_speed.py [--n 50] [--size 1024]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from PIL import Image

from herbarium.synth import parse_size, write_sheets
from herbarium.synth.dataset import JPEG_QUALITY


def baseline(out: Path, n: int, width: int, height: int) -> float:
    """Blank JPEGs of the sheet size per second (new image each time, as a generator would have)."""
    start = time.perf_counter()
    for i in range(n):
        Image.new("RGB", (width, height), (236, 228, 205)).save(out / f"blank_{i}.jpg", quality=JPEG_QUALITY)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="sheets to time (default 50)")
    parser.add_argument("--size", default="1024", help="long side or WIDTHxHEIGHT (default 1024)")
    args = parser.parse_args()
    width, height = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        root = Path(tmp)
        write_sheets(root / "warm-up", 2, (width, height), seed=10**6)  # fonts and code paths loaded
        blank_dir = root / "blank"
        blank_dir.mkdir()
        floor = baseline(blank_dir, args.n, width, height)
        start = time.perf_counter()
        write_sheets(root / "sheets", args.n, (width, height), seed=0)
        rate = args.n / (time.perf_counter() - start)
    print(f"machine: {os.cpu_count()} CPUs; {args.n} sheets of {width}x{height} px, JPEG quality {JPEG_QUALITY}")
    print(f"baseline (blank JPEG encode + write): {floor:.1f} /s")
    print(f"write_sheets (generate + JPEG + masks + manifest): {rate:.1f} sheets/s")
    print(f"RESULT sheets_per_s={rate:.2f} baseline_per_s={floor:.2f} ratio={rate / floor:.3f}")


if __name__ == "__main__":
    main()
