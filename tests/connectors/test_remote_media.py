"""A Darwin Core Archive whose multimedia rows are URLs: images fetched from a real server on loopback."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from connectors.dwca_reader import read_dwca
from connectors.dwca_writer import write_dwca
from connectors.projects import SpecimenTask
from connectors.remote_media import LEDGER, MediaFetch, MediaRequest, fetch_media, read_ledger
from connectors.specimens import RemoteMediaFetch, read_url_csv
from herbarium.remote import RemoteFetcher, RemotePolicy
from tests.fixtures.static_files import StaticServer

SHEETS = 8


def _jpeg(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((30, 20, 3), shade, dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def image_server(tmp_path: Path, static_server: Callable[[Path], StaticServer]) -> StaticServer:
    served = tmp_path / "served"
    served.mkdir()
    for i in range(SHEETS):
        (served / f"UNB{i:03d}.jpg").write_bytes(_jpeg(40 + 20 * i))
    (served / "UNB900.jpg").write_bytes(_jpeg(0)[:300])  # cut short: it opens, but its pixels do not decode
    return static_server(served)


@pytest.fixture
def archive(tmp_path: Path, image_server: StaticServer) -> Path:
    """Eight good image URLs, one not an image, one missing (404), one on a host not on the allow-list."""
    numbers = [f"UNB{i:03d}" for i in range(SHEETS)] + ["UNB900", "UNB901", "UNB902"]
    urls = {n: f"{image_server.url}/{n}.jpg" for n in numbers}
    urls["UNB902"] = "http://images.herbarium-not-listed.example/UNB902.jpg"
    specimens = [SpecimenTask(n, urls[n], {"scientificName": "Viola sororia"}) for n in numbers]
    return write_dwca(specimens, tmp_path / "herbarium-dwca.zip")


def _fetch_into(folder: Path, progress: list[int] | None = None) -> RemoteMediaFetch:
    fetcher = RemoteFetcher(RemotePolicy.parse("127.0.0.1", max_bytes=2**20, seconds=10.0))
    seen = progress if progress is not None else []

    def fetch(requests: Sequence[MediaRequest]) -> MediaFetch:
        return fetch_media(requests, folder, fetcher, workers=4, on_done=lambda done, total: seen.append(done))

    return fetch


def test_image_urls_are_fetched_checked_and_recorded_and_each_refusal_reported(
    tmp_path: Path, archive: Path, image_server: StaticServer
) -> None:
    media = tmp_path / "root" / "dwca" / "media"
    progress: list[int] = []
    found = read_dwca(archive, tmp_path / "root" / "dwca", _fetch_into(media, progress))
    assert sorted(s.catalog_number for s in found.specimens) == [f"UNB{i:03d}" for i in range(SHEETS)]
    for specimen in found.specimens:
        assert specimen.image.parent == media
        assert specimen.record["associatedMedia"] == f"{image_server.url}/{specimen.catalog_number}.jpg"
        assert specimen.record["imageSha256"] == hashlib.sha256(specimen.image.read_bytes()).hexdigest()
    refused = {r.url.rsplit("/", 1)[-1]: r.reason for r in found.refused_media}
    assert refused == {"UNB900.jpg": "image", "UNB901.jpg": "status", "UNB902.jpg": "host"}
    assert all(r.where.startswith("multimedia.txt, row ") for r in found.refused_media)
    assert sorted(found.unmatched_records) == ["UNB900", "UNB901", "UNB902"]
    assert found.has_problems
    assert (found.fetched_media, found.fetched_earlier) == (SHEETS, 0)
    assert progress[-1] == SHEETS + 3  # every URL tried once...
    assert not any(p.endswith("UNB902.jpg") for p in image_server.asked)  # ...the unlisted host's without a request
    assert json.loads(json.dumps(found.to_json()))["refused_media"][0]["reason"] in {"image", "status", "host"}


def test_a_rerun_fetches_nothing_already_fetched(tmp_path: Path, archive: Path, image_server: StaticServer) -> None:
    media = tmp_path / "media"
    read_dwca(archive, tmp_path / "first", _fetch_into(media))
    asked = len(image_server.asked)
    again = read_dwca(archive, tmp_path / "second", _fetch_into(media))
    assert (again.fetched_media, again.fetched_earlier) == (SHEETS, SHEETS)
    assert len(again.specimens) == SHEETS
    assert len(image_server.asked) - asked == 2  # only the two that failed are asked again


def test_a_killed_runs_torn_ledger_line_and_missing_files_are_fetched_again(
    tmp_path: Path, archive: Path, image_server: StaticServer
) -> None:
    media = tmp_path / "media"
    read_dwca(archive, tmp_path / "first", _fetch_into(media))
    ledger = (media / LEDGER).read_text(encoding="utf-8").splitlines()
    (media / LEDGER).write_text("\n".join(ledger[:-1]) + "\n" + ledger[-1][:20], encoding="utf-8")  # torn
    gone = next(iter(read_ledger(media).values())).path
    gone.unlink()
    assert len(read_ledger(media)) == SHEETS - 2
    again = read_dwca(archive, tmp_path / "second", _fetch_into(media))
    assert (len(again.specimens), again.fetched_earlier) == (SHEETS, SHEETS - 2)
    assert gone.is_file()


def test_without_a_fetcher_image_urls_are_warned_about_not_fetched(tmp_path: Path, archive: Path) -> None:
    found = read_dwca(archive, tmp_path / "dwca")
    assert found.specimens == []
    assert sum("a remote URL (not downloaded)" in w for w in found.warnings) == SHEETS + 3


def test_a_csv_whose_associated_media_are_urls(tmp_path: Path, image_server: StaticServer) -> None:
    rows = [
        "catalogNumber,scientificName,associatedMedia",
        f"UNB000,Viola sororia,{image_server.url}/UNB000.jpg | {image_server.url}/UNB001.jpg",  # the first is the sheet
        f"UNB002,Viola sororia,{image_server.url}/UNB002.jpg",
        f"UNB901,Viola sororia,{image_server.url}/UNB901.jpg",  # 404
        "UNB903,Viola sororia,",  # no image named
    ]
    (tmp_path / "occurrence.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    found = read_url_csv(tmp_path / "occurrence.csv", _fetch_into(tmp_path / "media"))
    assert [s.catalog_number for s in found.specimens] == ["UNB000", "UNB002"]
    assert found.specimens[0].record["imageSha256"] == hashlib.sha256(found.specimens[0].image.read_bytes()).hexdigest()
    assert [(r.where, r.reason) for r in found.refused_media] == [("occurrence.csv, UNB901", "status")]
    assert sorted(found.unmatched_records) == ["UNB901", "UNB903"]
    assert sorted(image_server.asked) == ["/UNB000.jpg", "/UNB002.jpg", "/UNB901.jpg"]  # one URL a record
