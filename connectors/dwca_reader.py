"""Reading Darwin Core Archives: the occurrence core, the multimedia extension's images (files in the
archive, or URLs fetched under the remote rules), and loose image files joined by name or barcode.

:func:`read_dwca` gives a :class:`connectors.specimens.SpecimenImport` like every other reader.
"""

from __future__ import annotations

import codecs
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from xml.etree import ElementTree as ET

from connectors.projects import CATALOG_NUMBER_KEY
from connectors.remote_media import MediaFetch, MediaRequest
from connectors.specimens import (
    FORMAT_TERMS,
    IDENTIFIER_TERMS,
    MULTIMEDIA_ROW_TYPES,
    TEXT_NS,
    Records,
    RemoteMediaFetch,
    SpecimenImport,
    SpecimenImportError,
    catalog_key,
    column_name,
    decode_text,
    is_image_file,
    join_specimens,
    with_fetched,
)


def _extract(archive: Path, extract_to: Path) -> None:
    extract_to.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    try:
        if name.endswith((".tgz", ".tar.gz")):
            with tarfile.open(archive) as tar:
                tar.extractall(extract_to, filter="data")  # refuses absolute paths, .. and links out
            return
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                if Path(member).is_absolute() or ".." in Path(member).parts:
                    raise SpecimenImportError(f"{archive}: member {member!r} would be written outside {extract_to}")
            zipped.extractall(extract_to)
    except (zipfile.BadZipFile, tarfile.TarError) as exc:
        raise SpecimenImportError(f"{archive}: not a readable zip or tar.gz archive ({exc})") from None
    except OSError as exc:
        raise SpecimenImportError(f"{archive}: cannot extract into {extract_to} ({exc})") from None


def _archive_root(directory: Path) -> Path:
    """The folder holding meta.xml: the top, or the one folder an exporter wrapped everything in."""
    if (directory / "meta.xml").is_file():
        return directory
    entries = [p for p in directory.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "meta.xml").is_file():
        return entries[0]
    return directory


def _meta_locations(root: Path) -> tuple[str | None, list[str]]:
    """(core file, extension files) as meta.xml names them, read before dwca-reader so errors can name them."""
    try:
        meta = ET.parse(root / "meta.xml").getroot()
    except (OSError, ET.ParseError):
        return None, []

    def location(section: ET.Element | None) -> str | None:
        node = None if section is None else section.find(f"{{{TEXT_NS}}}files/{{{TEXT_NS}}}location")
        return None if node is None or node.text is None else node.text.strip()

    core = location(meta.find(f"{{{TEXT_NS}}}core"))
    extensions = [loc for s in meta.findall(f"{{{TEXT_NS}}}extension") if (loc := location(s))]
    return core, extensions


def _open_reader(source: Path, root: Path) -> Any:
    from dwca.exceptions import InvalidArchive  # type: ignore[import-untyped]
    from dwca.read import DwCAReader  # type: ignore[import-untyped]

    if (root / "meta.xml").is_file():
        try:
            ET.parse(root / "meta.xml")
        except ET.ParseError as exc:
            raise SpecimenImportError(f"{source}: meta.xml is not well-formed XML ({exc})") from None
    core, extensions = _meta_locations(root)
    try:
        return DwCAReader(str(root))
    except FileNotFoundError as exc:
        missing = Path(exc.filename or "?")
        relative = missing.relative_to(root).as_posix() if missing.is_relative_to(root) else str(missing)
        role = "core data file" if relative == core else "extension file" if relative in extensions else "file"
        raise SpecimenImportError(
            f"{source}: {role} {relative!r} is named in meta.xml but missing from the archive"
        ) from None
    except InvalidArchive as exc:
        raise SpecimenImportError(f"{source}: not a valid Darwin Core Archive ({exc or 'no meta.xml'})") from None
    except (AttributeError, TypeError, ValueError) as exc:  # meta.xml without a core/id/location the reader needs
        raise SpecimenImportError(f"{source}: meta.xml does not describe a core data file ({exc})") from None


