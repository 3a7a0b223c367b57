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

SHOWN = 15  # entries listed per problem in the table view; --json lists them all
ARCHIVE_SUFFIXES = (".zip", ".tgz", ".tar.gz")


@click.group()
def specimens() -> None:
    """Specimens in: images joined to Darwin Core records, imported as Label Studio tasks."""


@specimens.command("import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
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
    source: Path,
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

    SOURCE is a folder of images (with --records, a Darwin Core CSV) or a Darwin Core Archive
    (.zip; its multimedia extension names the images). catalogNumber joins images to records:
    an image named after its catalog number, else the barcode read on the sheet. Images must be
    under Label Studio's document root, with a local storage of the project covering them
    (an archive is extracted there). Image URLs in an archive's multimedia extension are fetched
    from the hosts on PLANTAI_REMOTE_HOSTS (in parallel, with a progress bar; a rerun fetches only
    what it lacks), each recorded with its source URL (associatedMedia) and sha256; every URL not
    fetched is reported with the reason.

    Unmatched images and records, duplicate catalog numbers, unreadable images and columns that
    are not Darwin Core terms are reported, never dropped silently. Specimens already in the
    project are skipped, so running it again imports only what is new. Exits non-zero only when
    nothing could be imported and something was wrong.

    \b
    Examples:
      plantai specimens import scans/ --records occurrence.csv --project 3
      plantai specimens import herbarium-dwca.zip --project 3 --dry-run
      plantai specimens import herbarium-dwca.zip --project 3 --json > report.json
    """
    from connectors.specimens import SpecimenImportError, read_dwca, read_folder

    is_archive = source.is_file() or (source.is_dir() and records is None and (source / "meta.xml").is_file())
    if source.is_file() and not source.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise click.UsageError(f"{source}: expected a folder of images or a Darwin Core Archive (.zip)")
    if is_archive and records is not None:
        raise click.UsageError("--records goes with a folder of images; an archive carries its own records")
    if not is_archive and records is None:
        raise click.UsageError("--records is required when SOURCE is a folder of images")
    if not dry_run:
        missing = [
            name
            for name, value in (
                ("--document-root / LOCAL_FILES_DOCUMENT_ROOT", document_root),
                ("--label-studio-url / LABEL_STUDIO_URL", label_studio_url),
                ("--api-key / LABEL_STUDIO_API_KEY", api_key),
            )
            if not value
        ]
        if missing:
            raise click.UsageError(f"missing {', '.join(missing)} (or use --dry-run)")

    with tempfile.TemporaryDirectory(prefix="plantai-dwca-") as scratch:
        try:
            if not is_archive:
                assert records is not None
                found = read_folder(source, records)
            elif source.is_dir():
                found = read_dwca(source, source)
            else:
                if dry_run:
                    target = Path(scratch)
                elif extract_to is not None:
                    target = extract_to
                else:
                    assert document_root is not None
                    target = document_root / _archive_stem(source)
                fetch = None if dry_run else _media_fetcher(media_into or target / "media", workers, as_json)
                found = read_dwca(source, target, fetch)
        except SpecimenImportError as exc:
            raise click.ClickException(str(exc)) from None
        report = _import(found, project, document_root, label_studio_url, api_key, dry_run)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print(report, found)
    if not report["importable"] and report["problems"]:
        raise SystemExit(1)


def _media_fetcher(folder: Path, workers: int, quiet: bool) -> RemoteMediaFetch:
    """Fetches image URLs into ``folder`` under PLANTAI_REMOTE_HOSTS, with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from connectors.remote_media import fetch_media
    from herbarium.remote import RemoteFetcher, RemotePolicy, RemotePolicyError

    try:
        fetcher = RemoteFetcher(RemotePolicy.from_settings())
    except RemotePolicyError as error:
        raise click.ClickException(str(error)) from None

    def fetch(requests: Sequence[MediaRequest]) -> MediaFetch:
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
        if document_root is None or specimen.image.resolve().is_relative_to(document_root.resolve()):
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
                assert document_root is not None
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
