"""IIIF Image API requests: asking an herbarium's image server for the size a model needs, not the master.

An Image API URL reads ``{scheme}://{server}{/prefix}/{identifier}/{region}/{size}/{rotation}/{quality}.{format}``
(versions 2 and 3). A 600-ppi master is 100-200 MB; a model decodes a sheet at 1,024-4,096 px on its long
side: the server scales it (``!w,h``: as large as fits in w x h, never larger than the region).

>>> sized_request("https://iiif.example.org/iiif/3/BM000521755/full/max/0/default.jpg", 2048)
'https://iiif.example.org/iiif/3/BM000521755/full/!2048,2048/0/default.jpg'
"""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit, urlunsplit

_REGION = re.compile(r"full|square|(pct:)?[0-9.]+,[0-9.]+,[0-9.]+,[0-9.]+")
_SIZE = re.compile(r"full|max|\^?(max|!?[0-9]*,[0-9]*|pct:[0-9.]+)")
_ROTATION = re.compile(r"!?[0-9.]+")
_QUALITIES = frozenset({"default", "color", "gray", "bitonal", "native"})
_FORMATS = frozenset({"jpg", "png", "webp", "tif", "gif", "jp2"})


def is_image_request(url: str) -> bool:
    """Whether ``url``'s path ends in an Image API request (region/size/rotation/quality.format)."""
    return _request_segments(url) is not None


def sized_request(url: str, max_side: int, info: object = None) -> str | None:
    """``url`` asking for at most ``max_side`` pixels a side (as the service's ``info`` allows); None for no request.

    A level-0 service (static files) serves only the sizes its info.json lists: the smallest of them that
    reaches ``max_side`` is asked, else the largest. Any other level scales as asked (``!s,s``).
    """
    segments = _request_segments(url)
    if segments is None:
        return None
    segments[-3] = size_parameter(info, max_side)
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/".join(segments)))


def info_url(url: str) -> str | None:
    """The ``info.json`` of the image service a full-region request ``url`` asks; None for any other URL.

    Only for the full region: its size there is the size of the image Label Studio shows from ``url``.
    """
    segments = _request_segments(url)
    if segments is None or segments[-4] != "full":
        return None
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/".join([*segments[:-4], "info.json"]), query="", fragment=""))


def size_parameter(info: object, max_side: int) -> str:
    """The size parameter for at most ``max_side`` a side from the service ``info`` describes (None: any level)."""
    if not _is_level0(info):
        return f"!{max_side},{max_side}"
    assert isinstance(info, dict)
    sizes = sorted(
        (s["width"], s["height"])
        for s in info.get("sizes") or []
        if isinstance(s, dict) and isinstance(s.get("width"), int) and isinstance(s.get("height"), int)
    )
    if not sizes:
        return "full" if "image/2" in str(info.get("@context", "")) else "max"
    width, height = next(((w, h) for w, h in sizes if max(w, h) >= max_side), sizes[-1])
    return f"{width},{height}"


def _is_level0(info: object) -> bool:
    if not isinstance(info, dict):
        return False
    profile = info.get("profile")
    first = profile[0] if isinstance(profile, list) and profile else profile  # Image API 2: [uri, {...}]
    return isinstance(first, str) and first.rstrip("/").removesuffix(".json").endswith("level0")


class IIIFError(ValueError):
    """An Image API answer that is not what the API says it is."""


def full_size(info: object) -> tuple[int, int]:
    """(width, height) of the full image from an ``info.json`` document (Image API 2 or 3)."""
    width = info.get("width") if isinstance(info, dict) else None
    height = info.get("height") if isinstance(info, dict) else None
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise IIIFError(f"info.json: expected positive integer width and height, got {width!r} x {height!r}")
    return width, height


def shown_size(info: object) -> tuple[int, int]:
    """(width, height) of the full region at ``max``: the full size, unless the service caps it (maxWidth,
    maxHeight, maxArea; in Image API 2 they sit in the profile's second entry). What Label Studio shows for a
    ``full/max`` request, and so the frame every prediction is placed in."""
    width, height = full_size(info)
    assert isinstance(info, dict)
    profile = info.get("profile")
    caps = {**(profile[1] if isinstance(profile, list) and len(profile) > 1 and isinstance(profile[1], dict)
               else {}), **info}  # fmt: skip
    scale = 1.0
    for key, side in (("maxWidth", width), ("maxHeight", height)):
        if isinstance(caps.get(key), int) and caps[key] > 0:
            scale = min(scale, caps[key] / side)
    if isinstance(caps.get("maxArea"), int) and caps["maxArea"] > 0:
        scale = min(scale, math.sqrt(caps["maxArea"] / (width * height)))
    if scale >= 1:
        return width, height
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def _request_segments(url: str) -> list[str] | None:
    segments = urlsplit(url).path.split("/")
    if len(segments) < 6 or not all(segments[-5:]):  # an identifier, then the four parameters
        return None
    region, size, rotation, last = segments[-4:]
    quality, dot, extension = last.rpartition(".")
    if not (
        dot
        and quality in _QUALITIES
        and extension.lower() in _FORMATS
        and _REGION.fullmatch(region)
        and _SIZE.fullmatch(size)
        and _ROTATION.fullmatch(rotation)
    ):
        return None
    return segments


__all__ = [
    "IIIFError",
    "full_size",
    "info_url",
    "is_image_request",
    "shown_size",
    "size_parameter",
    "sized_request",
]
