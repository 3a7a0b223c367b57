"""Label Studio's local-files URLs: written and read by Label Studio's own rule, nothing outside the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from herbarium.labels.local_files import LocalFilesError, is_local_files_url, local_file, local_files_url


def test_a_file_under_the_root_round_trips_through_its_url(tmp_path: Path) -> None:
    image = tmp_path / "scans 2024" / "P%20 1+2.jpg"  # a space, a literal percent sign and a plus
    url = local_files_url(image, tmp_path)
    assert url == "/data/local-files/?d=scans%202024/P%2520%201%2B2.jpg"
    assert local_file(url, tmp_path) == image.resolve()
    assert local_file("http://ls:8080" + url, tmp_path) == image.resolve()  # any host: the caller decides


def test_the_value_is_decoded_once_as_label_studio_decodes_a_query(tmp_path: Path) -> None:
    assert local_file("/data/local-files/?d=a/b%20c.jpg", tmp_path) == (tmp_path / "a" / "b c.jpg").resolve()
    assert local_file("/data/local-files/?d=a%2520b.jpg", tmp_path) == (tmp_path / "a%20b.jpg").resolve()
    assert local_file("/data/local-files/?d=" + str(tmp_path / "x.jpg"), tmp_path) == (tmp_path / "x.jpg").resolve()


def test_urls_leaving_the_root_or_without_a_path_are_refused(tmp_path: Path) -> None:
    for value in ("../../etc/passwd", "..%2F..%2Fx.jpg", "/etc/passwd"):
        url = "/data/local-files/?d=" + value
        with pytest.raises(LocalFilesError, match="leaves LOCAL_FILES_DOCUMENT_ROOT"):
            local_file(url, tmp_path / "root")
    with pytest.raises(LocalFilesError, match="without"):
        local_file("/data/local-files/?x=1", tmp_path)
    with pytest.raises(LocalFilesError, match="not under LOCAL_FILES_DOCUMENT_ROOT"):
        local_files_url(tmp_path / "a.jpg", tmp_path / "root")


def test_other_urls_are_not_local_files(tmp_path: Path) -> None:
    assert not is_local_files_url("https://example.org/a.jpg")
    assert is_local_files_url("https://ls.example.org/label-studio/data/local-files/?d=a.jpg")
    assert local_file("/data/upload/1/a.jpg", tmp_path) is None
