"""``plantai specimens``: bring specimen images and their Darwin Core records into Label Studio."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from plantai.commands.setting_options import document_root_option, label_studio_options

if TYPE_CHECKING:
    from collections.abc import Sequence

    from connectors.projects import SpecimenTask
    from connectors.remote_media import MediaFetch, MediaRequest
    from connectors.specimens import RemoteMediaFetch, SpecimenImport
    from herbarium.remote import RemoteFetcher

SHOWN = 15  # entries listed per problem in the table view; --json lists them all
ARCHIVE_SUFFIXES = (".zip", ".tgz", ".tar.gz")


@click.group()
def specimens() -> None:
    """Specimens in: images joined to Darwin Core records, imported as Label Studio tasks."""


@specimens.command("import")
@click.argument("source")
@click.option(
    "--records",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Darwin Core CSV (occurrence.csv) for a folder SOURCE.",
)
@click.option("--project", type=int, required=True, help="Label Studio project id.")
@document_root_option()
@click.option(
    "--extract-to",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where an archive is extracted [default: DOCUMENT_ROOT/<archive name>].",
)
@click.option(
    "--media-into",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where image URLs of an archive are fetched to [default: the extraction folder's media/].",
)
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True, help="Parallel image fetches.")
@label_studio_options(required=False)
@click.option(
    "--dry-run", is_flag=True, help="Join and report only: import and fetch nothing, extract to a temporary folder."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report for scripts.")
def import_(
    source: str,
    records: Path | None,
    project: int,
    document_root: Path | None,
    extract_to: Path | None,
    media_into: Path | None,
    workers: int,
    label_studio_url: str | None,
    api_key: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Import the specimens of SOURCE into a Label Studio project, one task per catalog number.

    SOURCE is a folder of images (with --records, a Darwin Core CSV), a Darwin Core Archive
    (.zip; its multimedia extension names the images), a Darwin Core CSV whose associatedMedia
    column gives image URLs, a IIIF Presentation manifest or collection
    (its URL, or a .json file), or a .txt list of IIIF Image API services (one URL a line): their
    canvases become tasks whose images stay on the IIIF server, shown by Label Studio and read by
    the backends at the size they need (PLANTAI_REMOTE_HOSTS must list the server).

    catalogNumber joins images to records: an image named after its catalog number, else the
    barcode read on the sheet (IIIF: the metadata's catalog number or barcode). Images must be
    under Label Studio's document root, with a local storage of the project covering them
    (an archive is extracted there). Image URLs (an archive's multimedia rows, a CSV's
    associatedMedia) are fetched from the hosts on PLANTAI_REMOTE_HOSTS (in parallel, with a
    progress bar; a rerun fetches only what it lacks), each recorded with its source URL
    (associatedMedia) and sha256; every URL not fetched is reported with the reason.

    Unmatched images and records, duplicate catalog numbers, unreadable images and columns that
    are not Darwin Core terms are reported, never dropped silently. Specimens already in the
    project are skipped, so running it again imports only what is new. Exits non-zero only when
    nothing could be imported and something was wrong.

    \b
    Examples:
      plantai specimens import scans/ --records occurrence.csv --project 3
      plantai specimens import herbarium-dwca.zip --project 3 --dry-run
      plantai specimens import herbarium-dwca.zip --project 3 --json > report.json
      plantai specimens import https://iiif.rbge.org.uk/herb/iiif/E00001234/manifest --project 3
    """
    from connectors.specimens import SpecimenImportError

    is_iiif = source.startswith(("http://", "https://")) or source.lower().endswith((".json", ".txt"))
    if is_iiif and records is not None:
        raise click.UsageError("--records goes with a folder of images; IIIF manifests carry their own metadata")
    if not dry_run:
        needed: tuple[tuple[str, object], ...] = (
            ("--label-studio-url / LABEL_STUDIO_URL", label_studio_url),
            ("--api-key / LABEL_STUDIO_API_KEY", api_key),
        )
        if not is_iiif:  # IIIF images stay on their server: no document root needed
            needed = (("--document-root / LOCAL_FILES_DOCUMENT_ROOT", document_root), *needed)
        missing = [name for name, value in needed if not value]
        if missing:
            raise click.UsageError(f"missing {', '.join(missing)} (or use --dry-run)")

    with tempfile.TemporaryDirectory(prefix="plantai-dwca-") as scratch:
        try:
            if is_iiif:
                found = _read_iiif_source(source)
            else:
                found = _read_local_source(
                    Path(source), records, document_root, extract_to or (Path(scratch) if dry_run else None),
                    None if dry_run else (media_into, workers, as_json),
                )  # fmt: skip
        except SpecimenImportError as exc:
            raise click.ClickException(str(exc)) from None
        report = _import(found, project, document_root, label_studio_url, api_key, dry_run)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print(report, found)
    if not report["importable"] and report["problems"]:
        raise SystemExit(1)


