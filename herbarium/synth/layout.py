"""Where things go on a sheet: non-vegetal elements on shelves along the top and bottom, plants between.

Elements are packed first, from their rendered sizes; the plant region is what they leave, so no
plant ever covers an element.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class Rect(NamedTuple):
    """A pixel rectangle, end-exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def inset(self, d: int) -> Rect:
        return Rect(self.x0 + d, self.y0 + d, self.x1 - d, self.y1 - d)


@dataclass(frozen=True)
class Item:
    """An element to place: its size, preferred band, left-to-right rank and whether it may be dropped."""

    name: str
    width: int
    height: int
    band: str  # "top" or "bottom"
    rank: int
    optional: bool = False


@dataclass
class _Shelf:
    items: list[Item] = field(default_factory=list)

    @property
    def height(self) -> int:
        return max((i.height for i in self.items), default=0)

    def used(self, gap: int) -> int:
        return sum(i.width for i in self.items) + gap * max(0, len(self.items) - 1)


class LayoutError(RuntimeError):
    """The elements do not fit; cannot happen for sizes that pass :func:`check_size`."""


@dataclass(frozen=True)
class Layout:
    placements: dict[str, tuple[int, int]]  # element name → top-left corner
    plant_region: Rect


def pack(items: list[Item], bounds: Rect, gap: int, max_band_fraction: float, rng: np.random.Generator) -> Layout:
    """Shelf-pack ``items`` into bands at the top and bottom of ``bounds``; the rest is for plants."""
    bands: dict[str, list[_Shelf]] = {"top": [], "bottom": []}
    limit = int(bounds.height * max_band_fraction)

    def total(extra: dict[str, int] | None = None) -> int:
        extra = extra or {}
        return sum(sum(s.height + gap for s in shelves) + extra.get(name, 0) for name, shelves in bands.items())

    for item in sorted(items, key=lambda i: i.optional):
        if item.width > bounds.width:
            if item.optional:
                continue
            raise LayoutError(f"{item.name} is {item.width} px wide, the sheet leaves {bounds.width} px")
        other = "top" if item.band == "bottom" else "bottom"
        placed = False
        for name in (item.band, other):
            for shelf in bands[name]:
                grow = max(0, item.height - shelf.height)
                if shelf.used(gap) + gap + item.width <= bounds.width and total() + grow <= limit:
                    shelf.items.append(item)
                    placed = True
                    break
            if placed:
                break
        if placed:
            continue
        for name in (item.band, other):
            if total({name: item.height + gap}) <= limit:
                bands[name].append(_Shelf([item]))
                placed = True
                break
        if not placed and not item.optional:
            raise LayoutError(f"no room for {item.name} ({item.width}x{item.height}) within {bounds}")

    placements: dict[str, tuple[int, int]] = {}
    top_y = bounds.y0
    for shelf in bands["top"]:
        _place_row(shelf, bounds, top_y, gap, placements, rng, from_top=True)
        top_y += shelf.height + gap
    bottom_y = bounds.y1
    for shelf in bands["bottom"]:
        bottom_y -= shelf.height
        _place_row(shelf, bounds, bottom_y, gap, placements, rng, from_top=False)
        bottom_y -= gap
    return Layout(placements, Rect(bounds.x0, top_y, bounds.x1, bottom_y))


def _place_row(
    shelf: _Shelf,
    bounds: Rect,
    y: int,
    gap: int,
    placements: dict[str, tuple[int, int]],
    rng: np.random.Generator,
    *,
    from_top: bool,
) -> None:
    row = sorted(shelf.items, key=lambda i: i.rank)
    if rng.random() < 0.25:  # some institutions mount the label on the left
        row.reverse()
    slack = bounds.width - shelf.used(gap)
    weights = rng.dirichlet(np.ones(len(row) + 1))
    shares = np.floor(weights * slack).astype(int)
    x = bounds.x0 + int(shares[0])
    for item, share in zip(row, shares[1:], strict=True):
        room = shelf.height - item.height
        dy = int(rng.integers(0, room + 1)) if room else 0
        placements[item.name] = (x, y + dy if from_top else y + room - dy)
        x += item.width + gap + int(share)
