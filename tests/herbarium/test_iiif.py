"""IIIF Image API requests: sized for the model, and the service's info.json for the full size."""

from __future__ import annotations

import pytest

from herbarium.iiif import (
    IIIFError,
    full_size,
    info_url,
    is_image_request,
    shown_size,
    size_parameter,
    sized_request,
)

BASE = "https://iiif.herbarium.example/iiif/3/BM000521755"


@pytest.mark.parametrize(
    "request_",
    [
        f"{BASE}/full/max/0/default.jpg",
        f"{BASE}/full/full/0/native.jpg",
        f"{BASE}/full/1000,/0/default.png",
        f"{BASE}/square/!500,500/90/gray.webp",
        f"{BASE}/pct:10,10,80,80/^max/!180/color.tif",
        f"{BASE}/0,0,2000,3000/pct:50/0/bitonal.gif",
    ],
)
def test_image_requests_are_asked_at_the_models_size(request_: str) -> None:
    assert is_image_request(request_)
    sized = sized_request(request_, 2048)
    assert sized is not None
    prefix, _, rest = sized.rpartition("/!2048,2048/")
    assert prefix == request_.rsplit("/", 3)[0]  # identifier and region kept
    assert rest == "/".join(request_.rsplit("/", 2)[1:])  # rotation, quality and format kept


@pytest.mark.parametrize(
    "url",
    [
        "https://images.herbarium.example/scans/BM000521755.jpg",
        f"{BASE}/info.json",
        f"{BASE}/full/max/0/ugly.jpg",  # not a quality
        f"{BASE}/full/max/0/default.exe",
        f"{BASE}/everything/max/0/default.jpg",  # not a region
        "https://iiif.herbarium.example/full/max/0/default.jpg",  # no identifier
    ],
)
def test_other_urls_are_not_image_requests(url: str) -> None:
    assert sized_request(url, 2048) is None


def test_the_info_json_of_a_full_region_request() -> None:
    assert info_url(f"{BASE}/full/max/0/default.jpg?token=1") == f"{BASE}/info.json"
    assert info_url(f"{BASE}/0,0,10,10/max/0/default.jpg") is None  # a region's frame is not the image's


def test_full_size_from_info_json() -> None:
    assert full_size({"@context": "http://iiif.io/api/image/3/context.json", "width": 6000, "height": 9000}) == (
        6000,
        9000,
    )
    for bad in ({"width": 6000}, {"width": "6000", "height": 9000}, {"width": 0, "height": 1}, []):
        with pytest.raises(IIIFError, match="width and height"):
            full_size(bad)


def test_a_level0_service_is_asked_one_of_the_sizes_it_lists() -> None:
    info = {
        "@context": "http://iiif.io/api/image/3/context.json",
        "profile": "level0",
        "width": 6000,
        "height": 9000,
        "sizes": [{"width": 1500, "height": 2250}, {"width": 375, "height": 563}, {"width": 750, "height": 1125}],
    }
    assert sized_request(f"{BASE}/full/max/0/default.jpg", 1024, info) == f"{BASE}/full/750,1125/0/default.jpg"
    assert size_parameter(info, 2048) == "1500,2250"  # the largest there is
    assert size_parameter({**info, "sizes": []}, 1024) == "max"
    level2 = {
        "@context": "http://iiif.io/api/image/2/context.json",
        "profile": ["http://iiif.io/api/image/2/level0.json"],
    }
    assert size_parameter(level2, 1024) == "full"
    assert size_parameter({"profile": "level1"}, 1024) == "!1024,1024"
    assert size_parameter(None, 512) == "!512,512"


def test_the_size_shown_for_max_honours_the_services_caps() -> None:
    info = {"width": 6000, "height": 9000}
    assert shown_size(info) == (6000, 9000)
    assert shown_size({**info, "maxWidth": 3000}) == (3000, 4500)
    assert shown_size({**info, "maxWidth": 3000, "maxHeight": 3000}) == (2000, 3000)
    assert shown_size({**info, "maxArea": 6000 * 9000 // 4}) == (3000, 4500)
    assert shown_size({**info, "maxWidth": 10000}) == (6000, 9000)  # never enlarged
    level2 = {**info, "profile": ["http://iiif.io/api/image/2/level2.json", {"maxWidth": 1500}]}
    assert shown_size(level2) == (1500, 2250)
