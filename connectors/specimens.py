"""Specimens in: images joined to their Darwin Core records, from a folder + CSV or a Darwin Core Archive.

``catalogNumber`` joins an image to its record: the image's file stem when it equals a catalog
number (case and whitespace aside), else the Code 128/QR/... barcode on the sheet, decoded with
zxing-cpp on a reduced picture first and at full resolution only when that finds nothing. In a
Darwin Core Archive the multimedia extension links images to core rows first; images it does not
name are joined the same way as in a folder (:func:`connectors.dwca_reader.read_dwca` reads archives).

Nothing is dropped silently: a :class:`SpecimenImport` lists the images and records left
unmatched, duplicate catalog numbers (first record kept), images that do not open, columns that
are not Darwin Core terms (kept under their own name), extra images of a specimen that already has
one, and anything else worth a look (``warnings``: a CSV read as cp1252, a line with a stray quote
read as written, a media file missing from the archive, a remote identifier). Input that cannot be read
at all raises :class:`SpecimenImportError`, naming the file.

:func:`connectors.dwca_writer.write_dwca` writes the small archive the reader reads: an occurrence core and a Simple
Multimedia extension (``identifier``, ``format``), images inside the zip.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import zxingcpp

from connectors.projects import CATALOG_NUMBER_KEY, SpecimenTask
from connectors.remote_media import ASSOCIATED_MEDIA, MediaFetch, MediaRequest, RefusedMedia, source_fields
from herbarium.imaging import ImageReadError, oriented_size, read_image
from herbarium.synth import DARWIN_CORE_TERMS

DWC_NS = "http://rs.tdwg.org/dwc/terms/"
DC_NS = "http://purl.org/dc/terms/"
DC_ELEMENTS_NS = "http://purl.org/dc/elements/1.1/"
AC_NS = "http://rs.tdwg.org/ac/terms/"
TEXT_NS = "http://rs.tdwg.org/dwc/text/"
OCCURRENCE_ROW_TYPE = DWC_NS + "Occurrence"
MULTIMEDIA_ROW_TYPE = "http://rs.gbif.org/terms/1.0/Multimedia"  # GBIF Simple Multimedia
MULTIMEDIA_ROW_TYPES = frozenset(
    {MULTIMEDIA_ROW_TYPE, "http://rs.gbif.org/terms/1.0/Image", AC_NS + "Multimedia", AC_NS + "Media"}
)
# Fetches a source's image URLs (connectors.remote_media.fetch_media with its folder and fetcher bound).
RemoteMediaFetch = Callable[[Sequence[MediaRequest]], MediaFetch]
IDENTIFIER_TERMS = (DC_NS + "identifier", AC_NS + "accessURI", DC_ELEMENTS_NS + "identifier")
FORMAT_TERMS = (DC_NS + "format", DC_ELEMENTS_NS + "format")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".heic", ".heif"})
BARCODE_MAX_SIDE = 2000  # reduced decode first: a barcode on a 10k px scan still reads at this size
FALLBACK_ENCODINGS = ("cp1252", "latin-1")  # after UTF-8: what spreadsheets on Windows write


def _known_terms() -> dict[str, str]:
    """Short name -> full term URI, for Darwin Core and the Dublin Core terms occurrence files carry."""
    from dwca.darwincore.terms import TERMS  # type: ignore[import-untyped]

    known: dict[str, str] = {}
    for term in [*TERMS, *(DWC_NS + name for name in DARWIN_CORE_TERMS)]:
        known.setdefault(term.rsplit("/", 1)[-1], term)
    return known


KNOWN_TERMS: Mapping[str, str] = _known_terms()
_KNOWN_BY_FOLDED = {name.casefold(): name for name in KNOWN_TERMS}
_PREFIXES = ("dwc:", "dcterms:", "dc:", "ac:")


class SpecimenImportError(ValueError):
    """Input that cannot be read as asked (a missing core file, no catalogNumber column); the message names it."""


@dataclass(frozen=True)
class UnreadableImage:
    path: Path
    reason: str


@dataclass(frozen=True)
class BarcodeMatch:
    """An image whose file name did not give its catalog number, joined through the barcode on the sheet."""

    image: Path
    catalog_number: str


@dataclass(frozen=True)
class ExtraImage:
    """An image of a specimen that already has one (a task carries one image: the first is kept)."""

    image: Path
    catalog_number: str


@dataclass
class SpecimenImport:
    """What a source holds: specimens ready for :func:`connectors.projects.import_specimens`, and what was not."""

    specimens: list[SpecimenTask] = field(default_factory=list)
    unmatched_images: list[Path] = field(default_factory=list)
    unmatched_records: list[str] = field(default_factory=list)  # catalog numbers of records without an image
    duplicate_catalog_numbers: list[str] = field(default_factory=list)  # later records; the first is kept
    unreadable_images: list[UnreadableImage] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)  # not Darwin Core terms; kept in the records
    read_from_barcode: list[BarcodeMatch] = field(default_factory=list)
    extra_images: list[ExtraImage] = field(default_factory=list)
    other_files: list[Path] = field(default_factory=list)  # in the images folder, not images: ignored
    refused_media: list[RefusedMedia] = field(default_factory=list)  # image URLs not fetched, and why
    fetched_media: int = 0  # image URLs fetched (this run or an earlier one: fetched_earlier)
    fetched_earlier: int = 0
    encoding: str = "utf-8"  # of the records
    warnings: list[str] = field(default_factory=list)

    @property
    def has_problems(self) -> bool:
        return bool(
            self.unmatched_images
            or self.unmatched_records
            or self.duplicate_catalog_numbers
            or self.unreadable_images
            or self.unknown_columns
            or self.extra_images
            or self.refused_media
            or self.warnings
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "specimens": [
                {"catalogNumber": s.catalog_number, "image": str(s.image), "record": dict(s.record)}
                for s in self.specimens
            ],
            "unmatched_images": [str(p) for p in self.unmatched_images],
            "unmatched_records": list(self.unmatched_records),
            "duplicate_catalog_numbers": list(self.duplicate_catalog_numbers),
            "unreadable_images": [{"image": str(u.path), "reason": u.reason} for u in self.unreadable_images],
            "unknown_columns": list(self.unknown_columns),
            "read_from_barcode": [
                {"image": str(b.image), "catalogNumber": b.catalog_number} for b in self.read_from_barcode
            ],
            "extra_images": [{"image": str(e.image), "catalogNumber": e.catalog_number} for e in self.extra_images],
            "other_files": [str(p) for p in self.other_files],
            "refused_media": [refused.to_json() for refused in self.refused_media],
            "fetched_media": self.fetched_media,
            "fetched_earlier": self.fetched_earlier,
            "encoding": self.encoding,
            "warnings": list(self.warnings),
        }


def catalog_key(value: str) -> str:
    """The join key of a catalog number: case and whitespace do not count."""
    return "".join(value.split()).casefold()


# ---------------------------------------------------------------------------------------------
# Records


@dataclass
class Records:
    by_key: dict[str, dict[str, str]] = field(default_factory=dict)  # first record of each catalog number
    duplicates: list[str] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)

    def add(self, record: dict[str, str], where: str) -> str | None:
        """Keep ``record`` unless its catalog number is blank or already seen; returns its key if kept."""
        number = record.get(CATALOG_NUMBER_KEY, "")
        if not number:
            self.warnings.append(f"{where}: no catalogNumber; record not imported")
            return None
        key = catalog_key(number)
        if key in self.by_key:
            self.duplicates.append(number)
            return None
        self.by_key[key] = record
        return key


def decode_text(data: bytes, declared: str = "utf-8") -> tuple[str, str]:
    """Text and the encoding that decoded it: ``declared`` (UTF-8 with or without BOM), else cp1252, else latin-1."""
    candidates = ["utf-8-sig" if declared.replace("_", "-").lower() in ("utf-8", "utf8") else declared]
    candidates += [enc for enc in FALLBACK_ENCODINGS if enc != declared.lower()]
    for encoding in candidates:
        try:
            return data.decode(encoding), "utf-8" if encoding == "utf-8-sig" else encoding
        except (UnicodeDecodeError, LookupError):
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def column_name(header: str) -> tuple[str, bool]:
    """(name kept in the record, whether it is a known Darwin/Dublin Core term) for a CSV header or a term URI."""
    name = header.strip()
    short = name
    for namespace in (DWC_NS, DC_NS, DC_ELEMENTS_NS, AC_NS):
        if name.startswith(namespace):
            short = name[len(namespace) :]
            break
    else:
        for prefix in _PREFIXES:
            if name.lower().startswith(prefix):
                short = name[len(prefix) :]
                break
    known = _KNOWN_BY_FOLDED.get(short.casefold())
    if known is not None:
        return known, True
    if "://" in name:  # an unknown term URI: its last segment reads better in a task
        return name.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1] or name, False
    return name, False


def _sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _csv_rows(text: str, delimiter: str, name: str, warnings: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each record, quoted fields read strictly (line breaks in them kept).

    A record that is not valid CSV (a stray quote at a field's start, opening a field that never closes
    properly or outgrows the csv module's field limit) is warned about and its first line read as written,
    quotes included, without quote handling; reading goes on from the next line, so no row is swallowed.
    """
    lines = io.StringIO(text, newline="").readlines()
    position = 0

    def feed() -> Iterator[str]:
        nonlocal position
        while position < len(lines):
            position += 1
            yield lines[position - 1]

    while position < len(lines):
        first = position
        try:
            for fields in csv.reader(feed(), delimiter=delimiter, strict=True):
                yield first + 1, fields
                first = position
        except csv.Error as exc:
            warnings.append(
                f"{name}, line {first + 1}: not valid CSV ({exc}; a stray quote?); "
                "the line is read as written, quotes included"
            )
            yield first + 1, lines[first].rstrip("\r\n").split(delimiter)
            position = first + 1


