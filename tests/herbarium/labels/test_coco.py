from __future__ import annotations

import copy
import importlib.util
import json
from typing import Any

import numpy as np
import pytest

from herbarium.labels import BoxLabel, ClassificationLabel, LabelError, MaskLabel, PolygonLabel, SpecimenLabels
from herbarium.labels.coco import as_coco, from_coco
from herbarium.taxonomy import ORGANS, PLANT, UnknownLabelError
from tests.herbarium.labels.label_strategies import what_coco_keeps

HAS_PYCOCOTOOLS = importlib.util.find_spec("pycocotools") is not None


ORGANS_AND_PLANT = type(ORGANS)(name="organs+plant", description="test", classes=(*ORGANS.classes, "plant"))


@pytest.mark.parametrize("seed", range(4))
def test_random_specimens_round_trip(seed: int, make_specimen: Any, labels_match: Any) -> None:
    images = [
        (10 + k, f"sheet{k}.jpg", make_specimen(seed * 10 + k, rotated=False, width=320 + 16 * k, height=240))
        for k in range(3)
    ]
    coco = json.loads(json.dumps(as_coco(images, ORGANS_AND_PLANT)))  # what a file holds
    back = from_coco(coco, ORGANS_AND_PLANT)
    assert sorted(back) == [10, 11, 12]
    for image_id, file_name, specimen in images:
        labels_match(back[image_id], what_coco_keeps(specimen, ORGANS_AND_PLANT, file_name))


def test_annotation_fields() -> None:
    mask = np.zeros((4, 6), dtype=bool)
    mask[1:3, 2:5] = True
    specimen = SpecimenLabels(
        width=6,
        height=4,
        labels=[
            BoxLabel(label="leaf", x=1.5, y=0.5, width=2, height=3, score=0.8),
            PolygonLabel(label="fruit", points=((0, 0), (4, 0), (4, 2), (0, 2))),
            MaskLabel(label="seed", mask=mask),
            ClassificationLabel(label="sterile", control="phenology"),
        ],
    )
    coco = as_coco([(7, "a.jpg", specimen)], ORGANS)
    assert coco["images"] == [{"id": 7, "file_name": "a.jpg", "width": 6, "height": 4}]
    assert coco["categories"][0] == {"id": 1, "name": "leaf", "supercategory": "organs"}
    box, polygon, rle = coco["annotations"]
    assert box == {
        "id": 1,
        "image_id": 7,
        "category_id": 1,
        "bbox": [1.5, 0.5, 2, 3],
        "area": 6,
        "iscrowd": 0,
        "score": 0.8,
    }
    assert polygon["segmentation"] == [[0, 0, 4, 0, 4, 2, 0, 2]]
    assert polygon["bbox"] == [0, 0, 4, 2]
    assert polygon["area"] == 8
    assert polygon["category_id"] == ORGANS.index("fruit") + 1
    assert "score" not in polygon
    # Column-major runs: 8 empty (columns 0-1) + 1, then per column 2-4 two set and two empty, 5 empty at the end.
    assert rle["segmentation"] == {"counts": [9, 2, 2, 2, 2, 2, 5], "size": [4, 6]}
    assert rle["bbox"] == [2, 1, 3, 2]
    assert rle["area"] == 6


def test_rle_starting_with_a_set_pixel_begins_with_a_zero_run() -> None:
    mask = np.zeros((2, 3), dtype=bool)
    mask[0, 0] = mask[1, 2] = True
    coco = as_coco(
        [(1, "x.jpg", SpecimenLabels(width=3, height=2, labels=[MaskLabel(label="plant", mask=mask)]))], PLANT
    )
    assert coco["annotations"][0]["segmentation"]["counts"] == [0, 1, 4, 1]
    assert np.array_equal(from_coco(coco, PLANT)[1].masks[0].mask, mask)


def test_real_masks_round_trip_exactly(real_mask: np.ndarray[Any, Any]) -> None:
    height, width = real_mask.shape
    specimen = SpecimenLabels(width=width, height=height, labels=[MaskLabel(label="plant", mask=real_mask)])
    coco = as_coco([(1, "sheet.jpg", specimen)], PLANT)
    annotation = coco["annotations"][0]
    assert sum(annotation["segmentation"]["counts"]) == width * height
    assert annotation["area"] == int(real_mask.sum())
    assert np.array_equal(from_coco(coco, PLANT)[1].masks[0].mask, real_mask)


@pytest.mark.skipif(not HAS_PYCOCOTOOLS, reason="pycocotools is not installed")
@pytest.mark.parametrize("seed", range(3))
def test_pycocotools_reads_our_rle_and_we_read_its_compressed_rle(seed: int, make_mask: Any) -> None:
    from pycocotools import mask as coco_mask

    height, width = 90, 120
    mask = make_mask(np.random.default_rng(seed), width, height)
    specimen = SpecimenLabels(width=width, height=height, labels=[MaskLabel(label="plant", mask=mask)])
    coco = as_coco([(1, "sheet.jpg", specimen)], PLANT)
    segmentation = coco["annotations"][0]["segmentation"]
    compressed = coco_mask.frPyObjects(segmentation, height, width)
    assert np.array_equal(coco_mask.decode(compressed).astype(bool), mask)
    coco["annotations"][0]["segmentation"] = {"counts": compressed["counts"].decode(), "size": [height, width]}
    assert np.array_equal(from_coco(coco, PLANT)[1].masks[0].mask, mask)


