"""Procedural pressed plants: geometry in plant units, then drawn with exact per-organ boxes and masks.

A plant is a list of organs; an organ is a list of shapes (filled polygons and polylines). Shapes
are built in a unit frame (base of the stem at the origin, about one unit tall), fitted into a
slot of the sheet, rounded to whole pixels, then drawn with the same ImageDraw calls onto the
image and onto a scratch mask. Nothing is anti-aliased, so the scratch holds exactly the pixels
the organ put on the image: its box and its plant's mask come from those pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from herbarium.synth.layout import Rect
from herbarium.synth.vocab import RGB, Taxon

Points = npt.NDArray[np.float64]


@dataclass
class Shape:
    """A filled polygon (``width == 0``) or a polyline ``width`` wide."""

    points: Points  # (n, 2), x then y
    colour: RGB
    width: float = 0.0


@dataclass
class Organ:
    name: str  # a class of herbarium.taxonomy.ORGANS
    shapes: list[Shape] = field(default_factory=list)


@dataclass(frozen=True)
class Style:
    """What one plant looks like; margin, leaf shape and phenology come from its sheet."""

    habit: str
    margin: str
    leaf_shape: str
    phenology: str
    opposite: bool
    leaf: RGB
    stem: RGB
    root: RGB
    flower: RGB
    fruit: RGB
    fruit_kind: str
    petals: int
    petal_ratio: float


def _shade(colour: RGB, factor: float) -> RGB:
    r, g, b = (min(255, max(0, round(c * factor))) for c in colour)
    return (r, g, b)


def _vary(rng: np.random.Generator, colour: RGB, amount: float) -> RGB:
    return _shade(colour, float(rng.uniform(1 - amount, 1 + amount)))


def plant_style(rng: np.random.Generator, taxon: Taxon, leaf_shape: str, phenology: str) -> Style:
    """One plant's colours and form, varied around its taxon's."""
    # Pressed specimens keep some green, but most real sheets show them dried: olive, tan, brown, near black.
    greens: tuple[RGB, ...] = ((74, 92, 48), (96, 104, 58), (62, 78, 44), (112, 102, 62), (84, 84, 46), (58, 70, 52))
    dried: tuple[RGB, ...] = ((128, 104, 70), (104, 84, 58), (150, 124, 84), (86, 72, 52), (112, 100, 76), (64, 54, 42))
    palette = greens + dried
    pick = int(rng.integers(len(palette)))
    leaf = _vary(rng, palette[pick], 0.12)
    habit = taxon.habits[int(rng.integers(len(taxon.habits)))]
    if pick >= len(greens):  # a dried plant has a dried stem
        stem = _vary(rng, _shade(palette[pick], 0.85), 0.1)
    else:
        stem = _vary(rng, (96, 78, 50) if habit == "twig" else (104, 104, 62), 0.1)
    return Style(
        habit=habit,
        margin=taxon.margin,
        leaf_shape=leaf_shape,
        phenology=phenology,
        opposite=taxon.opposite,
        leaf=leaf,
        stem=stem,
        root=_vary(rng, (120, 96, 66), 0.12),
        flower=_vary(rng, taxon.flower_colour, 0.08),
        fruit=_vary(rng, taxon.fruit_colour, 0.1),
        fruit_kind=taxon.fruit_kind,
        petals=int(rng.integers(4, 9)),
        petal_ratio=float(rng.uniform(0.45, 0.8)),
    )


def _rotation(angle: float) -> Points:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _place(points: Points, angle: float, origin: Points) -> Points:
    """Rotate shape-frame points (pointing along +x) by ``angle`` and move them to ``origin``."""
    return points @ _rotation(angle).T + origin


def _ellipse(centre: Points, rx: float, ry: float, angle: float, n: int = 16) -> Points:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return _place(np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1), angle, centre)


def _polyline(rng: np.random.Generator, start: Points, angle: float, length: float, n: int, wobble: float) -> Points:
    """A gently bending axis of ``n`` segments; angles are a random walk."""
    angles = angle + np.cumsum(rng.normal(0.0, wobble, n))
    steps = (length / n) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return np.vstack([start[None, :], start + np.cumsum(steps, axis=0)])


def _direction(axis: Points, i: int) -> float:
    j = min(i, len(axis) - 2)
    dx, dy = axis[j + 1] - axis[j]
    return math.atan2(dy, dx)


def _profile(shape: str, t: Points) -> Points:
    """Half-width along the midrib, 0 at base and apex, peak 1."""
    if shape == "lanceolate":
        w = np.sin(np.pi * t**0.8) ** 1.2
    elif shape == "ovate":
        w = np.sin(np.pi * t**0.62)
    else:  # elliptic
        w = np.sin(np.pi * t) ** 0.85
    return np.asarray(w / w.max())


_WIDTH_RATIO = {"lanceolate": (0.16, 0.28), "ovate": (0.45, 0.62), "elliptic": (0.32, 0.48)}


class LeafGeometry(NamedTuple):
    """A leaf blade pointing along +x from the origin."""

    outline: Points  # closed polygon: left side base to apex, right side back
    left: Points  # left margin, base to apex
    right: Points  # right margin, base to apex
    midrib: Points

    @property
    def left_half(self) -> Points:
        return np.vstack([self.left, self.midrib[::-1]])


def leaf_outline(rng: np.random.Generator, shape: str, margin: str, length: float) -> LeafGeometry:
    """A blade of ``shape`` (elliptic, lanceolate, ovate), ``length`` long; toothed margins are serrate."""
    low, high = _WIDTH_RATIO[shape]
    half = length * float(rng.uniform(low, high)) / 2
    sides = []
    for sign in (-1.0, 1.0):
        if margin == "toothed":
            n_teeth = int(rng.integers(8, 15))
            depth = float(rng.uniform(0.14, 0.26))
            edges = np.linspace(0.1, 0.93, n_teeth + 1)
            tips = edges[:-1] + 0.75 * np.diff(edges)
            t = np.concatenate([np.linspace(0, 0.1, 4, endpoint=False), np.ravel(np.column_stack([edges[:-1], tips]))])
            t = np.concatenate([t, np.linspace(0.93, 1.0, 4)])
            factor = np.ones_like(t)
            factor[4 : 4 + 2 * n_teeth : 2] = 1 - depth  # valleys
            factor[5 : 5 + 2 * n_teeth : 2] = 1 + 0.3 * depth  # tips lean towards the apex
            w = _profile(shape, t) * factor
        else:
            t = np.linspace(0.0, 1.0, 33, dtype=np.float64)
            w = _profile(shape, t)
        w = w * half * float(rng.uniform(0.92, 1.08))
        sides.append(np.stack([t * length, sign * w], axis=1))
    bend = float(rng.uniform(-0.08, 0.08)) * length
    for side in sides:
        side[:, 1] += bend * (side[:, 0] / length) ** 2
    left, right = sides
    outline = np.vstack([left, right[::-1]])
    t_rib = np.linspace(0, 0.92, 8)
    midrib = np.stack([t_rib * length, bend * t_rib**2], axis=1)
    return LeafGeometry(outline, left, right, midrib)


def _leaf(rng: np.random.Generator, style: Style, base: Points, angle: float, length: float, min_w: float) -> Organ:
    leaf = leaf_outline(rng, style.leaf_shape, style.margin, length)
    petiole_len = length * float(rng.uniform(0.0, 0.3 if style.habit != "rosette" else 0.5))
    blade_origin = base + petiole_len * np.array([math.cos(angle), math.sin(angle)])
    colour = _vary(rng, style.leaf, 0.07)
    vein = _shade(colour, float(rng.uniform(1.18, 1.35)))
    organ = Organ("leaf")
    if petiole_len > 0:
        organ.shapes.append(Shape(np.vstack([base, blade_origin]), style.stem, max(min_w, 0.03 * length)))
    organ.shapes.append(Shape(_place(leaf.outline, angle, blade_origin), colour))
    organ.shapes.append(Shape(_place(leaf.left_half, angle, blade_origin), _shade(colour, 0.88)))
    rib_x, rib_y = leaf.midrib[:, 0], leaf.midrib[:, 1]
    organ.shapes.append(Shape(_place(leaf.midrib, angle, blade_origin), vein, max(min_w, 0.022 * length)))
    # Secondary veins: from the midrib to 60 % of the way to the margin (measured on that side), so inside the blade.
    for t in np.linspace(0.2, 0.75, int(rng.integers(3, 6))):
        x0, x1 = t * length, (t + 0.1) * length
        y0, y1 = float(np.interp(x0, rib_x, rib_y)), float(np.interp(x1, rib_x, rib_y))
        for side in (leaf.left, leaf.right):
            edge = float(np.interp(x1, side[:, 0], side[:, 1]))
            vein_pts = np.array([[x0, y0], [x1, y1 + 0.6 * (edge - y1)]])
            organ.shapes.append(Shape(_place(vein_pts, angle, blade_origin), vein, max(min_w, 0.011 * length)))
    return organ


def _flower(rng: np.random.Generator, style: Style, centre: Points, radius: float) -> Organ:
    organ = Organ("flower")
    turn = float(rng.uniform(0, 2 * np.pi))
    for k in range(style.petals):
        a = turn + 2 * np.pi * k / style.petals + float(rng.normal(0, 0.08))
        mid = centre + 0.52 * radius * np.array([math.cos(a), math.sin(a)])
        petal = _ellipse(mid, 0.5 * radius, 0.5 * radius * style.petal_ratio, a, 14)
        organ.shapes.append(Shape(petal, _vary(rng, style.flower, 0.05)))
    organ.shapes.append(Shape(_ellipse(centre, 0.2 * radius, 0.2 * radius, 0.0, 12), _vary(rng, (170, 140, 60), 0.1)))
    return organ


def _fruit(rng: np.random.Generator, style: Style, centre: Points, radius: float, angle: float, min_w: float) -> Organ:
    organ = Organ("fruit")
    colour = _vary(rng, style.fruit, 0.06)
    if style.fruit_kind == "berry":
        organ.shapes.append(Shape(_ellipse(centre, radius * 0.8, radius * 0.8, 0.0, 18), colour))
        spot = centre + radius * np.array([-0.3, -0.3])
        organ.shapes.append(Shape(_ellipse(spot, radius * 0.18, radius * 0.12, -0.6, 8), _shade(colour, 1.6)))
    elif style.fruit_kind == "pod":
        t = np.linspace(0, 1, 15)
        w = 0.35 * radius * np.sin(np.pi * t) ** 0.7
        length = 3.2 * radius
        bow = 0.4 * radius * np.sin(np.pi * t)
        upper = np.stack([t * length, bow - w], axis=1)
        lower = np.stack([t * length, bow + w], axis=1)
        organ.shapes.append(Shape(_place(np.vstack([upper, lower[::-1]]), angle, centre), colour))
        seam = np.stack([t * length, bow], axis=1)[1:-1]
        organ.shapes.append(Shape(_place(seam, angle, centre), _shade(colour, 0.75), min_w))
    else:  # capsule
        body = _ellipse(
            centre + 0.9 * radius * np.array([math.cos(angle), math.sin(angle)]), radius, 0.6 * radius, angle
        )
        organ.shapes.append(Shape(body, colour))
        tip = centre + 1.9 * radius * np.array([math.cos(angle), math.sin(angle)])
        organ.shapes.append(Shape(np.vstack([centre, tip]), _shade(colour, 0.7), min_w))
    return organ


def _seed(rng: np.random.Generator, centre: Points, size: float) -> Organ:
    colour = _vary(rng, (92, 66, 40), 0.15)
    angle = float(rng.uniform(0, np.pi))
    return Organ("seed", [Shape(_ellipse(centre, size, size * float(rng.uniform(0.55, 0.8)), angle, 12), colour)])


@dataclass
class _Builder:
    rng: np.random.Generator
    style: Style
    min_w: float  # about one pixel, in plant units
    stem: list[Shape] = field(default_factory=list)
    roots: list[Shape] = field(default_factory=list)
    leaves: list[Organ] = field(default_factory=list)
    reproductive: list[Organ] = field(default_factory=list)
    seeds: list[Organ] = field(default_factory=list)

    def axis(self, points: Points, width: float) -> None:
        """A stem drawn in three tapering pieces (one polyline each, so joints stay round)."""
        n = len(points)
        cuts = [0, max(1, n // 3), max(2, 2 * n // 3), n - 1]
        for k in range(3):
            a, b = cuts[k], cuts[k + 1]
            if b > a:
                self.stem.append(Shape(points[a : b + 1], self.style.stem, max(self.min_w, width * (1 - 0.25 * k))))

    def leaves_along(self, axis: Points, scale: float, first: int = 1) -> None:
        rng = self.rng
        side = 1.0 if rng.random() < 0.5 else -1.0
        for i in range(first, len(axis) - 1):
            frac = i / (len(axis) - 1)
            length = scale * (1 - 0.5 * frac) * float(rng.uniform(0.85, 1.15))
            direction = _direction(axis, i)
            sides = (1.0, -1.0) if self.style.opposite else (side,)
            for s in sides:
                angle = direction + s * float(rng.uniform(0.55, 1.1))
                self.leaves.append(_leaf(rng, self.style, axis[i], angle, length, self.min_w))
            side = -side

    def cluster(self, tip: Points, direction: float, size: float) -> None:
        """Flowers or fruits on short pedicels around an axis tip, as the phenology says."""
        if self.style.phenology == "sterile":
            return
        rng = self.rng
        for _ in range(int(rng.integers(1, 4))):
            a = direction + float(rng.uniform(-0.9, 0.9))
            pedicel = size * float(rng.uniform(0.6, 1.6))
            end = tip + pedicel * np.array([math.cos(a), math.sin(a)])
            self.stem.append(Shape(np.vstack([tip, end]), self.style.stem, max(self.min_w, 0.12 * size)))
            radius = size * float(rng.uniform(0.8, 1.2))
            if self.style.phenology == "flowering":
                self.reproductive.append(_flower(rng, self.style, end, radius))
            else:
                self.reproductive.append(_fruit(rng, self.style, end, 0.7 * radius, a, self.min_w))

    def root_system(self, base: Points, length: float, width: float) -> None:
        rng = self.rng
        main = _polyline(rng, base, math.pi / 2, length, 5, 0.25)
        self.roots.append(Shape(main, self.style.root, max(self.min_w, width)))
        for _ in range(int(rng.integers(3, 8))):
            i = int(rng.integers(1, len(main) - 1))
            a = math.pi / 2 + float(rng.choice([-1.0, 1.0])) * float(rng.uniform(0.5, 1.3))
            lateral = _polyline(rng, main[i], a, length * float(rng.uniform(0.25, 0.6)), 3, 0.3)
            self.roots.append(Shape(lateral, self.style.root, max(self.min_w, 0.45 * width)))

    def scatter_seeds(self, near: Points, spread: float, size: float) -> None:
        if self.style.phenology != "fruiting" or self.rng.random() < 0.35:
            return
        for _ in range(int(self.rng.integers(3, 10))):
            offset = self.rng.normal(0.0, spread, 2)
            self.seeds.append(_seed(self.rng, near + offset, size))

    def organs(self) -> list[Organ]:
        """In drawing order: roots, stem, leaves, flowers or fruits, seeds."""
        head = [Organ("root", self.roots)] if self.roots else []
        return [*head, Organ("stem", self.stem), *self.leaves, *self.reproductive, *self.seeds]


def grow(rng: np.random.Generator, style: Style, unit_px: float) -> list[Organ]:
    """One plant in plant units (about 1 tall, base at the origin, growing towards -y).

    ``unit_px`` is the expected size of one unit in pixels; it keeps lines at least a pixel wide
    and seeds visible.
    """
    min_w = 1.0 / unit_px
    b = _Builder(rng, style, min_w)
    origin = np.zeros(2)
    up = -math.pi / 2
    if style.habit == "rosette":
        for _ in range(int(rng.integers(5, 11))):
            angle = up + float(rng.uniform(-1.3, 1.3))
            b.leaves.append(_leaf(rng, style, origin, angle, float(rng.uniform(0.25, 0.42)), min_w))
        for _ in range(int(rng.integers(1, 3))):
            scape = _polyline(rng, origin, up + float(rng.normal(0, 0.2)), float(rng.uniform(0.7, 1.0)), 6, 0.06)
            b.axis(scape, float(rng.uniform(0.008, 0.013)))
            b.leaves_along(scape[: len(scape) // 2 + 1], 0.1, first=2)
            b.cluster(scape[-1], _direction(scape, len(scape) - 2), float(rng.uniform(0.03, 0.05)))
        b.root_system(origin, float(rng.uniform(0.1, 0.22)), 0.006)
        b.scatter_seeds(origin + np.array([0.25, -0.1]), 0.05, max(float(rng.uniform(0.009, 0.014)), 2.5 * min_w))
    else:
        twig = style.habit == "twig"
        n = int(rng.integers(6, 11))
        tilt = float(rng.uniform(-0.45, 0.45)) if twig else float(rng.normal(0, 0.1))
        main = _polyline(rng, origin, up + tilt, 1.0, n, 0.08)
        width = float(rng.uniform(0.014, 0.022)) if twig else float(rng.uniform(0.009, 0.016))
        b.axis(main, width)
        leaf_scale = float(rng.uniform(0.15, 0.26)) if twig else float(rng.uniform(0.1, 0.2))
        b.leaves_along(main, leaf_scale, first=1 if twig else 2)
        tips = [(main[-1], _direction(main, n - 1))]
        nodes = rng.permutation(np.arange(2, n - 1))[: int(rng.integers(0 if not twig else 1, 4))]
        for i in sorted(int(i) for i in nodes):
            side = 1.0 if i % 2 else -1.0
            angle = _direction(main, i) + side * float(rng.uniform(0.4, 0.9))
            length = float(rng.uniform(0.25, 0.5)) * (1 - 0.4 * i / n)
            branch = _polyline(rng, main[i], angle, length, int(rng.integers(3, 6)), 0.1)
            b.axis(branch, 0.55 * width)
            b.leaves_along(branch, 0.8 * leaf_scale)
            tips.append((branch[-1], _direction(branch, len(branch) - 2)))
        size = float(rng.uniform(0.025, 0.045))
        for tip, direction in tips:
            b.cluster(tip, direction, size)
        if not twig:
            b.root_system(origin, float(rng.uniform(0.08, 0.2)), 0.6 * width)
        b.scatter_seeds(
            origin + np.array([float(rng.choice([-0.25, 0.25])), -0.15]),
            0.05,
            max(float(rng.uniform(0.008, 0.013)), 2.5 * min_w),
        )
    return b.organs()


def extent(organs: list[Organ]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of all shapes, line half-widths included."""
    lows, highs = [], []
    for organ in organs:
        for shape in organ.shapes:
            lows.append(shape.points.min(axis=0) - shape.width / 2)
            highs.append(shape.points.max(axis=0) + shape.width / 2)
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    return float(low[0]), float(low[1]), float(high[0]), float(high[1])