def read_records_csv(path: str | Path) -> Records:
    """Darwin Core records from a CSV (comma, tab, semicolon or pipe separated; UTF-8, else cp1252/latin-1)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecimenImportError(f"{path}: cannot read ({exc.strerror or exc})") from None
    text, encoding = decode_text(data)
    records = Records(encoding=encoding)
    if encoding != "utf-8":
        records.warnings.append(f"{path.name}: not UTF-8; read as {encoding}")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise SpecimenImportError(f"{path}: empty, no header line")
    delimiter = _sniff_delimiter(lines[0])
    rows = _csv_rows(text, delimiter, path.name, records.warnings)
    _, header = next(rows)
    names: list[str | None] = []
    for column in header:
        name, known = column_name(column)
        if not name:
            names.append(None)
            continue
        if name in names:
            records.warnings.append(f"{path.name}: column {name!r} appears twice; the first is kept")
            names.append(None)
            continue
        names.append(name)
        if not known:
            records.unknown_columns.append(name)
    if CATALOG_NUMBER_KEY not in names:
        columns = ", ".join(repr(c) for c in header)
        raise SpecimenImportError(f"{path}: no catalogNumber column (columns: {columns})")
    for number, (line, row) in enumerate(rows, start=2):
        if not any(value.strip() for value in row):
            continue
        if len(header) > 1 and any(
            part.count(delimiter) >= len(header) - 1 for value in row for part in value.splitlines()[1:]
        ):
            records.warnings.append(
                f"{path.name}, line {line}: a quoted value holds lines that read as rows of their own; "
                "check it for a stray quote"
            )
        if len(row) > len(names):
            records.warnings.append(f"{path.name}, row {number}: {len(row) - len(names)} values beyond the header")
        record = {
            name: value.strip() for name, value in zip(names, row, strict=False) if name is not None and value.strip()
        }
        records.add(record, f"{path.name}, row {number}")
    return records


# ---------------------------------------------------------------------------------------------
# Joining images to records


def _barcode_texts(path: Path, max_side: int | None) -> tuple[list[str], int]:
    """Texts of the barcodes found on ``path`` decoded at ``max_side``, and the image's long side."""
    picture = read_image(path, max_side=max_side)
    found = zxingcpp.read_barcodes(picture.image)
    return [str(b.text) for b in found if b.text], max(picture.original_width, picture.original_height)