def _read_local_source(
    source: Path,
    records: Path | None,
    document_root: Path | None,
    extract_to: Path | None,
    fetching: tuple[Path | None, int, bool] | None,
) -> SpecimenImport:
    """A folder with its records, or a Darwin Core Archive (extracted to ``extract_to``, else under the
    document root); ``fetching``: (--media-into, --workers, quiet) to fetch an archive's image URLs."""
    from connectors.dwca_reader import read_dwca
    from connectors.remote_media import MediaFetch
    from connectors.specimens import read_folder, read_url_csv

    if not source.exists():
        raise click.BadParameter(f"{source}: no such file or folder", param_hint="SOURCE")
    if source.is_file() and source.suffix.lower() == ".csv":  # records whose associatedMedia are image URLs
        if records is not None:
            raise click.UsageError("--records goes with a folder of images; SOURCE is already the records")
        if fetching is None:
            return read_url_csv(source, lambda requests: MediaFetch())  # a dry run fetches nothing
        media_into, workers, quiet = fetching
        folder = media_into or (extract_to or _default_folder(document_root, source.stem)) / "media"
        return read_url_csv(source, _media_fetcher(folder, workers, quiet))
    is_archive = source.is_file() or (source.is_dir() and records is None and (source / "meta.xml").is_file())
    if source.is_file() and not source.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise click.UsageError(f"{source}: expected a folder of images, a Darwin Core Archive (.zip) or a CSV")
    if is_archive and records is not None:
        raise click.UsageError("--records goes with a folder of images; an archive carries its own records")
    if not is_archive:
        if records is None:
            raise click.UsageError("--records is required when SOURCE is a folder of images")
        return read_folder(source, records)
    # An archive folder is read in place; a zip is extracted (under the document root unless told where).
    folder = source if source.is_dir() else extract_to or _default_folder(document_root, _archive_stem(source))
    fetch = None
    if fetching is not None:
        media_into, workers, quiet = fetching
        fetch = _media_fetcher(media_into or folder / "media", workers, quiet)
    return read_dwca(source, folder, fetch)


def _default_folder(document_root: Path | None, name: str) -> Path:
    """Where a source's files go when no folder is given: DOCUMENT_ROOT/<name>."""
    assert document_root is not None  # checked by the caller unless a dry run gave a scratch folder
    return document_root / name


def _read_iiif_source(source: str) -> SpecimenImport:
    """A manifest or collection (a URL, or a .json file whose items may be URLs), or a .txt of image services."""
    from connectors.iiif_import import read_iiif, read_image_services, remote_json

    if source.lower().endswith(".txt") and not source.startswith(("http://", "https://")):
        try:
            return read_image_services(Path(source).read_text(encoding="utf-8").splitlines())
        except OSError as error:
            raise click.BadParameter(f"{source}: {error.strerror or error}", param_hint="SOURCE") from None
    remote = remote_json(_remote_fetcher())

    def load(url: str) -> Any:
        if url != source or source.startswith(("http://", "https://")):
            return remote(url)
        try:
            return json.loads(Path(source).read_text(encoding="utf-8"))
        except OSError as error:
            raise click.BadParameter(f"{source}: {error.strerror or error}", param_hint="SOURCE") from None

    return read_iiif(source, load)


def _remote_fetcher() -> RemoteFetcher:
    from herbarium.remote import RemoteFetcher, RemotePolicy, RemotePolicyError

    try:
        return RemoteFetcher(RemotePolicy.from_settings())
    except RemotePolicyError as error:
        raise click.ClickException(str(error)) from None


