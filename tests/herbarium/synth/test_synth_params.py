"""Size, count and seed checks: clear errors that name the parameter."""

from __future__ import annotations

import pytest

from herbarium.synth import SynthParameterError, generate_sheet, parse_size, write_sheets
from herbarium.synth.params import HERBARIUM_ASPECT


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1024, (707, 1024)),
        ("1024", (707, 1024)),
        ("512", (round(512 * HERBARIUM_ASPECT), 512)),
        ("707x1024", (707, 1024)),
        (" 600 X 800 ", (600, 800)),
        ("6900x9900", (6900, 9900)),
        ((353, 512), (353, 512)),
    ],
)
def test_parse_size(size: str | int | tuple[int, int], expected: tuple[int, int]) -> None:
    assert parse_size(size) == expected


@pytest.mark.parametrize(
    ("size", "fragment"),
    [
        (511, "long side"),
        ("400x500", "long side"),
        ("7000x9900", "width"),
        ("6900x9901", "long side"),
        (10000, "long side"),
        ("1024x700", "portrait"),
        ("300x1024", "width must be at least"),
        ("big", "WIDTHxHEIGHT"),
        ("0x0", "long side"),
        ("-5", "WIDTHxHEIGHT"),
        (True, "WIDTHxHEIGHT"),
    ],
)
def test_bad_sizes_raise_naming_size(size: str | int, fragment: str) -> None:
    with pytest.raises(SynthParameterError, match=fragment) as caught:
        parse_size(size)
    assert isinstance(caught.value, ValueError)
    assert caught.value.parameter == "size"
    assert str(caught.value).startswith("size: ")


def test_generate_sheet_checks_size_and_seed() -> None:
    with pytest.raises(SynthParameterError, match=r"^size: .*long side"):
        generate_sheet(0, 300, 400)
    with pytest.raises(SynthParameterError, match=r"^size: .*whole pixels"):
        generate_sheet(0, 707.5, 1024)  # type: ignore[arg-type]
    with pytest.raises(SynthParameterError, match=r"^seed: "):
        generate_sheet(-1, 707, 1024)


@pytest.mark.parametrize("n", [0, -3, 100_001, 2.5, True])
def test_bad_counts_raise_naming_n(tmp_path: object, n: int) -> None:
    with pytest.raises(SynthParameterError, match=r"^n: expected a number of sheets from 1 to 100000") as caught:
        write_sheets(tmp_path, n, 512)  # type: ignore[arg-type]
    assert caught.value.parameter == "n"


def test_bad_size_is_refused_before_anything_is_written(tmp_path: object) -> None:
    from pathlib import Path

    out = Path(str(tmp_path)) / "out"
    with pytest.raises(SynthParameterError, match=r"^size: "):
        write_sheets(out, 2, "100x200")
    assert not out.exists()
