"""The one place that turns a Label Studio task's image reference into pixels.

A file under ``LOCAL_FILES_DOCUMENT_ROOT`` is read from disk; anything else is downloaded from
the Label Studio the backend was configured with, or from a host on ``PLANTAI_REMOTE_HOSTS`` under
:mod:`herbarium.remote`'s rules, and from no other host (no SSRF: a task, or a ``/setup`` call, cannot
point the backend at an address of its choosing). From a IIIF Image API service only the size the
model decodes is asked for.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from herbarium.iiif import IIIFError, info_url, shown_size, sized_request
from herbarium.imaging import ImageReadError, SpecimenImage, read_image
from herbarium.labels.local_files import LocalFilesError, is_local_files_url, local_file
from herbarium.remote import RemoteFetcher, RemoteRefusedError

MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024  # a 600-ppi TIFF master is 150-200 MB


class TaskImageError(ValueError):
    """A task whose image cannot be had; the message says why."""


@dataclass
class LabelStudioAccess:
    """Where images may be downloaded from, and the key to do it.

    ``api_key`` is a legacy token or a personal access token (a JWT refresh token, exchanged
    for a short-lived access token as Label Studio requires).
    """

    url: str
    api_key: str | None = None
    timeout: float = 30.0
    _access_token: str | None = field(default=None, repr=False)
    _access_expires: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TaskImageError(f"LABEL_STUDIO_URL: expected http(s)://host[:port], got {self.url!r}")
        self.url = self.url.rstrip("/")

    @property
    def origin(self) -> tuple[str, str, int]:
        parts = urlsplit(self.url)
        return (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))

    def is_personal_access_token(self) -> bool:
        return bool(self.api_key) and self.api_key.count(".") == 2  # type: ignore[union-attr]

    def auth_header(self) -> dict[str, str]:
        if not self.api_key:
            return {}
        if not self.is_personal_access_token():
            return {"Authorization": f"Token {self.api_key}"}
        with self._lock:
            if self._access_token is None or time.monotonic() > self._access_expires:
                response = requests.post(
                    f"{self.url}/api/token/refresh/", json={"refresh": self.api_key}, timeout=self.timeout
                )
                if response.status_code != 200:
                    raise TaskImageError(
                        f"Label Studio refused the personal access token (/api/token/refresh/: {response.status_code})"
                    )
                self._access_token = str(response.json()["access"])
                self._access_expires = time.monotonic() + 240  # access tokens live 5 minutes
            return {"Authorization": f"Bearer {self._access_token}"}


class TaskImages:
    """Reads task images, decoded at reduced size, from disk or from the configured Label Studio."""

    def __init__(
        self,
        document_root: Path | None,
        label_studio: LabelStudioAccess | None,
        remote: RemoteFetcher | None = None,
    ) -> None:
        self.document_root = document_root.resolve() if document_root else None
        self.label_studio = label_studio
        self.remote = remote  # hosts on PLANTAI_REMOTE_HOSTS (herbaria's image servers), under its rules
        self._session = requests.Session()

    def reference(self, task: Any, data_key: str) -> str:
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            raise TaskImageError("task has no 'data' object")
        ref = data.get(data_key)
        if not isinstance(ref, str) or not ref:
            raise TaskImageError(f"task data has no image under {data_key!r}")
        return ref

    def read(self, ref: str, max_side: int | None) -> SpecimenImage:
        """Pixels of the image ``ref`` names; TaskImageError or ImageReadError when it cannot be had."""
        local = self.local_path(ref)
        try:
            if local is not None:
                return read_image(local, max_side=max_side)
            if self._is_remote(ref):
                return self._read_remote(ref, max_side)
            return read_image(self.download(ref), max_side=max_side, name=ref)
        except ImageReadError:
            raise
        except OSError as exc:
            raise TaskImageError(f"{ref}: {exc}") from None

    def local_path(self, ref: str) -> Path | None:
        """The file a ``/data/local-files/?d=...`` reference names, when it lies under the document root."""
        if self.document_root is None or not is_local_files_url(ref):
            return None
        if urlsplit(ref).netloc and not self._is_label_studio(ref):
            return None  # a foreign host's URL shaped like ours: download() refuses it
        try:
            return local_file(ref, self.document_root)
        except LocalFilesError as error:
            raise TaskImageError(str(error)) from None

    def _is_remote(self, ref: str) -> bool:
        """A URL on an allowed remote host (an herbarium's image server), not Label Studio's."""
        parts = urlsplit(ref)
        return (
            self.remote is not None
            and bool(parts.netloc)
            and not self._is_label_studio(ref)
            and self.remote.policy.lists_host((parts.hostname or "").lower())
        )

    def _read_remote(self, ref: str, max_side: int | None) -> SpecimenImage:
        """A remote image; from a IIIF Image API service, the size needed (its full size from info.json)."""
        assert self.remote is not None
        info = info_url(ref)
        try:
            if max_side is None or info is None:
                return read_image(self.remote.fetch(ref).data, max_side=max_side, name=ref)
            service = json.loads(self.remote.fetch(info).data)
            width, height = shown_size(service)  # the frame Label Studio shows for full/max
            sized = sized_request(ref, max_side, service) or ref
            picture = read_image(self.remote.fetch(sized).data, max_side=max_side, name=sized)
        except RemoteRefusedError as refusal:
            raise TaskImageError(str(refusal)) from None
        except (json.JSONDecodeError, UnicodeDecodeError, IIIFError) as error:  # not an info.json
            raise TaskImageError(f"{info}: {error}") from None
        return SpecimenImage(picture.image, width, height, source=picture.source)

    def _is_label_studio(self, url: str) -> bool:
        if self.label_studio is None:
            return False
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        return origin == self.label_studio.origin

    def download(self, ref: str) -> bytes:
        if self.label_studio is None:
            raise TaskImageError(
                f"{ref}: not under LOCAL_FILES_DOCUMENT_ROOT, not on PLANTAI_REMOTE_HOSTS, and no LABEL_STUDIO_URL "
                "to download from"
            )
        parts = urlsplit(ref)
        if parts.scheme or parts.netloc:
            if not self._is_label_studio(ref):
                raise TaskImageError(
                    f"{ref}: refusing to download from a host other than {self.label_studio.url} "
                    "and those on PLANTAI_REMOTE_HOSTS"
                )
            url = ref
        elif ref.startswith("/"):
            url = urljoin(self.label_studio.url + "/", ref.lstrip("/"))
        else:
            raise TaskImageError(f"{ref}: not a URL path Label Studio serves")
        try:
            with self._session.get(
                url,
                headers=self.label_studio.auth_header(),
                timeout=self.label_studio.timeout,
                stream=True,
                allow_redirects=False,  # a redirect could lead anywhere
            ) as response:
                if response.status_code != 200:
                    raise TaskImageError(f"{ref}: Label Studio answered {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_content(1 << 20):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise TaskImageError(f"{ref}: larger than {MAX_DOWNLOAD_BYTES >> 20} MB")
                    chunks.append(chunk)
                return b"".join(chunks)
        except requests.RequestException as exc:
            raise TaskImageError(f"{ref}: download failed ({exc.__class__.__name__})") from None