def _catalog_from_barcode(path: Path, keys: Mapping[str, dict[str, str]]) -> tuple[str | None, list[str]]:
    """The key of the record a barcode on ``path`` names (reduced decode, then full), and every text read."""
    texts, long_side = _barcode_texts(path, BARCODE_MAX_SIDE)
    for text in texts:
        if catalog_key(text) in keys:
            return catalog_key(text), texts
    if long_side > BARCODE_MAX_SIDE:
        full_texts, _ = _barcode_texts(path, None)
        texts += [t for t in full_texts if t not in texts]
        for text in full_texts:
            if catalog_key(text) in keys:
                return catalog_key(text), texts
    return None, texts


def join_specimens(
    records: Records, linked: Mapping[str, Sequence[Path]], loose: Iterable[Path], other_files: list[Path]
) -> SpecimenImport:
    """Specimens from records, images already linked to them (multimedia) and loose images (stem, else barcode)."""
    result = SpecimenImport(
        duplicate_catalog_numbers=list(records.duplicates),
        unknown_columns=list(records.unknown_columns),
        encoding=records.encoding,
        warnings=list(records.warnings),
        other_files=other_files,
    )
    images: dict[str, Path] = {}

    def take(key: str, image: Path) -> bool:
        if key in images:
            result.extra_images.append(ExtraImage(image, records.by_key[key][CATALOG_NUMBER_KEY]))
            return False
        images[key] = image
        return True

    for linked_key, paths in linked.items():
        for path in paths:
            try:
                oriented_size(path)
            except ImageReadError as exc:
                result.unreadable_images.append(UnreadableImage(path, _reason(exc, path)))
                continue
            take(linked_key, path)

    for path in loose:
        stem_key = catalog_key(path.stem)
        if stem_key in records.by_key:
            try:
                oriented_size(path)
            except ImageReadError as exc:
                result.unreadable_images.append(UnreadableImage(path, _reason(exc, path)))
                continue
            take(stem_key, path)
            continue
        try:
            key, texts = _catalog_from_barcode(path, records.by_key)
        except ImageReadError as exc:
            result.unreadable_images.append(UnreadableImage(path, _reason(exc, path)))
            continue
        if key is None:
            result.unmatched_images.append(path)
            if texts:
                shown = ", ".join(repr(t) for t in texts)
                result.warnings.append(f"{path.name}: barcode {shown} matches no record")
            continue
        if take(key, path):
            result.read_from_barcode.append(BarcodeMatch(path, records.by_key[key][CATALOG_NUMBER_KEY]))

    for key, record in records.by_key.items():
        if key in images:
            result.specimens.append(SpecimenTask(record[CATALOG_NUMBER_KEY], images[key], record))
        else:
            result.unmatched_records.append(record[CATALOG_NUMBER_KEY])
    return result


