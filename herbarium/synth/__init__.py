"""Synthetic herbarium sheets with exact ground truth, drawn procedurally and fast.

Each sheet has cream paper, one to four pressed plants (stems, leaves, flowers or fruits, seeds,
roots) and the non-vegetal elements of a real sheet (printed label, a Code 128 barcode that
decodes to the catalogue number, envelope, colour chart, ruler, stamp). Ground truth comes from
the drawing itself: element and organ boxes, the pixel-exact plant mask and one mask per plant,
traits that match the drawn organs, and a Darwin Core record.

>>> sheet = generate_sheet(seed=7, width=707, height=1024)
>>> manifest = write_sheets("out", n=20, size=1024, seed=0)  # doctest: +SKIP
"""

from herbarium.synth.dataset import (
    Manifest,
    ManifestError,
    SheetRecord,
    load_manifest,
    save_sheet,
    write_sheets,
)
from herbarium.synth.params import SynthParameterError, parse_size
from herbarium.synth.sheet import SYNTHETIC_SOURCE, SheetBox, SyntheticSheet, generate_background, generate_sheet
from herbarium.synth.vocab import DARWIN_CORE_TERMS

__all__ = [
    "DARWIN_CORE_TERMS",
    "SYNTHETIC_SOURCE",
    "Manifest",
    "ManifestError",
    "SheetBox",
    "SheetRecord",
    "SynthParameterError",
    "SyntheticSheet",
    "generate_background",
    "generate_sheet",
    "load_manifest",
    "parse_size",
    "save_sheet",
    "write_sheets",
]