def _codec(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return name.lower()


def _check_encoding(datafile: Any, root: Path, source: Path, warnings: list[str]) -> str:
    """The encoding ``datafile`` really decodes with; switches the reader to it when the declared one fails."""
    descriptor = datafile.file_descriptor
    declared = str(descriptor.file_encoding or "utf-8")
    _, used = decode_text((root / descriptor.file_location).read_bytes(), declared)
    if _codec(used) != _codec(declared):
        warnings.append(f"{source.name}: {descriptor.file_location} is not {declared} as meta.xml says; read as {used}")
        descriptor.file_encoding = used
    return used


def _terms_record(data: Mapping[str, Any], unknown: dict[str, None]) -> dict[str, str]:
    record: dict[str, str] = {}
    for term, value in data.items():
        text = "" if value is None else str(value).strip()
        if term in ("id", "coreid") or not text:
            continue
        name, known = column_name(str(term))
        if name in record:
            name = str(term)
        if not known:
            unknown.setdefault(name)
        record[name] = text
    return record


def _media_path(identifier: str, root: Path) -> Path | str:
    """The local file an identifier names, or why it names none."""
    parsed = urlparse(identifier)
    if parsed.scheme in ("http", "https", "ftp"):
        return "a remote URL (not downloaded)"
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    path = Path(identifier)
    if path.is_absolute():
        return path
    inside = (root / path).resolve()
    if not inside.is_relative_to(root.resolve()):
        return "a path outside the archive"
    return inside


def read_dwca(
    archive_path: str | Path, extract_to: str | Path, fetch_remote: RemoteMediaFetch | None = None
) -> SpecimenImport:
    """Specimens from a Darwin Core Archive (zip or tar.gz: extracted into ``extract_to``; a folder: read in place).

    Images come from the multimedia extension (``identifier``: a path inside the archive or a local
    path; with ``fetch_remote``, a URL it fetches: :func:`connectors.remote_media.fetch_media`) and from
    image files in the archive that it does not name (joined by file name or barcode).
    """
    source = Path(archive_path)
    if source.is_dir():
        directory = source
    elif source.is_file():
        directory = Path(extract_to)
        _extract(source, directory)
    else:
        raise SpecimenImportError(f"{source}: no such archive")
    root = _archive_root(directory)
    reader = _open_reader(source, root)
    try:
        return _read_archive(reader, source, root, fetch_remote)
    finally:
        reader.close()


def _read_archive(reader: Any, source: Path, root: Path, fetch_remote: RemoteMediaFetch | None) -> SpecimenImport:
    core = reader.core_file
    warnings: list[str] = []
    encoding = _check_encoding(core, root, source, warnings)
    terms = {str(t) for t in core.file_descriptor.terms}
    if not any(column_name(t) == (CATALOG_NUMBER_KEY, True) for t in terms):
        raise SpecimenImportError(f"{source}: the core ({core.file_descriptor.file_location}) has no catalogNumber")
    records = Records(encoding=encoding, warnings=warnings)
    unknown: dict[str, None] = {}
    key_of_id: dict[str, str] = {}
    try:
        for position, row in enumerate(core.iter_rows(), start=1):
            record = _terms_record(row.data, unknown)
            key = records.add(record, f"{core.file_descriptor.file_location}, row {position}")
            number = record.get(CATALOG_NUMBER_KEY)
            if row.id is not None and number:
                key_of_id.setdefault(str(row.id), catalog_key(number))  # a duplicate's images go to the first
    except Exception as exc:  # dwca-reader raises plain exceptions on rows shorter than meta.xml declares
        raise SpecimenImportError(f"{source}: {core.file_descriptor.file_location}: unreadable row ({exc})") from None
    records.unknown_columns = list(unknown)

    linked: dict[str, list[Path]] = {}
    named: set[Path] = set()
    orphans: list[Path] = []
    remote: list[MediaRequest] = []
    for extension in reader.extension_files:
        descriptor = extension.file_descriptor
        if descriptor.type not in MULTIMEDIA_ROW_TYPES:
            warnings.append(f"{source.name}: extension {descriptor.file_location} ({descriptor.type}) not imported")
            continue
        _check_encoding(extension, root, source, warnings)
        for position, row in enumerate(extension.iter_rows(), start=1):
            where = f"{descriptor.file_location}, row {position}"
            identifier = next((str(row.data[t]).strip() for t in IDENTIFIER_TERMS if row.data.get(t)), "")
            media_format = next((str(row.data[t]).strip() for t in FORMAT_TERMS if row.data.get(t)), "")
            if not identifier:
                warnings.append(f"{where}: no identifier")
                continue
            if media_format and not media_format.lower().startswith("image/"):
                warnings.append(f"{where}: {identifier} is {media_format}, not an image; not imported")
                continue
            if fetch_remote is not None and urlparse(identifier).scheme not in ("", "file"):
                key = key_of_id.get(str(row.core_id))
                if key is None:
                    warnings.append(f"{where}: coreid {row.core_id!r} matches no core record")
                else:
                    remote.append(MediaRequest(key, identifier, where))
                continue
            path = _media_path(identifier, root)
            if isinstance(path, str):
                warnings.append(f"{where}: {identifier} is {path}")
                continue
            named.add(path.resolve())
            if not path.is_file():
                warnings.append(f"{where}: {identifier} is not in the archive (or on this machine)")
                continue
            key = key_of_id.get(str(row.core_id))
            if key is None:
                warnings.append(f"{where}: coreid {row.core_id!r} matches no core record")
                orphans.append(path)
                continue
            linked.setdefault(key, []).append(path)

    fetched = fetch_remote(remote) if fetch_remote is not None and remote else MediaFetch()
    for request in remote:
        media = fetched.fetched.get(request.url)
        if media is not None:
            linked.setdefault(request.key, []).append(media.path)
            named.add(media.path.resolve())
    loose = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and is_image_file(p) and p.resolve() not in named and not p.name.startswith(".")
    )
    return with_fetched(join_specimens(records, linked, [*orphans, *loose], []), fetched)
