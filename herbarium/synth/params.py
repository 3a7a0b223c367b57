"""Checks on what a caller asks of the generator: sheet size, sheet count and seed."""

from __future__ import annotations

import re

# A herbarium sheet is about 29 x 42 cm.
HERBARIUM_ASPECT = 29.0 / 42.0
MIN_LONG_SIDE = 512
MAX_WIDTH, MAX_HEIGHT = 6900, 9900
# Narrower than this and a Code 128 barcode at 2 px per module no longer fits across a 512 px sheet.
MIN_ASPECT = 0.6
MAX_COUNT = 100_000


class SynthParameterError(ValueError):
    """A size, count or seed the generator cannot honour; the message starts with the parameter's name."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def parse_size(size: str | int | tuple[int, int], *, parameter: str = "size") -> tuple[int, int]:
    """``1024`` (long side, herbarium aspect), ``"1024"`` or ``"707x1024"`` → checked ``(width, height)``."""
    if isinstance(size, tuple) and len(size) == 2:
        width, height = size
    elif isinstance(size, int) and not isinstance(size, bool):
        height = size
        width = round(size * HERBARIUM_ASPECT)
    elif isinstance(size, str):
        text = size.strip().lower()
        if match := re.fullmatch(r"(\d+)\s*[x×]\s*(\d+)", text):
            width, height = int(match[1]), int(match[2])
        elif text.isdigit():
            height = int(text)
            width = round(height * HERBARIUM_ASPECT)
        else:
            raise SynthParameterError(parameter, f"expected a long side in pixels (1024) or WIDTHxHEIGHT, got {size!r}")
    else:
        raise SynthParameterError(parameter, f"expected a long side in pixels (1024) or WIDTHxHEIGHT, got {size!r}")
    check_size(width, height, parameter=parameter)
    return int(width), int(height)


def check_size(width: int, height: int, *, parameter: str = "size") -> None:
    """Raise unless ``width x height`` is a portrait sheet from 512 px long side up to 6900 x 9900."""
    for value in (width, height):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SynthParameterError(parameter, f"expected whole pixels, got {width!r} x {height!r}")
    if width > height:
        raise SynthParameterError(
            parameter, f"herbarium sheets are portrait: expected width <= height, got {width}x{height}"
        )
    if not MIN_LONG_SIDE <= height <= MAX_HEIGHT:
        raise SynthParameterError(
            parameter, f"long side must be {MIN_LONG_SIDE} to {MAX_HEIGHT} px, got {width}x{height}"
        )
    if width > MAX_WIDTH:
        raise SynthParameterError(parameter, f"width must be at most {MAX_WIDTH} px, got {width}x{height}")
    if width < MIN_ASPECT * height:
        raise SynthParameterError(
            parameter,
            f"width must be at least {MIN_ASPECT:.0%} of the height ({MIN_ASPECT * height:.0f} px), "
            f"got {width}x{height}",
        )


def check_count(n: int, *, parameter: str = "n") -> None:
    """Raise unless ``n`` is a whole number of sheets from 1 to 100000."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_COUNT:
        raise SynthParameterError(parameter, f"expected a number of sheets from 1 to {MAX_COUNT}, got {n!r}")


def check_seed(seed: int, *, parameter: str = "seed") -> None:
    """Raise unless ``seed`` is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SynthParameterError(parameter, f"expected a non-negative integer, got {seed!r}")
