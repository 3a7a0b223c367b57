"""Specimens from IIIF: Presentation manifests and collections, or a list of Image API services.

Herbaria that serve their sheets through IIIF (RBGE, BGBM Berlin, Meise, MfN, NHMW and the other
SYNTHESYS+ partners) publish a manifest per specimen (or per batch), its canvases painted by images
that an Image API service delivers at any size. Each canvas becomes a task whose image stays remote:
``{service}/full/max/0/default.jpg`` is what Label Studio shows, and a backend asks the same service
for the size it decodes (:func:`herbarium.iiif.sized_request`). Nothing is downloaded here but the
manifests themselves, under :mod:`herbarium.remote`'s rules.

The catalog number comes from the canvas's or manifest's metadata (``catalogNumber``, ``Catalog
number``, ``Barcode``, ...), else the canvas's label, else its position; every metadata pair is kept
in the record. Presentation 3 and 2 are read. What cannot be read (a manifest refused or malformed,
a canvas with no image) is reported per item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connectors.projects import CATALOG_NUMBER_KEY, SpecimenTask
from connectors.remote_media import ASSOCIATED_MEDIA, RefusedMedia
from connectors.specimens import SpecimenImport, catalog_key
from herbarium.remote import RemoteFetcher, RemoteRefusedError

LoadJson = Callable[[str], Any]
MAX_COLLECTION_DEPTH = 4  # collections of collections of manifests, no deeper (and no loops)
CATALOG_LABELS = frozenset({"catalognumber", "cataloguenumber", "barcode", "specimennumber", "accessionnumber"})


@dataclass(frozen=True)
class Canvas:
    """One painted canvas: its image service (or image), and what the manifest says of it."""

    canvas_id: str
    manifest_id: str
    image: str  # the image request Label Studio shows
    label: str
    metadata: Mapping[str, str]


def remote_json(fetcher: RemoteFetcher) -> LoadJson:
    """Reads JSON documents (manifests, collections) through ``fetcher``."""

    def load(url: str) -> Any:
        return json.loads(fetcher.fetch(url, headers={"Accept": "application/ld+json, application/json"}).data)

    return load


def read_iiif(source: str, load: LoadJson) -> SpecimenImport:
    """Specimens from a manifest or collection URL (JSON read by ``load``); one task per canvas."""
    found = SpecimenImport()
    seen: dict[str, str] = {}
    for canvas in _canvases(source, load, found, depth=0, visited=set()):
        _add(found, seen, canvas)
    if not found.specimens and not found.refused_media and not found.warnings:
        found.warnings.append(f"{source}: no canvas painted with an image")
    return found


def read_image_services(lines: list[str]) -> SpecimenImport:
    """Specimens from IIIF Image API services, one per line (the service's URL or its info.json)."""
    found = SpecimenImport()
    seen: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        base = url.removesuffix("/info.json").rstrip("/")
        identifier = urlsplit(base).path.rsplit("/", 1)[-1]
        if urlsplit(base).scheme not in ("http", "https") or not identifier:
            found.warnings.append(f"line {number}: {url!r} is not an image service URL")
            continue
        _add(found, seen, Canvas(base, "", f"{base}/full/max/0/default.jpg", identifier, {}))
    return found


def _add(found: SpecimenImport, seen: dict[str, str], canvas: Canvas) -> None:
    number = _catalog_number(canvas)
    key = catalog_key(number)
    if key in seen:
        found.duplicate_catalog_numbers.append(number)
        return
    seen[key] = number
    record = {**canvas.metadata, CATALOG_NUMBER_KEY: number, ASSOCIATED_MEDIA: canvas.image}
    record["iiifCanvas"] = canvas.canvas_id
    if canvas.manifest_id:
        record["iiifManifest"] = canvas.manifest_id
    found.specimens.append(SpecimenTask(number, canvas.image, record))


def _is_catalog_label(label: str) -> bool:
    return re.sub(r"[^a-z]", "", label.lower()) in CATALOG_LABELS


def _catalog_number(canvas: Canvas) -> str:
    for label, value in canvas.metadata.items():
        if _is_catalog_label(label) and value.strip():
            return value.strip()
    return canvas.label.strip() or canvas.canvas_id


def _canvases(url: str, load: LoadJson, found: SpecimenImport, depth: int, visited: set[str]) -> Iterator[Canvas]:
    if url in visited or depth > MAX_COLLECTION_DEPTH:
        found.warnings.append(f"{url}: visited already or nested too deep; skipped")
        return
    visited.add(url)
    try:
        document = load(url)
    except RemoteRefusedError as refusal:
        found.refused_media.append(RefusedMedia(url, url, refusal.reason, str(refusal)))
        return
    except (ValueError, UnicodeDecodeError) as error:
        found.refused_media.append(RefusedMedia(url, url, "document", f"{url}: not JSON ({error})"))
        return
    if not isinstance(document, dict):
        found.refused_media.append(RefusedMedia(url, url, "document", f"{url}: not a IIIF resource"))
        return
    kind = str(document.get("type") or document.get("@type") or "")
    if kind in ("Collection", "sc:Collection"):
        for item in [*_list(document.get("items")), *_list(document.get("manifests"))]:
            item_id = _id(item)
            if item_id:
                yield from _canvases(item_id, load, found, depth + 1, visited)
        return
    if kind not in ("Manifest", "sc:Manifest"):
        found.refused_media.append(RefusedMedia(url, url, "document", f"{url}: a {kind or 'untyped'} resource"))
        return
    manifest_id = _id(document) or url
    metadata = _metadata(document)
    canvases = _list(document.get("items")) or [
        c for sequence in _list(document.get("sequences")) for c in _list(_dict(sequence).get("canvases"))
    ]
    for position, canvas in enumerate(canvases, start=1):
        canvas_id = _id(canvas) or f"{manifest_id}#canvas-{position}"
        image = _painted_image(_dict(canvas))
        if image is None:
            where = f"{manifest_id}, canvas {position}"
            found.refused_media.append(RefusedMedia(canvas_id, where, "document", f"{where}: no image painted on it"))
            continue
        own = _metadata(_dict(canvas))
        label = _text(_dict(canvas).get("label"))
        if len(canvases) > 1 and not any(_is_catalog_label(k) for k in own):
            # The manifest's catalog number names the specimen, not each of its canvases.
            shared = {k: v for k, v in metadata.items() if not _is_catalog_label(k)}
            yield Canvas(canvas_id, manifest_id, image, label or f"{manifest_id}#{position}", {**shared, **own})
        else:
            yield Canvas(canvas_id, manifest_id, image, label, {**metadata, **own})


def _painted_image(canvas: Mapping[str, Any]) -> str | None:
    """The image request for a canvas's first painted image: through its Image API service when it has one."""
    bodies: list[Any] = []
    for page in _list(canvas.get("items")):  # Presentation 3: AnnotationPage > Annotation > body
        for annotation in _list(_dict(page).get("items")):
            if _dict(annotation).get("motivation") in ("painting", None):
                bodies += _list(_dict(annotation).get("body"))
    for image in _list(canvas.get("images")):  # Presentation 2: images > resource
        bodies += _list(_dict(image).get("resource"))
    for body in bodies:
        body = _dict(body)
        for service in _list(body.get("service")):
            service = _dict(service)
            service_id = _id(service)
            if service_id:
                kind = str(service.get("type") or service.get("@type") or "")
                size = "full" if kind == "ImageService2" or "image/2" in str(service.get("@context", "")) else "max"
                return f"{service_id.rstrip('/')}/full/{size}/0/default.jpg"
        if _id(body):
            return _id(body)
    return None


def _metadata(resource: Mapping[str, Any]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for entry in _list(resource.get("metadata")):
        label, value = _text(_dict(entry).get("label")), _text(_dict(entry).get("value"))
        if label and value:
            pairs[label] = value
    return pairs


def _text(value: Any) -> str:
    """A language map (P3), a list of language-tagged values (P2) or a string, as one string."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "@value" in value:
            return str(value["@value"])
        texts: Any = next(iter(value.values()), [])
        return "; ".join(str(t) for t in _list(texts))
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value if _text(v))
    return ""


def _id(resource: Any) -> str:
    resource = _dict(resource)
    value = resource.get("id") or resource.get("@id")
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


__all__ = [
    "CATALOG_LABELS",
    "Canvas",
    "LoadJson",
    "read_iiif",
    "read_image_services",
    "remote_json",
]
