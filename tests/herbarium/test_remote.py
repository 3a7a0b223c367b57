"""The remote fetch policy against a real HTTP server on loopback: each rule's refusal has its own test."""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from herbarium.remote import (
    MAX_REDIRECTS,
    RemoteFetcher,
    RemotePolicy,
    RemotePolicyError,
    RemoteRefusedError,
    Resolver,
    system_resolver,
)
from herbarium.settings import setting

SHEET = bytes(range(256)) * 40  # 10 KiB standing in for an image
MIB = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/sheet.jpg":
            self._send(200, SHEET, Content_Type="image/jpeg")
        elif url.path == "/host":
            self._send(200, self.headers["Host"].encode())
        elif url.path == "/redirect":
            self._send(302, Location=query["to"])
        elif url.path == "/loop":
            self._send(302, Location="/loop")
        elif url.path == "/declared-big":
            self.send_response(200)
            self.send_header("Content-Length", str(10 * MIB))
            self.end_headers()
            self.close_connection = True  # nothing follows: the client must refuse from the header alone
        elif url.path == "/undeclared-big":
            self.send_response(200)
            self.end_headers()
            self.close_connection = True  # no length: the body runs to the connection's end
            for _ in range(4):
                self.wfile.write(b"x" * MIB)
        elif url.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):  # a byte every 20 ms: each read is quick, the whole is not
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.02)
        else:
            self._send(404, b"no such sheet")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gives up mid-body (the size and time refusals) is what these tests do


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 for this module's tests; its base URL."""
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _fetcher(
    allow: str, max_bytes: int = MIB, seconds: float = 10.0, resolver: Resolver = system_resolver
) -> RemoteFetcher:
    return RemoteFetcher(RemotePolicy.parse(allow, max_bytes, seconds, resolver))


def _refusal(fetcher: RemoteFetcher, url: str) -> RemoteRefusedError:
    with pytest.raises(RemoteRefusedError) as caught:
        fetcher.fetch(url)
    return caught.value


def test_an_allowed_host_is_fetched_and_its_sha256_recorded(server: str) -> None:
    fetched = _fetcher("127.0.0.0/8").fetch(f"{server}/sheet.jpg")
    assert fetched.data == SHEET
    assert fetched.sha256 == hashlib.sha256(SHEET).hexdigest()
    assert (fetched.content_type, fetched.final_url) == ("image/jpeg", f"{server}/sheet.jpg")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/a.jpg", "gopher://127.0.0.1:70/_x", "a.jpg"])
def test_refused_scheme_anything_but_http_and_https(url: str) -> None:
    refusal = _refusal(_fetcher("127.0.0.0/8"), url)
    assert refusal.reason == "scheme"


def test_refused_host_not_on_the_allow_list(server: str) -> None:
    refusal = _refusal(_fetcher("images.herbarium.example, *.iiif.example"), f"{server}/sheet.jpg")
    assert refusal.reason == "host"
    assert "127.0.0.1 is not on PLANTAI_REMOTE_HOSTS" in str(refusal)
    assert _refusal(_fetcher(""), "https://images.herbarium.example/a.jpg").reason == "host"  # nothing listed


def test_refused_address_loopback_reached_by_a_listed_name(server: str) -> None:
    port = urlsplit(server).port
    refusal = _refusal(_fetcher("localhost"), f"http://localhost:{port}/sheet.jpg")
    assert refusal.reason == "address"
    assert "loopback" in str(refusal)
    assert _fetcher("localhost, 127.0.0.0/8").fetch(f"http://localhost:{port}/sheet.jpg").data == SHEET


