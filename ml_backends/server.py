"""The one HTTP face of every PlantAI backend: Label Studio's ML backend protocol on Flask 3.

Served by gunicorn with threads in one process, so the model cache is shared by all requests.
Label Studio gives ``/webhook`` one second: it answers at once and hands events on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from catalog.registry import Catalog
from herbarium.labels.labelstudio_events import TRAINING_ACTIONS, event_project
from herbarium.remote import RemoteFetcher, RemotePolicy
from herbarium.settings import document_root, setting
from ml_backends.admission import BasicAuth, RequestLimits
from ml_backends.service import BadRequestError, LimitExceededError, PredictionService
from ml_backends.task_images import LabelStudioAccess, TaskImages

log = logging.getLogger(__name__)

WebhookHandler = Callable[[dict[str, Any]], None]
# A refused body up to this size is read and dropped, so that its connection can carry the client's next call:
# gunicorn closes a connection with more than 64 KiB left unread, yet has already announced keep-alive (it
# drops an app's Connection header), so a client reusing it would lose that call to a reset.
DRAIN_REFUSED_BYTES = 16 * 2**20


def create_app(
    service: PredictionService,
    on_event: WebhookHandler | None = None,
    auth: BasicAuth | None = None,
) -> Flask:
    """A Flask app for ``service``; ``on_event`` receives webhook events (it must return quickly).

    With ``auth``, every endpoint but ``/health`` answers 401 without the right basic-auth credentials;
    the service's limits cap the request body too.
    """
    app = Flask("plantai-backend")
    app.config["service"] = service
    max_body_bytes = service.limits.max_body_bytes if service.limits else None
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes

    def count(endpoint: str) -> None:
        service.metrics.add(f"requests_{endpoint}")

    @app.before_request
    def authenticate() -> tuple[Response, int, dict[str, str]] | None:
        if auth is None or request.endpoint == "health":
            return None
        given = request.authorization
        user, password = (given.username, given.password) if given and given.type == "basic" else (None, None)
        if auth.admits(user, password):
            return None
        count("unauthorized")
        body = jsonify({"status": "error", "error": "authentication required (HTTP basic auth)"})
        return body, 401, {"WWW-Authenticate": 'Basic realm="PlantAI backend"'}

    @app.errorhandler(BadRequestError)
    def bad_request(exc: BadRequestError) -> tuple[Response, int]:
        status = exc.status if isinstance(exc, LimitExceededError) else 400
        return jsonify({"status": "error", "error": str(exc)}), status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> tuple[Response, int, dict[str, str]]:
        error = f"request body over {max_body_bytes} bytes (PLANTAI_MAX_REQUEST_BYTES)"
        body = jsonify({"status": "error", "error": error})
        return (body, 413, {}) if _drained(request.content_length) else (body, 413, {"Connection": "close"})

    @app.get("/health")
    @app.get("/")
    def health() -> Response:
        count("health")
        return jsonify({"status": "UP", "model_class": "PlantAI", "kind": service.kind})

    @app.post("/setup")
    def setup() -> Response:
        count("setup")
        return jsonify({"model_version": service.setup(_json_body())})

    @app.post("/predict")
    def predict() -> Response:
        count("predict")
        results = service.predict(_json_body())
        return jsonify({"results": results})

    @app.post("/webhook")
    def webhook() -> tuple[Response, int]:
        count("webhook")
        event = _json_body()
        action = event.get("action") if isinstance(event, dict) else None
        service.metrics.add(f"webhook_{str(action).lower()}")
        if action in TRAINING_ACTIONS and event_project(event) not in service.served_projects():
            error = f"project {event_project(event)} is not one this backend serves (no /setup from it)"
            return jsonify({"status": "error", "error": error}), 403
        if on_event is not None and isinstance(event, dict):
            on_event(event)
        return jsonify({"status": "ok", "action": action}), 201

    @app.route("/versions", methods=["GET", "POST"])
    def versions() -> Response:
        count("versions")
        refs = [f"{m.name}@{m.production}" for m in service.served_models()]
        return jsonify({"versions": refs, "model_dir": str(service.catalog.home)})

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(service.metrics.render(), mimetype="text/plain; version=0.0.4")

    return app


def _json_body() -> Any:
    body = request.get_json(silent=True, force=True)
    if body is None:
        raise BadRequestError("expected a JSON body")
    return body


def service_from_environment(kind: str, catalog: Catalog | None = None) -> PredictionService:
    """A service configured the way Label Studio's own variables say: one name per setting."""
    url = setting("LABEL_STUDIO_URL")
    access = LabelStudioAccess(url=url, api_key=setting("LABEL_STUDIO_API_KEY")) if url else None
    remote = RemoteFetcher(RemotePolicy.from_settings()) if setting("PLANTAI_REMOTE_HOSTS") else None
    images = TaskImages(document_root(), access, remote)
    return PredictionService(catalog or Catalog.open(), images, kind=kind, limits=RequestLimits.from_settings())


def app_from_environment(kind: str, on_event: WebhookHandler | None = None) -> Flask:
    """The backend ``plantai serve`` runs: auth and limits from the settings."""
    return create_app(service_from_environment(kind), on_event=on_event, auth=BasicAuth.from_settings())


def _drained(length: int | None) -> bool:
    """Read and drop the refused request's body when its declared length is at most DRAIN_REFUSED_BYTES."""
    if length is None or length > DRAIN_REFUSED_BYTES:
        return False
    stream = request.environ["wsgi.input"]
    while length > 0:
        chunk = stream.read(min(length, 2**16))
        if not chunk:
            break
        length -= len(chunk)
    return True