def _reason(exc: ImageReadError, path: Path) -> str:
    message = str(exc)
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_folder(images_dir: str | Path, dwc_csv: str | Path) -> SpecimenImport:
    """Join the images directly in ``images_dir`` to the Darwin Core records of ``dwc_csv``."""
    images_dir, dwc_csv = Path(images_dir), Path(dwc_csv)
    if not images_dir.is_dir():
        raise SpecimenImportError(f"{images_dir}: not a folder of images")
    records = read_records_csv(dwc_csv)
    files = sorted(p for p in images_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    csv_file = dwc_csv.resolve()
    others = [p for p in files if not is_image_file(p) and p.resolve() != csv_file]
    return join_specimens(records, {}, [p for p in files if is_image_file(p)], others)


def with_fetched(found: SpecimenImport, fetched: MediaFetch) -> SpecimenImport:
    """``found`` with each fetched image's origin in its record, and the fetch's figures and refusals."""
    origins = source_fields(fetched.fetched.values())
    found.specimens = [
        replace(s, record={**s.record, **origins[s.image]}) if s.image in origins else s for s in found.specimens
    ]
    found.refused_media = fetched.refused
    found.fetched_media, found.fetched_earlier = len(fetched.fetched), fetched.from_earlier_runs
    return found


def read_url_csv(dwc_csv: str | Path, fetch_remote: RemoteMediaFetch) -> SpecimenImport:
    """Records of a Darwin Core CSV whose ``associatedMedia`` column gives each specimen's image URL (the
    first of several, ``|``-separated, as Darwin Core lists them), fetched by ``fetch_remote``."""
    records = read_records_csv(dwc_csv)
    requests = []
    for key, record in records.by_key.items():
        urls = [url.strip() for url in record.get(ASSOCIATED_MEDIA, "").split("|") if url.strip()]
        if urls:
            requests.append(MediaRequest(key, urls[0], f"{Path(dwc_csv).name}, {record[CATALOG_NUMBER_KEY]}"))
    fetched = fetch_remote(requests) if requests else MediaFetch()
    linked = {r.key: [fetched.fetched[r.url].path] for r in requests if r.url in fetched.fetched}
    return with_fetched(join_specimens(records, linked, [], []), fetched)
