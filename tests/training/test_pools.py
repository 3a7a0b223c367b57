"""What each pool holds: the trait is learned from real records when there are any."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from catalog.sheetnet.spec import SheetNetSpec
from herbarium.real_sheets import RealSheet
from training.pools import PoolSizes, build_pools
from training.sheets import NO_TRAIT

SPEC = SheetNetSpec(input_side=128)
SIZES = PoolSizes(synthetic=3, composites=0)


def _real(tmp_path: Path, name: str, phenology: str | None) -> RealSheet:
    path = tmp_path / f"{name}.jpg"
    Image.fromarray(np.full((160, 112, 3), 230, np.uint8)).save(path)
    return RealSheet(name=name, collection="unb", image=path, phenology=phenology)


def test_real_records_alone_teach_the_trait_when_there_are_some(tmp_path: Path) -> None:
    real = [_real(tmp_path, "a", "flowering"), _real(tmp_path, "b", "sterile"), _real(tmp_path, "c", None)]
    pools = build_pools(real, SPEC, SIZES)
    assert [(t.name, t.origin) for t in pools.trait] == [("a", "real"), ("b", "real")]
    assert [t.trait for t in pools.trait] == [
        SPEC.trait_classes.index("flowering"),
        SPEC.trait_classes.index("sterile"),
    ]


def test_without_real_records_the_generated_sheets_teach_it(tmp_path: Path) -> None:
    pools = build_pools([_real(tmp_path, "c", None)], SPEC, SIZES)
    generated = [t for t in pools.synthetic if t.trait != NO_TRAIT]
    assert generated  # generated sheets carry their drawn phenology
    assert pools.trait == generated