def _media_fetcher(folder: Path, workers: int, quiet: bool) -> RemoteMediaFetch:
    """Fetches image URLs into ``folder`` under PLANTAI_REMOTE_HOSTS, with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from connectors.remote_media import fetch_media

    def fetch(requests: Sequence[MediaRequest]) -> MediaFetch:
        fetcher = _remote_fetcher()  # only when there are URLs: a local-only source needs no remote settings
        columns = (TextColumn("fetching images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True, disable=quiet) as bar:
            task = bar.add_task("fetch", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return fetch_media(requests, folder, fetcher, workers, advance)

    return fetch


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _import(
    found: SpecimenImport,
    project: int,
    document_root: Path | None,
    url: str | None,
    api_key: str | None,
    dry_run: bool,
) -> dict[str, Any]:
    servable: list[SpecimenTask] = []
    outside: list[str] = []
    for specimen in found.specimens:
        image = specimen.image
        if document_root is None or isinstance(image, str) or image.resolve().is_relative_to(document_root.resolve()):
            servable.append(specimen)
        else:
            outside.append(str(specimen.image))
    imported: list[int] = []
    present: list[str] = []
    checked = False
    if url and api_key:
        from connectors.labelstudio_client import label_studio_client
        from connectors.projects import existing_catalog_numbers, import_specimens

        client = label_studio_client(url, api_key)
        try:
            if dry_run:
                existing = existing_catalog_numbers(client, project)
                present = [s.catalog_number for s in servable if s.catalog_number in existing]
            else:
                imported, present = import_specimens(client, project, servable, document_root)
            checked = True
        except Exception as exc:  # the SDK's errors carry Label Studio's message
            raise click.ClickException(f"Label Studio project {project}: {exc}") from None
    report = found.to_json()
    report.update(
        {
            "project": project,
            "dry_run": dry_run,
            "matched": len(found.specimens),
            "importable": len(servable),
            "imported": len(imported) if not dry_run else 0,
            "would_import": len(servable) - len(present) if dry_run else None,
            "task_ids": imported,
            "already_present": present,
            "project_checked": checked,
            "outside_document_root": outside,
            "problems": found.has_problems or bool(outside),
        }
    )
    return report


def _print(report: dict[str, Any], found: SpecimenImport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Specimens for project {report['project']}" + (" (dry run)" if report["dry_run"] else ""))
    table.add_column("", style="bold")
    table.add_column("count", justify="right")
    rows: list[tuple[str, int | str]] = [("matched (image + record)", report["matched"])]
    if report["dry_run"]:
        rows.append(("would be imported", report["would_import"]))
    else:
        rows.append(("imported", report["imported"]))
    present = len(report["already_present"]) if report["project_checked"] else "not checked"
    rows += [
        ("skipped: already in the project", present),
        ("joined through the barcode", len(found.read_from_barcode)),
        ("unmatched images", len(found.unmatched_images)),
        ("unmatched records", len(found.unmatched_records)),
        ("duplicate catalog numbers", len(found.duplicate_catalog_numbers)),
        ("extra images of a specimen", len(found.extra_images)),
        ("unreadable images", len(found.unreadable_images)),
        ("outside the document root", len(report["outside_document_root"])),
        ("unknown columns (kept)", len(found.unknown_columns)),
        ("not images (ignored)", len(found.other_files)),
        ("image URLs fetched (earlier runs)", f"{found.fetched_media} ({found.fetched_earlier})"),
        ("image URLs not fetched", len(found.refused_media)),
    ]
    for label, count in rows:
        table.add_row(label, str(count))
    table.caption = f"records read as {found.encoding}"
    console.print(table)
    details: list[tuple[str, list[str]]] = [
        ("From barcode", [f"{b.image.name} → {b.catalog_number}" for b in found.read_from_barcode]),
        ("Unmatched images", [str(p) for p in found.unmatched_images]),
        ("Unmatched records", found.unmatched_records),
        ("Duplicate catalog numbers (first record kept)", found.duplicate_catalog_numbers),
        ("Extra images (first image kept)", [f"{e.image} ({e.catalog_number})" for e in found.extra_images]),
        ("Unreadable images", [f"{u.path}: {u.reason}" for u in found.unreadable_images]),
        ("Image URLs not fetched", [f"{r.where}: {r.message}" for r in found.refused_media]),
        ("Outside the document root (not imported)", report["outside_document_root"]),
        ("Unknown columns (kept in the tasks)", found.unknown_columns),
        ("Warnings", found.warnings),
    ]
    for title, entries in details:
        if not entries:
            continue
        console.print(f"[bold]{title}[/bold]")
        for entry in entries[:SHOWN]:
            console.print(f"  {entry}", markup=False, highlight=False)
        if len(entries) > SHOWN:
            console.print(f"  ... and {len(entries) - SHOWN} more (--json lists them all)")
