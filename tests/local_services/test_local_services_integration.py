"""The real services the suite stands on answer: Label Studio, FiftyOne's database, Ultralytics offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from local_services.fiftyone_db import LocalFiftyOneDatabase
from local_services.labelstudio import LocalLabelStudio
from local_services.process import listening_ports

pytestmark = pytest.mark.integration


def test_label_studio_answers_with_legacy_token_and_serves_local_files(
    label_studio: LocalLabelStudio, ls_client: Any, tmp_path: Path
) -> None:
    assert requests.get(f"{label_studio.url}/health", timeout=5).json() == {"status": "UP"}
    assert label_studio.pid is not None
    assert label_studio.server.port in listening_ports(label_studio.pid)
    assert ls_client.users.whoami().email == label_studio.server.account.email

    # A sheet under the document root, synced through local storage, is served back byte for byte.
    folder = label_studio.server.document_root / "service-check"
    folder.mkdir(parents=True, exist_ok=True)
    sheet = folder / "sheet one.jpg"
    Image.fromarray(np.full((40, 30, 3), 200, dtype=np.uint8)).save(sheet)
    project = ls_client.projects.create(
        title="service check",
        label_config='<View><Image name="image" value="$image"/>'
        '<RectangleLabels name="label" toName="image"><Label value="leaf"/></RectangleLabels></View>',
    )
    storage = ls_client.import_storage.local.create(
        project=project.id, path=str(folder), regex_filter=r".*\.jpg", use_blob_urls=True
    )
    ls_client.import_storage.local.sync(id=storage.id)
    tasks = list(ls_client.tasks.list(project=project.id))
    assert len(tasks) == 1
    image_url = tasks[0].data["image"]
    assert image_url.startswith("/data/local-files/?d=")
    served = requests.get(
        f"{label_studio.url}{image_url}", headers={"Authorization": f"Token {label_studio.token}"}, timeout=10
    )
    assert served.status_code == 200
    assert served.content == sheet.read_bytes()


def test_unauthenticated_calls_are_refused(label_studio: LocalLabelStudio) -> None:
    response = requests.get(f"{label_studio.url}/api/projects", timeout=5)
    assert response.status_code == 401


def test_fiftyone_uses_the_private_database(fiftyone_db: LocalFiftyOneDatabase) -> None:
    import fiftyone as fo

    assert fo.config.database_uri == fiftyone_db.uri
    dataset = fo.Dataset("service-check", overwrite=True)
    dataset.add_sample(
        fo.Sample(
            filepath="/tmp/sheet.jpg",
            ground_truth=fo.Detections(detections=[fo.Detection(label="leaf", bounding_box=[0.1, 0.2, 0.3, 0.4])]),
        )
    )
    dataset.persistent = True
    del dataset

    reloaded = fo.load_dataset("service-check")
    assert reloaded.count("ground_truth.detections") == 1
    assert reloaded.first().ground_truth.detections[0].bounding_box == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert fiftyone_db.pid is not None
    assert fiftyone_db.port in listening_ports(fiftyone_db.pid)
    reloaded.delete()


def test_ultralytics_builds_and_predicts_offline(
    ultralytics_config_dir: Path, loopback_only: list[Any], tmp_path: Path
) -> None:
    assert os.environ["YOLO_OFFLINE"] == "1"
    from ultralytics import YOLO
    from ultralytics.utils.checks import check_font

    assert Path(check_font("Arial.ttf")) == ultralytics_config_dir / "Arial.ttf"
    model = YOLO("yolo11n.yaml")  # architecture only: no weights to download
    image = tmp_path / "sheet.jpg"
    Image.fromarray(np.full((96, 64, 3), 230, dtype=np.uint8)).save(image)
    results = model.predict(str(image), imgsz=64, verbose=False)
    assert len(results) == 1
    assert loopback_only == []
