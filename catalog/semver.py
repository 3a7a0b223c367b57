"""Semantic version strings (https://semver.org): validation, ordering and the next version."""

from __future__ import annotations

import re

from catalog.errors import InvalidVersionError

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

FIRST_VERSION = "1.0.0"

SortKey = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]


def validate_version(version: str) -> str:
    if not _SEMVER.match(version):
        raise InvalidVersionError(f"version {version!r} is not a semantic version such as 1.2.0 or 2.0.0-rc.1")
    return version


def version_key(version: str) -> SortKey:
    """Semantic-version precedence: pre-releases sort before their release; build metadata is ignored."""
    match = _SEMVER.match(version)
    if match is None:
        raise InvalidVersionError(f"version {version!r} is not a semantic version")
    major, minor, patch, prerelease, _build = match.groups()
    if prerelease is None:
        return int(major), int(minor), int(patch), 1, ()
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in prerelease.split("."))
    return int(major), int(minor), int(patch), 0, parts


def next_version(existing: list[str]) -> str:
    """The next minor release after the highest existing version (new weights, same interface)."""
    if not existing:
        return FIRST_VERSION
    major, minor, *_ = version_key(max(existing, key=version_key))
    return f"{major}.{minor + 1}.0"
