"""Specimens from IIIF manifests and collections served by a real server on loopback, and from service lists."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.iiif_import import read_iiif, read_image_services, remote_json
from herbarium.remote import RemoteFetcher, RemotePolicy
from tests.fixtures.iiif_manifests import p2_manifest, p3_manifest
from tests.fixtures.static_files import StaticServer

CANVASES = 20


@pytest.fixture
def iiif_host(tmp_path: Path, static_server: Callable[[Path], StaticServer]) -> StaticServer:
    """A collection of a 20-canvas P3 manifest, a P2 manifest, a manifest off the allow-list and a 404."""
    root = tmp_path / "host"
    (root / "iiif").mkdir(parents=True)
    server = static_server(root)
    base = server.url
    documents = {
        "batch.json": p3_manifest(base, "batch", CANVASES, per_canvas_numbers=True),
        "p2.json": p2_manifest(base),
        "collection.json": {
            "@context": "http://iiif.io/api/presentation/3/context.json",
            "id": f"{base}/iiif/collection.json",
            "type": "Collection",
            "items": [
                {"id": f"{base}/iiif/batch.json", "type": "Manifest"},
                {"id": f"{base}/iiif/p2.json", "type": "Manifest"},
                {"id": "https://iiif.not-listed.example/manifest.json", "type": "Manifest"},
                {"id": f"{base}/iiif/missing.json", "type": "Manifest"},
            ],
        },
    }
    for name, document in documents.items():
        (root / "iiif" / name).write_text(json.dumps(document), encoding="utf-8")
    return server


def _load() -> Any:
    return remote_json(RemoteFetcher(RemotePolicy.parse("127.0.0.1", max_bytes=2**20, seconds=10.0)))


def test_a_manifest_of_20_canvases_is_20_specimens_left_remote(iiif_host: StaticServer) -> None:
    found = read_iiif(f"{iiif_host.url}/iiif/batch.json", _load())
    assert [s.catalog_number for s in found.specimens] == [f"E{1000 + i:08d}" for i in range(CANVASES)]
    first = found.specimens[0]
    assert first.image == f"{iiif_host.url}/iiif/img/batch-0/full/max/0/default.jpg"  # shown and predicted remote
    assert first.record["Institution"] == "Royal Botanic Garden Edinburgh"
    assert first.record["iiifCanvas"] == f"{iiif_host.url}/iiif/batch/canvas/0"
    assert first.record["iiifManifest"] == f"{iiif_host.url}/iiif/batch.json"
    assert iiif_host.asked == ["/iiif/batch.json"]  # the manifest only: no image is downloaded
    assert not found.has_problems


def test_a_collection_reads_every_manifest_and_reports_each_one_it_cannot(iiif_host: StaticServer) -> None:
    found = read_iiif(f"{iiif_host.url}/iiif/collection.json", _load())
    assert len(found.specimens) == CANVASES + 1
    p2 = found.specimens[-1]
    assert (p2.catalog_number, p2.image) == ("B 10 0003487", f"{iiif_host.url}/iiif/img/p2/full/full/0/default.jpg")
    assert p2.record["Collector"] == "Taylor, A.R.A."
    refused = {r.url.rsplit("/", 1)[-1]: r.reason for r in found.refused_media}
    assert refused == {"manifest.json": "host", "missing.json": "status"}


def test_a_manifests_canvases_without_their_own_number_are_told_apart(
    tmp_path: Path, static_server: Callable[[Path], StaticServer]
) -> None:
    server = static_server(tmp_path)
    manifest = p3_manifest(server.url, "specimen", 2, per_canvas_numbers=False)
    manifest["metadata"].append({"label": {"en": ["catalogNumber"]}, "value": {"none": ["E00001234"]}})
    (tmp_path / "iiif").mkdir()
    (tmp_path / "iiif" / "specimen.json").write_text(json.dumps(manifest), encoding="utf-8")
    found = read_iiif(f"{server.url}/iiif/specimen.json", _load())
    assert [s.catalog_number for s in found.specimens] == ["sheet 0", "sheet 1"]


def test_malformed_documents_are_reported_not_raised(
    tmp_path: Path, static_server: Callable[[Path], StaticServer]
) -> None:
    server = static_server(tmp_path)
    (tmp_path / "not-json.json").write_text("<html>", encoding="utf-8")
    (tmp_path / "canvas.json").write_text(json.dumps({"type": "Canvas"}), encoding="utf-8")
    (tmp_path / "blank.json").write_text(json.dumps({"type": "Manifest", "items": [{"type": "Canvas"}]}), "utf-8")
    for name, message in (("not-json", "not JSON"), ("canvas", "a Canvas resource"), ("blank", "no image painted")):
        found = read_iiif(f"{server.url}/{name}.json", _load())
        assert found.specimens == []
        assert [r.reason for r in found.refused_media] == ["document"]
        assert message in found.refused_media[0].message


def test_a_list_of_image_services() -> None:
    lines = [
        "https://iiif.example.org/iiif/3/BM000521755/info.json",
        "# a comment",
        "https://iiif.example.org/iiif/3/L__0059912",
        "not a url",
        "https://iiif.example.org/iiif/3/BM000521755",
    ]
    found = read_image_services(lines)
    assert [s.catalog_number for s in found.specimens] == ["BM000521755", "L__0059912"]
    assert found.specimens[0].image == "https://iiif.example.org/iiif/3/BM000521755/full/max/0/default.jpg"
    assert found.duplicate_catalog_numbers == ["BM000521755"]
    assert found.warnings == ["line 4: 'not a url' is not an image service URL"]