@pytest.mark.parametrize(
    "answers",
    [["10.1.2.3"], ["93.184.215.14", "127.0.0.1"], ["169.254.169.254"], ["::1"], ["::ffff:127.0.0.1"], ["fe80::1"]],
    ids=["private", "one-of-several", "cloud-metadata", "ipv6-loopback", "ipv4-mapped-loopback", "link-local"],
)
def test_refused_address_a_dns_answer_that_is_not_public(answers: list[str]) -> None:
    """DNS rebinding: the listed name resolves to an address of the team's own network."""
    fetcher = _fetcher("images.herbarium.example", resolver=lambda host, port: answers)
    refusal = _refusal(fetcher, "https://images.herbarium.example/iiif/a/full/max/0/default.jpg")
    assert refusal.reason == "address"


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(server: str) -> None:
    """One lookup, checked, and the connection made to its answer (no second lookup to rebind)."""
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    port = urlsplit(server).port
    fetcher = _fetcher("sheets.herbarium.test, 127.0.0.1", resolver=resolver)
    fetched = fetcher.fetch(f"http://sheets.herbarium.test:{port}/host")  # a name no real resolver knows
    assert fetched.data == f"sheets.herbarium.test:{port}".encode()
    assert lookups == ["sheets.herbarium.test"]


def test_refused_redirect_to_a_host_off_the_list(server: str) -> None:
    refusal = _refusal(_fetcher("127.0.0.0/8"), f"{server}/redirect?to=http://169.254.169.254/latest/meta-data/")
    assert refusal.reason == "redirect"
    assert "169.254.169.254" in str(refusal)


def test_refused_redirect_to_another_scheme(server: str) -> None:
    assert _refusal(_fetcher("127.0.0.0/8"), f"{server}/redirect?to=file:///etc/passwd").reason == "redirect"


def test_a_redirect_on_the_list_is_followed(server: str) -> None:
    fetched = _fetcher("127.0.0.0/8").fetch(f"{server}/redirect?to=/sheet.jpg")
    assert (fetched.data, fetched.final_url) == (SHEET, f"{server}/sheet.jpg")


def test_refused_redirect_past_the_limit(server: str) -> None:
    refusal = _refusal(_fetcher("127.0.0.0/8"), f"{server}/loop")
    assert refusal.reason == "redirect"
    assert f"more than {MAX_REDIRECTS} redirects" in str(refusal)


def test_refused_size_declared_over_the_cap(server: str) -> None:
    refusal = _refusal(_fetcher("127.0.0.0/8", max_bytes=MIB), f"{server}/declared-big")
    assert refusal.reason == "size"
    assert f"{10 * MIB} bytes, over {MIB}" in str(refusal)


def test_refused_size_undeclared_body_past_the_cap(server: str) -> None:
    refusal = _refusal(_fetcher("127.0.0.0/8", max_bytes=MIB), f"{server}/undeclared-big")
    assert refusal.reason == "size"


def test_refused_time_a_server_that_drips(server: str) -> None:
    started = time.monotonic()
    refusal = _refusal(_fetcher("127.0.0.0/8", seconds=0.5), f"{server}/drip")
    assert refusal.reason == "time"
    assert time.monotonic() - started < 5  # given up near the cap, not after the whole 20 s body


def test_refused_status_other_than_200(server: str) -> None:
    refusal = _refusal(_fetcher("127.0.0.0/8"), f"{server}/missing.jpg")
    assert refusal.reason == "status"
    assert "answered 404" in str(refusal)


def test_refused_network_nothing_listening() -> None:
    assert _refusal(_fetcher("127.0.0.0/8"), "http://127.0.0.1:9/a.jpg").reason == "network"


@pytest.mark.parametrize("entry", ["http://images.example", "images.example:8080", "images.example/iiif", "ex ample!"])
def test_an_allow_list_entry_that_is_not_a_host_is_a_clear_error(entry: str) -> None:
    with pytest.raises(RemotePolicyError, match="PLANTAI_REMOTE_HOSTS"):
        RemotePolicy.parse(entry, MIB, 10.0)


def test_the_policy_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTAI_REMOTE_HOSTS", "images.herbarium.example, *.iiif.example 10.0.0.0/8")
    policy = RemotePolicy.from_settings()
    assert policy.hosts == ("images.herbarium.example", "*.iiif.example")
    assert [str(n) for n in policy.networks] == ["10.0.0.0/8"]
    assert (policy.max_bytes, policy.seconds) == (int(setting("PLANTAI_REMOTE_MAX_BYTES") or 0), 120.0)
    assert policy.lists_host("tiles.iiif.example")
    assert not policy.lists_host("iiif.example.evil.test")
    monkeypatch.setenv("PLANTAI_REMOTE_SECONDS", "soon")
    with pytest.raises(RemotePolicyError, match="PLANTAI_REMOTE_SECONDS"):
        RemotePolicy.from_settings()