def test_foreign_category_ids_and_aliases_resolve() -> None:
    coco = {
        "images": [{"id": 3, "file_name": "b.jpg", "width": 10, "height": 10}],
        "annotations": [
            {"id": 1, "image_id": 3, "category_id": 17, "bbox": [1, 2, 3, 4], "segmentation": []},
            {"id": 2, "image_id": 3, "category_id": 4, "bbox": [0, 0, 1, 1]},
        ],
        "categories": [{"id": 17, "name": "leaf_whole"}, {"id": 4, "name": "Roots"}],
    }
    back = from_coco(coco, ORGANS)[3]
    assert [b.label for b in back.boxes] == ["leaf", "root"]
    assert back.image == "b.jpg"


def test_multi_part_polygon_becomes_several_polygons() -> None:
    coco = _valid_coco()
    coco["annotations"][0]["segmentation"] = [[0, 0, 2, 0, 2, 2], [3, 3, 5, 3, 5, 4]]
    assert len(from_coco(coco, ORGANS)[1].polygons) == 2


def test_images_without_annotations_are_kept() -> None:
    coco = _valid_coco()
    coco["images"].append({"id": 2, "file_name": "empty.jpg", "width": 5, "height": 5})
    back = from_coco(coco, ORGANS)
    assert back[2] == SpecimenLabels(width=5, height=5, image="empty.jpg")


def _valid_coco() -> dict[str, Any]:
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 6, "height": 4}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [0, 0, 2, 2],
                "segmentation": {"counts": [24], "size": [4, 6]},
                "area": 0,
                "iscrowd": 0,
            }
        ],
        "categories": [{"id": 1, "name": "leaf"}],
    }


def _broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    coco = copy.deepcopy(_valid_coco())
    target: Any = coco
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return coco


_DELETE = object()


@pytest.mark.parametrize(
    ("coco", "field"),
    [
        pytest.param(_broken(("annotations", 0, "image_id"), 9), "image_id", id="unknown image"),
        pytest.param(_broken(("annotations", 0, "category_id"), 9), "category_id", id="unknown category"),
        pytest.param(_broken(("annotations", 0, "segmentation", "size"), [6, 4]), "segmentation.size", id="size"),
        pytest.param(_broken(("annotations", 0, "segmentation", "counts"), [23]), "segmentation.counts", id="counts"),
        pytest.param(
            _broken(("annotations", 0, "segmentation", "counts"), [30, -6]), "segmentation.counts", id="negative"
        ),
        pytest.param(_broken(("annotations", 0, "segmentation"), [[0, 0, 1, 1, 2]]), "segmentation", id="odd polygon"),
        pytest.param(_broken(("annotations", 0, "segmentation"), [[0, 0, 1, 1]]), "segmentation", id="two points"),
        pytest.param(_broken(("annotations", 0, "segmentation"), "mask.png"), "segmentation", id="text segmentation"),
        pytest.param(_broken(("images", 0, "width"), _DELETE), r"images\[0\]\.width", id="missing width"),
        pytest.param(_broken(("images", 0, "height"), "4"), r"images\[0\]\.height", id="text height"),
        pytest.param(_broken(("categories", 0, "name"), _DELETE), r"categories\[0\]\.name", id="missing name"),
        pytest.param(_broken(("images",), _DELETE), "images", id="missing images"),
    ],
)
def test_bad_input_names_the_field(coco: dict[str, Any], field: str) -> None:
    with pytest.raises(LabelError, match=field):
        from_coco(coco, ORGANS)


def test_annotation_without_segmentation_is_a_box() -> None:
    coco = _broken(("annotations", 0, "segmentation"), _DELETE)
    assert from_coco(coco, ORGANS)[1].boxes[0].width == 2


def test_bad_bbox_names_the_field() -> None:
    coco = _broken(("annotations", 0, "segmentation"), _DELETE)
    coco["annotations"][0]["bbox"] = [0, 0, 2]
    with pytest.raises(LabelError, match="bbox"):
        from_coco(coco, ORGANS)


def test_unknown_category_name_is_an_error() -> None:
    with pytest.raises(UnknownLabelError, match="petal"):
        from_coco(_broken(("categories", 0, "name"), "petal"), ORGANS)
    specimen = SpecimenLabels(width=5, height=5, labels=[BoxLabel(label="petal", x=0, y=0, width=1, height=1)])
    with pytest.raises(UnknownLabelError, match="petal"):
        as_coco([(1, "a.jpg", specimen)], ORGANS)


def test_rotated_boxes_and_duplicate_images_are_errors() -> None:
    rotated = SpecimenLabels(
        width=5, height=5, labels=[BoxLabel(label="leaf", x=0, y=0, width=1, height=1, rotation=5)]
    )
    with pytest.raises(LabelError, match="rotation"):
        as_coco([(1, "a.jpg", rotated)], ORGANS)
    empty = SpecimenLabels(width=5, height=5)
    with pytest.raises(LabelError, match="image_id"):
        as_coco([(1, "a.jpg", empty), (1, "b.jpg", empty)], ORGANS)
