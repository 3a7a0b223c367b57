"""``plantai export``: a synced collection's validated labels and measurements, for training or for GBIF."""

from __future__ import annotations

import json
from pathlib import Path

import click

FORMATS = ("yolo", "coco", "dwca", "clean", "iiif", "opends")


@click.command()
@click.option("--dataset", required=True, help="The FiftyOne dataset (`plantai sync` names it plantai-ls-<project>).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="What to write.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder (.zip for dwca).")
@click.option(
    "--labels",
    "label_set_name",
    default="nonvegetal",
    show_default=True,
    help="Label set for yolo/coco: nonvegetal, organs or plant.",
)
@click.option("--review-state", help="Only samples in this review state (e.g. validated).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def export(dataset: str, fmt: str, out: Path, label_set_name: str, review_state: str | None, as_json: bool) -> None:
    """Export a synced collection.

    \b
    yolo   validated boxes of one label set, as a YOLO data set (train/val split by specimen)
    coco   validated boxes, outlines and masks of one label set, as one COCO JSON file
    dwca   a Darwin Core Archive: records, images, and MeasurementOrFact rows for traits and
           organ counts, each with its method (model name@version, or expert)
    clean  the plant alone on white, with its mask, for every specimen with a plant mask
    iiif   a IIIF AnnotationPage per specimen's canvas (W3C Web Annotations, xywh in image pixels,
           creator the model name@version or the expert)
    opends DiSSCo openDS annotations per specimen (ac:hasROI fractions of the image)

    \b
    Example:
      plantai export --dataset plantai-ls-3 --format dwca --out herbier-a.zip
    """
    import fiftyone as fo
    from fiftyone import ViewField as F

    from connectors.exports import (
        clean_images,
        export_annotations,
        export_coco,
        export_dwca,
        export_yolo,
        specimens_from_samples,
    )
    from herbarium.taxonomy import UnknownLabelError, label_set

    if not fo.dataset_exists(dataset):
        raise click.ClickException(f"no FiftyOne dataset named {dataset!r} (run `plantai sync` first)")
    view = fo.load_dataset(dataset).view()
    if review_state:
        view = view.match(F("review_state") == review_state)
    specimens = specimens_from_samples(view)
    result: dict[str, object] = {"dataset": dataset, "format": fmt, "specimens": len(specimens)}
    try:
        if fmt == "dwca":
            result["path"] = str(export_dwca(specimens, out if out.suffix == ".zip" else out / "specimens.zip"))
        elif fmt == "clean":
            done = clean_images(specimens, out)
            result["cleaned"] = sum(1 for c in done if c.image is not None)
            result["skipped"] = {c.catalog_number: c.reason for c in done if c.reason}
            result["path"] = str(out)
        elif fmt in ("iiif", "opends"):
            written = export_annotations(specimens, out, fmt)
            result.update(path=str(out), annotations=written.annotations, left_out=written.left_out)
        elif fmt == "coco":
            result["path"] = str(export_coco(specimens, out / "annotations.json", label_set(label_set_name)))
        else:
            result["path"] = str(export_yolo(specimens, out, label_set(label_set_name)).data)
    except (UnknownLabelError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"Exported {len(specimens)} specimens of {dataset} as {fmt}: {result['path']}")
