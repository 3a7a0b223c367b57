"""Writing a small Darwin Core Archive, the one :mod:`connectors.specimens` reads: an occurrence core, a
Simple Multimedia extension naming each image, and optionally MeasurementOrFact rows."""

from __future__ import annotations

import csv
import io
import mimetypes
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from connectors.projects import CATALOG_NUMBER_KEY, SpecimenTask
from connectors.specimens import (
    DC_NS,
    DWC_NS,
    KNOWN_TERMS,
    MULTIMEDIA_ROW_TYPE,
    OCCURRENCE_ROW_TYPE,
    TEXT_NS,
    SpecimenImportError,
)
from herbarium.synth import load_manifest


def _term_uri(name: str) -> str:
    return KNOWN_TERMS.get(name, name)  # an unknown column keeps its name as its term


def _specimens_of(source: str | Path | Sequence[SpecimenTask]) -> list[SpecimenTask]:
    if not isinstance(source, (str, Path)):
        return list(source)
    manifest = load_manifest(source)
    return [
        SpecimenTask(sheet.catalog_number, manifest.root / sheet.image, dict(sheet.darwin_core))
        for sheet in manifest.sheets
    ]


MEASUREMENT_ROW_TYPE = "http://rs.tdwg.org/dwc/terms/MeasurementOrFact"
MEASUREMENT_COLUMNS = (
    "measurementType",
    "measurementValue",
    "measurementUnit",
    "measurementMethod",
    "measurementRemarks",
    "measurementDeterminedBy",
)


@dataclass(frozen=True)
class Measurement:
    """A MeasurementOrFact row: a trait or an organ count of one specimen, and who or what measured it."""

    catalog_number: str
    measurement_type: str  # e.g. "phenology", "leaf count"
    value: str
    method: str  # the model's name@version, or "expert review"
    unit: str = ""
    remarks: str = ""
    determined_by: str = ""  # the expert who set or confirmed the value (empty: a model's, nobody checked it)


def _meta_xml(core_columns: Sequence[str], with_measurements: bool = False) -> str:
    fields = "\n".join(
        f"    <field index={quoteattr(str(i))} term={quoteattr(_term_uri(c))}/>" for i, c in enumerate(core_columns)
    )
    csv_attrs = 'encoding="UTF-8" fieldsTerminatedBy="," linesTerminatedBy="\\n" fieldsEnclosedBy="&quot;"'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<archive xmlns="{TEXT_NS}" metadata="eml.xml">
  <core rowType="{OCCURRENCE_ROW_TYPE}" {csv_attrs} ignoreHeaderLines="1">
    <files><location>occurrence.txt</location></files>
    <id index="0"/>
{fields}
  </core>
  <extension rowType="{MULTIMEDIA_ROW_TYPE}" {csv_attrs} ignoreHeaderLines="1">
    <files><location>multimedia.txt</location></files>
    <coreid index="0"/>
    <field index="1" term="{DC_NS}identifier"/>
    <field index="2" term="{DC_NS}format"/>
  </extension>
{_measurement_extension(csv_attrs) if with_measurements else ""}</archive>
"""


def _measurement_extension(csv_attrs: str) -> str:
    fields = "\n".join(
        f'    <field index="{i}" term="{DWC_NS}{name}"/>' for i, name in enumerate(MEASUREMENT_COLUMNS, start=1)
    )
    return f"""  <extension rowType="{MEASUREMENT_ROW_TYPE}" {csv_attrs} ignoreHeaderLines="1">
    <files><location>measurementorfact.txt</location></files>
    <coreid index="0"/>
{fields}
  </extension>
"""


_EML = """<?xml version="1.0" encoding="UTF-8"?>
<eml:eml xmlns:eml="https://eml.ecoinformatics.org/eml-2.2.0" packageId="plantai-specimens" system="plantai">
  <dataset><title>PlantAI specimens</title></dataset>
</eml:eml>
"""


def _csv_text(rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerows(rows)
    return out.getvalue()


def write_dwca(
    source: str | Path | Sequence[SpecimenTask],
    out_zip: str | Path,
    measurements: Sequence[Measurement] | None = None,
) -> Path:
    """Write a Darwin Core Archive: occurrence core, Simple Multimedia extension, images under ``images/``.

    ``source`` is a synthetic data set folder (``plantai synth`` output, read through its manifest)
    or specimens. Images keep their file names; the multimedia rows link them to their records.
    ``measurements`` add a MeasurementOrFact extension (traits, organ counts, with their method).
    A specimen whose image is a URL is named by it, as an herbarium's own archive does.
    """
    specimens = _specimens_of(source)
    out_zip = Path(out_zip)
    columns = [CATALOG_NUMBER_KEY]
    for specimen in specimens:
        columns += [name for name in specimen.record if name not in columns]
    core_rows: list[list[str]] = [columns]
    media_rows: list[list[str]] = [["coreid", "identifier", "format"]]
    members: list[tuple[str, Path]] = []
    used: set[str] = set()
    for specimen in specimens:
        record = {**specimen.record, CATALOG_NUMBER_KEY: specimen.catalog_number}
        core_rows.append([record.get(name, "") for name in columns])
        image = specimen.image
        name = urlsplit(image).path.rsplit("/", 1)[-1] if isinstance(image, str) else image.name
        media_format = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if isinstance(image, str):
            media_rows.append([specimen.catalog_number, image, media_format])
            continue
        arcname = f"images/{image.name}"
        if arcname in used:
            arcname = f"images/{len(used)}-{image.name}"
        used.add(arcname)
        members.append((arcname, image))
        media_rows.append([specimen.catalog_number, arcname, media_format])
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    partial = out_zip.with_name(f".{out_zip.name}.partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("meta.xml", _meta_xml(columns, with_measurements=measurements is not None))
            archive.writestr("eml.xml", _EML)
            archive.writestr("occurrence.txt", _csv_text(core_rows))
            archive.writestr("multimedia.txt", _csv_text(media_rows))
            if measurements is not None:
                rows = [["coreid", *MEASUREMENT_COLUMNS]] + [
                    [m.catalog_number, m.measurement_type, m.value, m.unit, m.method, m.remarks, m.determined_by]
                    for m in measurements
                ]
                archive.writestr("measurementorfact.txt", _csv_text(rows))
            for arcname, image in members:
                try:
                    archive.write(image, arcname, compress_type=zipfile.ZIP_STORED)  # JPEGs do not shrink
                except OSError as exc:
                    raise SpecimenImportError(f"{image}: cannot add to {out_zip} ({exc.strerror or exc})") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out_zip)
    return out_zip
