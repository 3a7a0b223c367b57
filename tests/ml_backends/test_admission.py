"""Backend doors: basic auth on every endpoint but /health, request limits answered 4xx with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from catalog.registry import Catalog
from connectors.label_config import review_config
from herbarium.synth import generate_sheet
from ml_backends.admission import AdmissionConfigError, BasicAuth, RequestLimits, exposure_warning, is_loopback
from ml_backends.server import DRAIN_REFUSED_BYTES, create_app
from ml_backends.service import PredictionService
from ml_backends.task_images import TaskImages
from tests.ml_backends.tiny_models import detector_catalog

CONFIG = review_config(["detect-nonvegetal"])
AUTH = BasicAuth("label-studio", "s3cret-pass")
PROTECTED = [("post", "/predict"), ("post", "/setup"), ("post", "/webhook"), ("get", "/versions"), ("get", "/metrics")]


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": BasicAuth(user, password).header()}


@pytest.fixture(scope="module")
def document_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    generate_sheet(seed=5, width=600, height=840).image.save(root / "sheet.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return detector_catalog(tmp_path_factory.mktemp("home"))


def _client(catalog: Catalog, root: Path, limits: RequestLimits | None = None, **app: Any) -> FlaskClient:
    service = PredictionService(catalog, TaskImages(root, None), limits=limits)
    return create_app(service, **app).test_client()


def _tasks(n: int) -> list[dict[str, Any]]:
    return [{"id": k, "data": {"image": "/data/local-files/?d=sheet.jpg"}} for k in range(1, n + 1)]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_endpoint_but_health_needs_the_credentials(
    catalog: Catalog, document_root: Path, method: str, path: str
) -> None:
    client = _client(catalog, document_root, auth=AUTH)
    for headers in ({}, _basic("label-studio", "wrong"), _basic("someone", "s3cret-pass")):
        answer = getattr(client, method)(path, json={}, headers=headers)
        assert answer.status_code == 401, (path, headers)
        assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert getattr(client, method)(path, json={}, headers=_basic("label-studio", "s3cret-pass")).status_code != 401


def test_health_answers_without_credentials(catalog: Catalog, document_root: Path) -> None:
    client = _client(catalog, document_root, auth=AUTH)
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200


def test_with_the_credentials_predict_answers(catalog: Catalog, document_root: Path) -> None:
    client = _client(catalog, document_root, auth=AUTH)
    answer = client.post(
        "/predict", json={"tasks": _tasks(1), "label_config": CONFIG}, headers=_basic("label-studio", "s3cret-pass")
    )
    assert answer.status_code == 200, answer.text
    assert answer.get_json()["results"][0]["result"]


def test_auth_needs_both_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BASIC_AUTH_USER", raising=False)
    monkeypatch.delenv("BASIC_AUTH_PASS", raising=False)
    assert BasicAuth.from_settings() is None
    monkeypatch.setenv("BASIC_AUTH_USER", "label-studio")
    with pytest.raises(AdmissionConfigError, match="set BASIC_AUTH_PASS"):
        BasicAuth.from_settings()
    monkeypatch.setenv("BASIC_AUTH_PASS", "pw")
    assert BasicAuth.from_settings() == BasicAuth("label-studio", "pw")


def test_a_body_over_the_limit_is_refused_with_the_reason(catalog: Catalog, document_root: Path) -> None:
    client = _client(catalog, document_root, RequestLimits(max_body_bytes=1000, max_tasks=1000, max_seconds=60))
    answer = client.post("/predict", json={"tasks": _tasks(50), "label_config": CONFIG})
    assert answer.status_code == 413
    assert "over 1000 bytes (PLANTAI_MAX_REQUEST_BYTES)" in answer.get_json()["error"]
    assert "Connection" not in answer.headers  # the refused body was read: the connection can carry the next call


def test_a_body_too_big_to_drain_closes_its_connection(catalog: Catalog, document_root: Path) -> None:
    client = _client(catalog, document_root, RequestLimits(max_body_bytes=1000, max_tasks=1000, max_seconds=60))
    answer = client.post("/predict", data=b"x" * (DRAIN_REFUSED_BYTES + 1), content_type="application/json")
    assert (answer.status_code, answer.headers["Connection"]) == (413, "close")


def test_too_many_tasks_are_refused_with_the_reason(catalog: Catalog, document_root: Path) -> None:
    client = _client(catalog, document_root, RequestLimits(max_body_bytes=10**6, max_tasks=3, max_seconds=60))
    answer = client.post("/predict", json={"tasks": _tasks(4), "label_config": CONFIG})
    assert answer.status_code == 413
    assert "4 tasks, at most 3 per request (PLANTAI_MAX_PREDICT_TASKS)" in answer.get_json()["error"]
    assert client.post("/predict", json={"tasks": _tasks(3), "label_config": CONFIG}).status_code == 200


def test_a_request_over_its_time_is_answered_408_with_the_reason(catalog: Catalog, document_root: Path) -> None:
    client = _client(catalog, document_root, RequestLimits(max_body_bytes=10**6, max_tasks=10, max_seconds=1e-9))
    answer = client.post("/predict", json={"tasks": _tasks(1), "label_config": CONFIG})
    assert answer.status_code == 408
    assert "(PLANTAI_PREDICT_SECONDS)" in answer.get_json()["error"]


def test_start_training_for_a_project_not_served_is_refused(catalog: Catalog, document_root: Path) -> None:
    events: list[dict[str, Any]] = []
    client = _client(catalog, document_root, on_event=events.append)
    start = {"action": "START_TRAINING", "project": {"id": 5}}
    answer = client.post("/webhook", json=start)
    assert answer.status_code == 403
    assert "project 5 is not one this backend serves" in answer.get_json()["error"]
    assert events == []
    assert client.post("/setup", json={"project": "5.1733300000", "schema": CONFIG}).status_code == 200
    assert client.post("/webhook", json=start).status_code == 201
    assert events == [start]
    other = {"action": "START_TRAINING", "project": {"id": 6}}
    assert client.post("/webhook", json=other).status_code == 403


def test_exposure_is_said_loudly_only_without_auth_beyond_loopback() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert exposure_warning("127.0.0.1", 9090, None) is None
    assert exposure_warning("0.0.0.0", 9090, AUTH) is None
    warning = exposure_warning("0.0.0.0", 9090, None)
    assert warning is not None
    assert "BASIC_AUTH_USER" in warning
