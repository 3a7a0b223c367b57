"""Label Studio's local-files URLs, ``/data/local-files/?d=<path>``: written and read by one rule.

Label Studio serves ``d`` (decoded once, as any query value) joined onto ``LOCAL_FILES_DOCUMENT_ROOT``,
and nothing that lands outside it. PlantAI reads these URLs the same way, in the sync, the retraining
export and the backends, so a file Label Studio shows is the file the models see.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

LOCAL_FILES_PREFIX = "/data/local-files/"


class LocalFilesError(ValueError):
    """A local-files URL that names no file under the document root; the message says why."""


def local_files_url(image: Path, document_root: Path) -> str:
    """The URL Label Studio serves ``image`` under; LocalFilesError when it lies outside ``document_root``."""
    image, root = image.resolve(), document_root.resolve()
    if not image.is_relative_to(root):
        raise LocalFilesError(f"{image} is not under LOCAL_FILES_DOCUMENT_ROOT ({root}); Label Studio cannot serve it")
    return LOCAL_FILES_PREFIX + "?d=" + quote(image.relative_to(root).as_posix())


def is_local_files_url(url: str) -> bool:
    """Whether ``url`` (a path, or a full URL of a Label Studio served under any path) is a local-files URL."""
    return urlsplit(url).path.rstrip("/").endswith(LOCAL_FILES_PREFIX.rstrip("/"))


def local_file(url: str, document_root: Path) -> Path | None:
    """The file a local-files URL names, resolved under ``document_root``; None when it is not such a URL.

    LocalFilesError when it has no ``d`` or its path leaves the root (``..``, an absolute path elsewhere).
    """
    if not is_local_files_url(url):
        return None
    relative = parse_qs(urlsplit(url).query).get("d", [""])[0]
    if not relative:
        raise LocalFilesError(f"{url}: local-files URL without ?d=<path>")
    root = _resolved(document_root)
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise LocalFilesError(f"{url}: path leaves LOCAL_FILES_DOCUMENT_ROOT")
    return path


@functools.lru_cache(maxsize=16)
def _resolved(directory: Path) -> Path:  # the sync reads thousands of URLs under one root
    return directory.resolve()
