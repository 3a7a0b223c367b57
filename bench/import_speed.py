"""Specimens from where herbaria keep them: a DwC-A of image URLs and a IIIF service, into a real Label Studio.

Generated sheets at scan size (``--master``, default 6000 x 9000 px JPEG, what a 600-ppi scan of a sheet
is) are served on loopback two ways: as plain files behind a Darwin Core Archive whose multimedia
extension lists ``--sheets`` image URLs (three of them broken: a 404, an HTML error page, a truncated
JPEG; one on a host PLANTAI_REMOTE_HOSTS does not list), and through the IIIF Image API reference
implementation (PyPI ``iiif``). ``plantai specimens import`` brings the archive into a real Label
Studio (fetching the images, 8 at a time) and then again (it must import nothing); a manifest of the
same sheets is imported into a second project, and each of its tasks is read the way a backend reads
it (``info.json``, then the derivative at ``--side``). Baselines from the same run: the same
import with one fetch at a time (``--workers 1``, into another project; the rate as a ratio), and each
master's size (the bytes fetched per sheet through IIIF over it).

Last line: ``RESULT imported=<n> reported=<k> sheets_per_s=<x> derivative_over_master=<r> ...``.

    python bench/import_speed.py [--sheets 50] [--master 6000x9000] [--side 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from click.testing import CliRunner  # noqa: E402

from connectors.dwca_writer import write_dwca  # noqa: E402
from connectors.projects import SpecimenTask  # noqa: E402
from herbarium.remote import RemoteFetcher, RemotePolicy  # noqa: E402
from herbarium.synth import generate_sheet  # noqa: E402
from ml_backends.task_images import TaskImages  # noqa: E402
from plantai.cli import cli  # noqa: E402
from tests.fixtures.iiif_manifests import p3_manifest  # noqa: E402
from tests.fixtures.iiif_reference import IIIFService  # noqa: E402
from tests.fixtures.static_files import StaticServer  # noqa: E402

UNLISTED = "http://images.herbarium-not-listed.example"


def write_masters(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` generated sheets enlarged to scan size (drawn at 1,280 px long: drawing is the slow part)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    scale = 1280 / max(size)
    for i in range(count):
        sheet = generate_sheet(900 + i, round(size[0] * scale), round(size[1] * scale)).image.convert("RGB")
        path = folder / f"batch-{i}.jpg"  # the IIIF service batch-<i>
        sheet.resize(size).save(path, quality=90)
        paths.append(path)
        print(f"\r  masters {i + 1}/{count}", end="", flush=True)
    print()
    return paths


def plantai(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, [*args, "--json"])
    if result.exit_code != 0:
        raise RuntimeError(f"plantai {' '.join(args)}: exit {result.exit_code}\n{result.output}")
    report: dict[str, object] = json.loads(result.output)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sheets", type=int, default=50, help="image URLs in the archive (default 50)")
    parser.add_argument("--master", default="6000x9000", help="master size, WxH (default 6000x9000)")
    parser.add_argument("--side", type=int, default=2048, help="the side a backend decodes (default 2048)")
    args = parser.parse_args()
    master = tuple(int(v) for v in args.master.lower().split("x"))
    assert len(master) == 2
    work = Path(tempfile.mkdtemp(prefix="plantai-import-speed-"))
    os.environ["PLANTAI_HOME"] = str(work / "home")
    os.environ["PLANTAI_REMOTE_HOSTS"] = "127.0.0.1"
    servers: list[StaticServer | IIIFService] = []
    try:
        from local_services.labelstudio import LabelStudioServer, LocalLabelStudio

        files = work / "files"
        masters = write_masters(files, args.sheets - 3, (master[0], master[1]))
        (files / "UNB9001.jpg").write_text("<html>502 Bad Gateway</html>")  # an error page where an image was
        (files / "UNB9002.jpg").write_bytes(masters[0].read_bytes()[:4000])  # cut short
        plain = StaticServer(files)
        servers.append(plain)
        kept = masters[: args.sheets - 4]  # the rest: three broken links and one unlisted host
        good = [(f"UNB{i:04d}", f"{plain.url}/{p.name}") for i, p in enumerate(kept)]
        broken = [(f"UNB{n}", f"{plain.url}/UNB{n}.jpg") for n in (9000, 9001, 9002)]  # 9000: 404
        unlisted = [("UNB9003", f"{UNLISTED}/{masters[-1].name}")]
        archive = write_dwca(
            [SpecimenTask(n, url, {"scientificName": "Viola sororia"}) for n, url in [*good, *broken, *unlisted]],
            work / "herbarium-dwca.zip",
        )
        expected = len(good)

        fetcher = RemoteFetcher(RemotePolicy.from_settings())
        root = work / "document-root"
        (root / "dwca").mkdir(parents=True)
        (root / "dwca-serial").mkdir(parents=True)
        server = LabelStudioServer(data_dir=work / "label-studio", document_root=root)
        with LocalLabelStudio(server, work / "label-studio-template") as label_studio:
            from connectors.labelstudio_client import label_studio_client
            from connectors.projects import create_project

            client = label_studio_client(label_studio.url, label_studio.token)
            project = create_project(client, "Archive of URLs", root / "dwca", root)
            common = ["--project", str(project.id), "--document-root", str(root)]
            common += ["--label-studio-url", label_studio.url, "--api-key", label_studio.token]
            serial = create_project(client, "Archive of URLs, one fetch at a time", root / "dwca-serial", root)
            started = time.perf_counter()
            plantai("specimens", "import", str(archive), "--extract-to", str(root / "dwca-serial"), "--workers", "1",
                    "--project", str(serial.id), *common[2:])  # fmt: skip
            serial_rate = expected / (time.perf_counter() - started)
            started = time.perf_counter()
            first = plantai("specimens", "import", str(archive), "--extract-to", str(root / "dwca"), *common)
            seconds = time.perf_counter() - started
            again = plantai("specimens", "import", str(archive), "--extract-to", str(root / "dwca"), *common)
            refused = first["refused_media"]
            assert isinstance(refused, list)
            print(f"archive: imported {first['imported']} of {args.sheets} URLs in {seconds:.1f} s; reported:")
            for entry in refused:
                print(f"  {entry['where']}: {entry['reason']}: {entry['message']}")
            print(f"rerun: imported {again['imported']}, fetched {again['fetched_earlier']} from earlier runs")

            iiif = IIIFService(files)
            servers.append(iiif)
            documents = work / "documents"
            documents.mkdir()
            manifest = json.dumps(p3_manifest("", "batch", len(kept), per_canvas_numbers=True))
            manifest = manifest.replace('"/iiif/img/', f'"{iiif.url}/')  # canvas i painted by service batch-<i>
            (documents / "batch.json").write_text(manifest, encoding="utf-8")
            host = StaticServer(documents)
            servers.append(host)
            second = create_project(client, "IIIF batch", root / "dwca", root)
            manifest_url = f"{host.url}/batch.json"
            imported = plantai("specimens", "import", manifest_url, "--project", str(second.id), *common[2:])
            reader = TaskImages(None, None, fetcher)
            sent_before = iiif.sent_bytes
            started = time.perf_counter()
            for task in client.tasks.list(project=second.id, fields="all"):
                reader.read(str(task.data["image"]), max_side=args.side)
            iiif_seconds = time.perf_counter() - started
            per_sheet = (iiif.sent_bytes - sent_before) / expected
            master_bytes = sum(p.stat().st_size for p in kept) / expected
        ratio = per_sheet / master_bytes
        rate = int(first["imported"]) / seconds  # type: ignore[call-overload]
        print(
            f"IIIF: {imported['imported']} canvases imported; read at {args.side} px: {per_sheet / 2**20:.2f} MB a "
            f"sheet (info.json + derivative) vs the {master_bytes / 2**20:.1f} MB master ({ratio:.3f}x), "
            f"{expected / iiif_seconds:.2f} sheets/s"
        )
        print(
            f"archive import {rate:.2f} sheets/s (8 fetches at a time) vs {serial_rate:.2f}/s with --workers 1 "
            f"({rate / serial_rate:.2f}x)"
        )
        ok = first["imported"] == expected and len(refused) == 4 and again["imported"] == 0
        print(
            f"RESULT imported={first['imported']} reported={len(refused)} sheets_per_s={rate:.2f} "
            f"derivative_over_master={ratio:.4f} rerun_imported={again['imported']} "
            f"iiif_imported={imported['imported']} over_serial={rate / serial_rate:.2f}"
        )
        return 0 if ok else 1
    finally:
        for running in servers:
            running.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