def transform(organs: list[Organ], matrix: Points, offset: Points, scale: float) -> list[Organ]:
    """Map to pixels: ``points @ matrix.T * scale + offset``, rounded; widths rounded, at least 1 px."""
    out = []
    for organ in organs:
        shapes = [
            Shape(
                np.rint((s.points @ matrix.T) * scale + offset),
                s.colour,
                float(max(1, round(s.width * scale))) if s.width > 0 else 0.0,
            )
            for s in organ.shapes
        ]
        out.append(Organ(organ.name, shapes))
    return out


@dataclass(frozen=True)
class DrawnOrgan:
    plant: int
    name: str
    box: tuple[int, int, int, int]  # x, y, width, height of its own drawn pixels


def _draw(draw: ImageDraw.ImageDraw, shape: Shape, fill: RGB | int) -> None:
    flat = [int(v) for v in shape.points.ravel()]
    if shape.width == 0:
        draw.polygon(flat, fill=fill)
    else:
        width = int(shape.width)
        draw.line(flat, fill=fill, width=width, joint="curve" if len(shape.points) > 2 and width > 2 else None)


def draw_plants(image: Image.Image, plants: list[list[Organ]]) -> tuple[list[DrawnOrgan], list[Image.Image]]:
    """Draw pixel-space plants in order; return each organ's box and each plant's visible mask (mode L, 0/255).

    Organ boxes cover the organ's own pixels, hidden parts included; instance masks are the pixels
    each plant shows in the final image, so later plants take pixels from earlier ones.
    """
    size = image.size
    canvas = ImageDraw.Draw(image)
    scratch = Image.new("L", size)
    pen = ImageDraw.Draw(scratch)
    drawn: list[DrawnOrgan] = []
    masks: list[Image.Image] = []
    for k, organs in enumerate(plants):
        mask = Image.new("L", size)
        for organ in organs:
            if not organ.shapes:
                continue
            low = np.min([s.points.min(axis=0) - s.width for s in organ.shapes], axis=0) - 2
            high = np.max([s.points.max(axis=0) + s.width for s in organ.shapes], axis=0) + 3
            region = (
                max(0, int(low[0])),
                max(0, int(low[1])),
                min(size[0], int(high[0])),
                min(size[1], int(high[1])),
            )
            if region[2] <= region[0] or region[3] <= region[1]:
                continue
            for shape in organ.shapes:
                _draw(canvas, shape, shape.colour)
                _draw(pen, shape, 255)
            pixels = scratch.crop(region)
            bbox = pixels.getbbox()
            if bbox is not None:
                box = (region[0] + bbox[0], region[1] + bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1])
                drawn.append(DrawnOrgan(k, organ.name, box))
                mask.paste(255, region, pixels)
                for earlier in masks:
                    earlier.paste(0, region, pixels)
            scratch.paste(0, region)
        masks.append(mask)
    return drawn, masks


def fit(organs: list[Organ], slot: Rect, rng: np.random.Generator, *, bottom: int, tilt: float) -> list[Organ]:
    """Turn, maybe mirror, scale and move a unit-frame plant into ``slot`` (its base near ``bottom``)."""
    angle = float(rng.uniform(-tilt, tilt))
    mirror = np.diag([-1.0, 1.0]) if rng.random() < 0.5 else np.eye(2)
    matrix = _rotation(angle) @ mirror
    turned = [Organ(o.name, [Shape(s.points @ matrix.T, s.colour, s.width) for s in o.shapes]) for o in organs]
    x0, y0, x1, y1 = extent(turned)
    scale = min(slot.width / (x1 - x0), slot.height / (y1 - y0)) * float(rng.uniform(0.82, 1.0))
    w, h = (x1 - x0) * scale, (y1 - y0) * scale
    left = slot.x0 + float(rng.uniform(0, max(0.0, slot.width - w)))
    top = min(bottom, slot.y1) - h - float(rng.uniform(0, max(0.0, min(bottom, slot.y1) - slot.y0 - h)) * 0.3)
    top = max(float(slot.y0), top)
    offset = np.array([left - x0 * scale, top - y0 * scale])
    return transform(turned, np.eye(2), offset, scale)