@pytest.mark.parametrize(
    "url",
    [
        "http://attacker.example\x00.herbarium.example/a.jpg",  # a resolver cuts the name at the NUL
        "http://attacker.example%00.herbarium.example/a.jpg",
        "http://bad_name.herbarium.example/a.jpg",
        "http://[::1/a.jpg",  # a bracket left open
        "http://images.herbarium.example:port/a.jpg",
    ],
)
def test_refused_host_a_name_the_resolver_could_read_otherwise(url: str) -> None:
    lookups: list[str] = []
    fetcher = _fetcher("*.herbarium.example", resolver=lambda host, port: lookups.append(host) or ["93.184.215.14"])
    assert _refusal(fetcher, url).reason == "host"
    assert lookups == []  # refused before any lookup


def test_an_international_name_is_matched_as_the_resolver_sees_it() -> None:
    seen: list[str] = []
    fetcher = _fetcher("xn--hrbarium-k1a.example", resolver=lambda host, port: seen.append(host) or ["10.0.0.1"])
    assert _refusal(fetcher, "http://hêrbarium.example/a.jpg").reason == "address"  # listed, then resolved
    assert seen == ["xn--hrbarium-k1a.example"]


@pytest.mark.parametrize("answer", ["64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "2001:0:4136:e378:8000:63bf:56ff:fefe"])
def test_refused_address_an_ipv6_answer_carrying_a_private_ipv4(answer: str) -> None:
    """NAT64, 6to4 and Teredo addresses reach the IPv4 address they embed (here 169.254.169.254, 169.254.1.1)."""
    fetcher = _fetcher("images.herbarium.example", resolver=lambda host, port: [answer])
    assert _refusal(fetcher, "https://images.herbarium.example/a.jpg").reason == "address"


def test_refused_redirect_from_https_to_http() -> None:
    fetcher = _fetcher("images.herbarium.example")
    with pytest.raises(RemoteRefusedError, match="from https to http") as caught:
        fetcher.policy.redirect_target("https://images.herbarium.example/a", "http://images.herbarium.example/b")
    assert caught.value.reason == "redirect"


def test_a_malformed_redirect_is_a_refusal_not_a_crash() -> None:
    fetcher = _fetcher("127.0.0.0/8")
    with pytest.raises(RemoteRefusedError) as caught:
        fetcher.policy.redirect_target("http://127.0.0.1/a", "http://[::1")
    assert caught.value.reason == "redirect"


def test_the_next_checked_address_is_tried_when_the_first_takes_no_connection(server: str) -> None:
    port = urlsplit(server).port
    fetcher = _fetcher("sheets.herbarium.test, 127.0.0.0/8", resolver=lambda host, p: ["127.0.0.2", "127.0.0.1"])
    # Nothing listens on 127.0.0.2 at that port: the server answers on 127.0.0.1.
    assert fetcher.fetch(f"http://sheets.herbarium.test:{port}/sheet.jpg").data == SHEET


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (openssl, Debian's), and its key."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
         "-out", str(cert), "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """This module's handler over TLS on 127.0.0.1, with a certificate for sheets.herbarium.test."""
    cert, key = _certificate(tmp_path, "sheets.herbarium.test")
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], cert
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_https_goes_to_the_checked_address_and_checks_the_certificate_for_the_name(
    https_server: tuple[int, Path], tmp_path: Path
) -> None:
    port, cert = https_server
    policy = RemotePolicy.parse("sheets.herbarium.test, 127.0.0.1", MIB, 10.0, lambda host, p: ["127.0.0.1"])
    fetched = RemoteFetcher(policy, ca_certs=str(cert)).fetch(f"https://sheets.herbarium.test:{port}/host")
    assert fetched.data == f"sheets.herbarium.test:{port}".encode()  # the name in Host, the address checked
    other, _ = _certificate(tmp_path, "other.herbarium.test")
    refusal = _refusal(RemoteFetcher(policy, ca_certs=str(other)), f"https://sheets.herbarium.test:{port}/host")
    assert refusal.reason == "network"  # a certificate no trusted authority signed for the name: no body read
