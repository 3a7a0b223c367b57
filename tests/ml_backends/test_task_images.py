"""Task images come from the document root or the configured Label Studio, and nowhere else."""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from herbarium.imaging import ImageReadError
from herbarium.remote import RemoteFetcher, RemotePolicy
from ml_backends.task_images import LabelStudioAccess, TaskImageError, TaskImages


def _jpeg_bytes(width: int = 60, height: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 180, dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Serves one JPEG at /data/upload/sheet.jpg, and a redirect at /moved; records every request."""

    requests: list[tuple[str, str | None]]
    image = _jpeg_bytes()

    def do_GET(self) -> None:
        self.requests.append((self.path, self.headers.get("Authorization")))
        if self.path == "/iiif/sheet-1/info.json":  # a IIIF Image API service whose master is 6000 x 9000
            self._answer(json.dumps({"id": "sheet-1", "width": 6000, "height": 9000}).encode(), "application/json")
            return
        if self.path.startswith("/iiif/sheet-1/full/") and self.path.endswith("/0/default.jpg"):
            self._answer(_jpeg_bytes(40, 60), "image/jpeg")  # the derivative, whatever size was asked
            return
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2:1/elsewhere")
            self.end_headers()
            return
        if self.path != "/data/upload/sheet.jpg":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.end_headers()
        self.wfile.write(self.image)

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(host: str) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (_Recorder,), {"requests": seen})
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{host}:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_label_studio() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def canary() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """A server on another loopback address that must never be asked anything."""
    yield from _serve("127.0.0.2")


def test_local_files_are_read_from_the_document_root(tmp_path: Path) -> None:
    (tmp_path / "scans 2024").mkdir()
    (tmp_path / "scans 2024" / "a.jpg").write_bytes(_jpeg_bytes(60, 90))
    images = TaskImages(tmp_path, None)
    ref = images.reference({"data": {"image": "/data/local-files/?d=scans%202024/a.jpg"}}, "image")
    picture = images.read(ref, max_side=45)
    assert (picture.original_width, picture.original_height) == (60, 90)
    assert max(picture.image.size) == 45


def test_paths_leaving_the_document_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.jpg").write_bytes(_jpeg_bytes())
    with pytest.raises(TaskImageError, match="leaves LOCAL_FILES_DOCUMENT_ROOT"):
        TaskImages(root, None).read("/data/local-files/?d=../secret.jpg", max_side=None)


def test_downloads_come_from_label_studio_with_its_token(
    fake_label_studio: tuple[str, list[tuple[str, str | None]]],
) -> None:
    url, seen = fake_label_studio
    images = TaskImages(None, LabelStudioAccess(url=url, api_key="legacy-token-123"))
    picture = images.read("/data/upload/sheet.jpg", max_side=None)
    assert picture.image.size == (60, 90)
    assert seen == [("/data/upload/sheet.jpg", "Token legacy-token-123")]
    # An absolute URL on the same Label Studio is fine too.
    assert images.read(f"{url}/data/upload/sheet.jpg", max_side=None).image.size == (60, 90)


@pytest.mark.parametrize("path", ["/elsewhere.jpg", "/data/local-files/?d=a.jpg"])
def test_foreign_hosts_are_never_contacted(
    fake_label_studio: tuple[str, list[tuple[str, str | None]]],
    canary: tuple[str, list[tuple[str, str | None]]],
    tmp_path: Path,
    path: str,
) -> None:
    url, _ = fake_label_studio
    canary_url, canary_seen = canary
    images = TaskImages(tmp_path, LabelStudioAccess(url=url, api_key="legacy-token-123"))
    with pytest.raises(TaskImageError, match="refusing to download from a host other than"):
        images.read(f"{canary_url}{path}", max_side=None)
    assert canary_seen == []


def test_redirects_are_not_followed(
    fake_label_studio: tuple[str, list[tuple[str, str | None]]],
    canary: tuple[str, list[tuple[str, str | None]]],
) -> None:
    url, _ = fake_label_studio
    _, canary_seen = canary
    images = TaskImages(None, LabelStudioAccess(url=url))
    with pytest.raises(TaskImageError, match="answered 302"):
        images.read("/moved", max_side=None)
    assert canary_seen == []


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({}, "no 'data'"),
        ({"data": {}}, "no image under 'image'"),
        ({"data": {"image": ""}}, "no image under 'image'"),
    ],
)
def test_tasks_without_an_image_are_refused(task: dict[str, object], message: str) -> None:
    with pytest.raises(TaskImageError, match=message):
        TaskImages(None, None).reference(task, "image")


def test_without_label_studio_only_local_files_can_be_read(tmp_path: Path) -> None:
    with pytest.raises(TaskImageError, match="no LABEL_STUDIO_URL"):
        TaskImages(tmp_path, None).read("/data/upload/sheet.jpg", max_side=None)


def test_unreadable_local_file_is_an_image_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.jpg"):
        TaskImages(tmp_path, None).read("/data/local-files/?d=empty.jpg", max_side=None)


def _remote(allow: str) -> RemoteFetcher:
    return RemoteFetcher(RemotePolicy.parse(allow, max_bytes=2**20, seconds=10.0))


def test_a_iiif_image_on_an_allowed_host_is_asked_at_the_size_the_model_decodes(
    canary: tuple[str, list[tuple[str, str | None]]],
) -> None:
    server, seen = canary
    images = TaskImages(None, None, _remote("127.0.0.2"))
    picture = images.read(f"{server}/iiif/sheet-1/full/max/0/default.jpg", max_side=1024)
    assert [path for path, _ in seen] == ["/iiif/sheet-1/info.json", "/iiif/sheet-1/full/!1024,1024/0/default.jpg"]
    assert (picture.original_width, picture.original_height) == (6000, 9000)  # the frame Label Studio shows
    assert picture.image.size == (40, 60)


def test_a_remote_image_is_read_whole_when_the_model_wants_every_pixel(
    canary: tuple[str, list[tuple[str, str | None]]],
) -> None:
    server, seen = canary
    picture = TaskImages(None, None, _remote("127.0.0.2")).read(f"{server}/iiif/sheet-1/full/max/0/default.jpg", None)
    assert [path for path, _ in seen] == ["/iiif/sheet-1/full/max/0/default.jpg"]
    assert (picture.original_width, picture.original_height) == (40, 60)


def test_a_host_off_the_remote_list_is_never_contacted(
    fake_label_studio: tuple[str, list[tuple[str, str | None]]],
    canary: tuple[str, list[tuple[str, str | None]]],
) -> None:
    server, seen = canary
    images = TaskImages(None, None, _remote("127.0.0.1"))  # another loopback address is listed, not this one
    with pytest.raises(TaskImageError, match="not on PLANTAI_REMOTE_HOSTS"):
        images.read(f"{server}/iiif/sheet-1/full/max/0/default.jpg", max_side=1024)
    assert seen == []
