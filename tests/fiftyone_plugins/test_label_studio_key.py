"""The plugin sends Label Studio's key to the configured LABEL_STUDIO_URL and to no other host.

Two real HTTP servers on loopback record every request they receive: one is the configured Label
Studio, the other a host an App user names in the ``label_studio_url`` parameter. The operators run
with FiftyOne's own ``ExecutionContext`` (secrets from the environment, as in the App); none needs a
database before it reaches Label Studio.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fiftyone_plugins.herbarium import LabelStudioURLRefusedError, SyncFromLabelStudio, label_studio_client
from fiftyone_plugins.herbarium.retrain import RetrainModel

KEY = "plantai-test-key-4f1c9e0b"


@dataclass
class Recorder:
    """An HTTP server that keeps every request's method, path and headers; it answers an empty page of
    projects to ``GET /api/projects/?...`` and 404 to anything else."""

    server: ThreadingHTTPServer
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def carrying_the_key(self) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.requests if any(KEY in value for value in r[2].values())]


@pytest.fixture
def start_recorder() -> Iterator[Callable[[], Recorder]]:
    started: list[Recorder] = []

    def start() -> Recorder:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorder.requests.append((self.command, self.path, dict(self.headers.items())))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if self.command == "GET" and self.path.startswith("/api/projects/?"):
                    status, body = 200, {"count": 0, "next": None, "previous": None, "results": []}
                else:
                    status, body = 404, {"detail": "Not found."}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815 (http.server names them)

            def log_message(self, format: str, *args: Any) -> None:
                return

        recorder = Recorder(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        threading.Thread(target=recorder.server.serve_forever, daemon=True).start()
        started.append(recorder)
        return recorder

    yield start
    for recorder in started:
        recorder.server.shutdown()
        recorder.server.server_close()


@pytest.fixture
def configured(start_recorder: Callable[[], Recorder], monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """The configured Label Studio: LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY name it, as in the App."""
    label_studio = start_recorder()
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
    return label_studio


def _ctx(params: dict[str, Any]) -> Any:
    from fiftyone.operators.executor import ExecutionContext

    return ExecutionContext(request_params={"params": params})


def _list_projects(params: dict[str, Any], tmp_path: Path) -> Any:
    return list(label_studio_client(_ctx(params)).projects.list())


def _sync(params: dict[str, Any], tmp_path: Path) -> Any:
    ctx = _ctx({"project_id": 1, "document_root": str(tmp_path), **params})
    return SyncFromLabelStudio().execute(ctx)


def _retrain(params: dict[str, Any], tmp_path: Path) -> Any:
    ctx = _ctx({"project": 1, "plantai_home": str(tmp_path / "home"), **params})
    return RetrainModel().execute(ctx)


PATHS = {"client": _list_projects, "sync_from_label_studio": _sync, "retrain_model": _retrain}


@pytest.mark.parametrize("path", list(PATHS))
def test_the_key_is_never_sent_to_a_label_studio_url_given_as_a_parameter(
    path: str, configured: Recorder, start_recorder: Callable[[], Recorder], tmp_path: Path
) -> None:
    elsewhere = start_recorder()

    raised: Exception | None = None
    try:
        PATHS[path]({"label_studio_url": elsewhere.url}, tmp_path)
    except Exception as error:  # what was sent is checked first, whatever the operator raised
        raised = error

    assert elsewhere.carrying_the_key() == []
    assert elsewhere.requests == []  # nothing at all reached the other host
    assert configured.requests == []  # and the refusal happened before any request
    assert isinstance(raised, LabelStudioURLRefusedError), raised
    assert isinstance(raised, ValueError)  # operators report it to the App user
    assert "only sent to the configured LABEL_STUDIO_URL" in str(raised)


@pytest.mark.parametrize(
    "given",
    [
        "http://127.0.0.1:{other}",
        "https://127.0.0.1:{port}",  # another scheme
        "http://127.0.0.1:{port}/other",  # another path
        "http://localhost:{port}",  # another host name (the same machine, but not the configured URL)
        "http://127.0.0.1:{port}@127.0.0.1:{other}",  # the configured URL as user info, another host
        "http://127.0.0.1:{port}x",  # an invalid port
        "127.0.0.1:{port}",  # no scheme
    ],
)
def test_lookalikes_of_the_configured_url_are_refused(
    given: str, configured: Recorder, start_recorder: Callable[[], Recorder], tmp_path: Path
) -> None:
    elsewhere = start_recorder()
    port, other = configured.server.server_address[1], elsewhere.server.server_address[1]

    with pytest.raises(LabelStudioURLRefusedError):
        _list_projects({"label_studio_url": given.format(port=port, other=other)}, tmp_path)

    assert elsewhere.requests == configured.requests == []


def test_a_given_url_is_refused_when_no_label_studio_url_is_configured(
    start_recorder: Callable[[], Recorder], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = start_recorder()
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)

    with pytest.raises(LabelStudioURLRefusedError):
        _list_projects({"label_studio_url": elsewhere.url}, tmp_path)

    assert elsewhere.requests == []


@pytest.mark.parametrize("given", [None, "", "{url}", "{url}/", "HTTP://127.0.0.1:{port}//"])
def test_the_configured_url_gets_the_key(
    given: str | None, configured: Recorder, start_recorder: Callable[[], Recorder], tmp_path: Path
) -> None:
    elsewhere = start_recorder()
    port = configured.server.server_address[1]
    params = {} if given is None else {"label_studio_url": given.format(url=configured.url, port=port)}

    assert _list_projects(params, tmp_path) == []

    assert [(method, path.partition("?")[0]) for method, path, _ in configured.requests] == [("GET", "/api/projects/")]
    assert configured.requests[0][2]["Authorization"] == f"Token {KEY}"
    assert elsewhere.requests == []
