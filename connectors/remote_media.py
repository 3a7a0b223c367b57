"""Specimen images named by URL (a DwC-A's multimedia rows): fetched in parallel, resumably, each checked.

Each URL is fetched under :mod:`herbarium.remote`'s rules (the allow-list, public addresses, size and
time caps), checked to be an image, and stored in a folder under Label Studio's document root by its
sha256 (one file however many URLs lead to it). A ledger in that folder (``fetched.jsonl``, one line per
URL, appended as each fetch completes) records the source URL, the file and its sha256: a rerun fetches
only the URLs it lacks, and a killed run loses only the fetches that were in flight. Every URL that
could not be had is reported with the rule or reason, per record: none is dropped silently.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from herbarium.imaging import ImageReadError, read_image
from herbarium.remote import RemoteFetcher, RemoteRefusedError

LEDGER = "fetched.jsonl"
ASSOCIATED_MEDIA = "associatedMedia"  # Darwin Core's term for a record's media URLs
CHECK_SIDE = 256  # decoded this small to check a fetched image: JPEG decodes at 1/8 scale, reading every byte
DEFAULT_WORKERS = 8  # parallel fetches: enough to hide latency, few enough not to hammer one server
# File suffixes by the first bytes (what a fetched file is, whatever its URL or Content-Type says).
_MAGIC = ((b"\xff\xd8", ".jpg"), (b"\x89PNG", ".png"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"), (b"GIF8", ".gif"),
          (b"\x00\x00\x00\x0cjP", ".jp2"))  # fmt: skip


@dataclass(frozen=True)
class MediaRequest:
    """One image URL of one specimen, and where it was named (for the report)."""

    key: str  # the specimen's catalog key
    url: str
    where: str  # e.g. "multimedia.txt, row 3"


@dataclass(frozen=True)
class FetchedMedia:
    url: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class RefusedMedia:
    """A URL not fetched: ``reason`` is the remote rule refused (scheme, host, address, ...), ``image`` or ``error``."""

    url: str
    where: str
    reason: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"url": self.url, "where": self.where, "reason": self.reason, "message": self.message}


@dataclass
class MediaFetch:
    """What a run brought: each URL's file (from this run or an earlier one), and the URLs refused."""

    fetched: dict[str, FetchedMedia] = field(default_factory=dict)
    refused: list[RefusedMedia] = field(default_factory=list)
    from_earlier_runs: int = 0


def read_ledger(folder: Path) -> dict[str, FetchedMedia]:
    """URL → its file, for the ledger's entries whose file is still there (a torn last line is skipped)."""
    path = folder / LEDGER
    if not path.is_file():
        return {}
    known: dict[str, FetchedMedia] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            media = FetchedMedia(str(entry["url"]), folder / str(entry["file"]), str(entry["sha256"]))
        except (ValueError, KeyError, TypeError):
            continue  # the line a killed run was writing
        if media.path.is_file():
            known[media.url] = media
    return known


def fetch_media(
    requests: Sequence[MediaRequest],
    folder: Path,
    fetcher: RemoteFetcher,
    workers: int = DEFAULT_WORKERS,
    on_done: Callable[[int, int], None] | None = None,
) -> MediaFetch:
    """Fetch every request's URL not already in ``folder``'s ledger; ``on_done(done, total)`` after each."""
    folder.mkdir(parents=True, exist_ok=True)
    result = MediaFetch()
    earlier = read_ledger(folder)
    wanted: dict[str, list[MediaRequest]] = {}
    for request in requests:
        wanted.setdefault(request.url, []).append(request)
    for url in [u for u in wanted if u in earlier]:
        result.fetched[url] = earlier[url]
        result.from_earlier_runs += 1
    todo = [url for url in wanted if url not in earlier]
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = {pool.submit(_fetch_one, url, folder, fetcher): url for url in todo}
        for done, future in enumerate(as_completed(futures), start=1):  # here, in this thread: one ledger writer
            url = futures[future]
            outcome = future.result()
            if isinstance(outcome, FetchedMedia):
                result.fetched[url] = outcome
                _append_ledger(folder, outcome)
            else:
                reason, message = outcome
                result.refused += [RefusedMedia(url, r.where, reason, message) for r in wanted[url]]
            if on_done is not None:
                on_done(done, len(todo))
    finally:  # interrupted: what is queued is dropped, not fetched unrecorded
        pool.shutdown(wait=True, cancel_futures=True)
    result.refused.sort(key=lambda refused: refused.where)
    return result


def _fetch_one(url: str, folder: Path, fetcher: RemoteFetcher) -> FetchedMedia | tuple[str, str]:
    """The URL's file, or (reason, message): one URL's trouble never ends the run."""
    try:
        fetched = fetcher.fetch(url)
    except RemoteRefusedError as refusal:
        return refusal.reason, str(refusal)
    except Exception as error:
        return "error", f"{url}: {error.__class__.__name__}: {error}"
    try:
        read_image(fetched.data, max_side=CHECK_SIDE, name=url)  # every byte decoded (a cut file fails), small
    except ImageReadError as error:
        return "image", f"not a readable image ({error})"  # the error names the URL
    target = folder / f"{fetched.sha256}{_suffix(fetched.data)}"
    if not target.is_file():
        partial = target.with_name(f".{target.name}.{threading.get_ident()}.part")
        partial.write_bytes(fetched.data)
        os.replace(partial, target)  # whole or absent: a killed run leaves no half image under its name
    return FetchedMedia(url, target, fetched.sha256)


def _suffix(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((suffix for magic, suffix in _MAGIC if data.startswith(magic)), ".img")


def _append_ledger(folder: Path, media: FetchedMedia) -> None:
    line = json.dumps({"url": media.url, "file": media.path.name, "sha256": media.sha256})
    with (folder / LEDGER).open("a", encoding="utf-8") as ledger:
        ledger.write(line + "\n")
        ledger.flush()
        os.fsync(ledger.fileno())


def source_fields(media: Iterable[FetchedMedia]) -> dict[Path, dict[str, str]]:
    """Each fetched file's record fields: where it came from (Darwin Core's associatedMedia) and its sha256."""
    return {m.path: {ASSOCIATED_MEDIA: m.url, "imageSha256": m.sha256} for m in media}


__all__ = [
    "ASSOCIATED_MEDIA",
    "DEFAULT_WORKERS",
    "LEDGER",
    "FetchedMedia",
    "MediaFetch",
    "MediaRequest",
    "RefusedMedia",
    "fetch_media",
    "read_ledger",
    "source_fields",
]
