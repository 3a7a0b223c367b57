"""The content-addressed file store: ``store/ab/abcdef....pt``, checked by sha256 before every use."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import StoreIntegrityError

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    format: str
    path: Path
    created: bool  # False when the same content was already stored (another version shares it)


class ContentStore:
    """Files named by their sha256; a file is only ever handed out after its content was re-hashed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str, file_format: str) -> Path:
        # The suffix stays: Ultralytics picks its loader from it.
        return self.root / sha256[:2] / f"{sha256}.{file_format}"

    def add(self, source: Path, file_format: str) -> StoredFile:
        """Copy ``source`` in, hashing the copy itself (not the source, which may change meanwhile)."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        handle, temp_name = tempfile.mkstemp(prefix=".incoming-", dir=self.root)
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as out, source.open("rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            target = self.path_for(sha256, file_format)
            if target.exists() and self.is_intact(target, sha256):
                temp.unlink()
                return StoredFile(sha256, size, file_format, target, created=False)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)  # also heals a tampered copy of the same content
            return StoredFile(sha256, size, file_format, target, created=True)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise

    def is_intact(self, path: Path, sha256: str) -> bool:
        return path.is_file() and sha256_file(path) == sha256

    def problem(self, sha256: str, file_format: str, size: int) -> str | None:
        """Why the stored file cannot be served, or None when it is intact."""
        path = self.path_for(sha256, file_format)
        if not path.is_file():
            return f"missing from the store ({path})"
        actual = sha256_file(path)
        if actual != sha256:
            return f"content changed: sha256 {actual[:12]}… instead of {sha256[:12]}… ({path})"
        if path.stat().st_size != size:
            return f"size {path.stat().st_size} instead of {size} ({path})"
        return None

    def verified_path(self, sha256: str, file_format: str, size: int, what: str) -> Path:
        """The stored file's path once its content is re-hashed and matches; else StoreIntegrityError."""
        problem = self.problem(sha256, file_format, size)
        if problem is not None:
            raise StoreIntegrityError(f"{what}: refusing to use the stored file, {problem}")
        return self.path_for(sha256, file_format)

    def remove(self, sha256: str, file_format: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(sha256, file_format).unlink()

    def files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("??/*") if p.is_file())
