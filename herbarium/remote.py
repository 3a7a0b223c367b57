"""Fetching from other hosts (herbaria's image servers, IIIF services), only where the allow-list lets PlantAI go.

URLs that come from a data file (a DwC-A's multimedia rows, a IIIF manifest, a CSV) are chosen by whoever
wrote the file: fetched blindly, one naming ``http://169.254.169.254/`` or a host on the team's network
would make PlantAI a proxy into it. So a :class:`RemoteFetcher` follows these rules, each refusal a
:class:`RemoteRefusedError` whose ``reason`` names the rule:

* ``scheme``: http and https only;
* ``host``: the host is on ``PLANTAI_REMOTE_HOSTS`` (names, ``*.suffix`` patterns, IP addresses or networks);
* ``address``: every address the name resolves to is public, unless a listed address or network covers it
  (a listed *name* does not vouch for a private answer: that is DNS rebinding). The connection then goes to
  the address that was checked, never to a second lookup's, with the name as Host header and TLS server name;
* ``redirect``: redirects are followed by hand, each target checked as above, at most :data:`MAX_REDIRECTS`;
* ``size`` and ``time``: at most ``PLANTAI_REMOTE_MAX_BYTES``, all within ``PLANTAI_REMOTE_SECONDS``;
* ``status`` and ``network``: an answer other than 200, or no answer at all.

With ``PLANTAI_REMOTE_HOSTS=images.herbarium.example``:

>>> fetcher = RemoteFetcher(RemotePolicy.from_settings())  # doctest: +SKIP
>>> fetcher.fetch("https://images.herbarium.example/iiif/abc/full/!2048,2048/0/default.jpg")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3

from herbarium.settings import setting

MAX_REDIRECTS = 5
POOL_CONNECTIONS = 16  # kept open per address: as many as parallel fetches to one server
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
_DNS_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOST_PATTERN = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_REASONS = frozenset({"scheme", "host", "address", "redirect", "size", "time", "status", "network"})


class RemotePolicyError(ValueError):
    """A malformed allow-list or limit (``PLANTAI_REMOTE_*``)."""


class RemoteRefusedError(Exception):
    """A URL PlantAI will not fetch, or a fetch it gave up on; ``reason`` names the rule (see the module)."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in _REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        super().__init__(f"{message} [{reason}]")
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the operating system's resolver)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise RemoteRefusedError("network", f"{host}: no address ({error})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # the resolver's order: its preference


def _plain_host(hostname: str) -> str:
    """``hostname`` as an address or an ASCII DNS name (IDNA), lower case; "" for anything else.

    What the resolver is given must be exactly what the allow-list matched: a NUL or other stray character
    (``attacker.example\x00.listed.example``) would be cut or read differently by the resolver.
    """
    if _address(hostname) is not None:
        return hostname
    try:
        ascii_name = hostname.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        return ""
    return ascii_name if _DNS_NAME.fullmatch(ascii_name) else ""


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, Teredo), whose reach is what counts."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class RemotePolicy:
    """Where PlantAI may fetch from, and how much; :meth:`parse` reads the allow-list's text."""

    hosts: tuple[str, ...]  # lower-case names; "*.example.org" admits every name under example.org
    networks: tuple[IPNetwork, ...]  # addresses and networks; the only way to admit a private one
    max_bytes: int
    seconds: float
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def parse(cls, allow: str, max_bytes: int, seconds: float, resolver: Resolver = system_resolver) -> RemotePolicy:
        """An allow-list of comma- or space-separated names, ``*.suffix`` patterns, addresses and networks."""
        hosts: list[str] = []
        networks: list[IPNetwork] = []
        for entry in re.split(r"[,\s]+", allow.strip().lower()):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_PATTERN.fullmatch(entry):
                raise RemotePolicyError(
                    f"PLANTAI_REMOTE_HOSTS: {entry!r} is not a host name, *.suffix, address or network "
                    "(no scheme, port or path)"
                )
            hosts.append(entry)
        return cls(tuple(hosts), tuple(networks), max_bytes, seconds, resolver)

    @classmethod
    def from_settings(cls) -> RemotePolicy:
        """PLANTAI_REMOTE_HOSTS, PLANTAI_REMOTE_MAX_BYTES and PLANTAI_REMOTE_SECONDS."""
        try:
            max_bytes = int(setting("PLANTAI_REMOTE_MAX_BYTES") or 0)
            seconds = float(setting("PLANTAI_REMOTE_SECONDS") or 0)
        except ValueError as error:
            raise RemotePolicyError(f"PLANTAI_REMOTE_MAX_BYTES / PLANTAI_REMOTE_SECONDS: {error}") from None
        if max_bytes <= 0 or seconds <= 0:
            raise RemotePolicyError("PLANTAI_REMOTE_MAX_BYTES and PLANTAI_REMOTE_SECONDS must be positive")
        return cls.parse(setting("PLANTAI_REMOTE_HOSTS") or "", max_bytes=max_bytes, seconds=seconds)

    def covers(self, address: IPAddress) -> bool:
        embedded = _embedded_ipv4(address)
        return any(address in network or (embedded is not None and embedded in network) for network in self.networks)

    def lists_host(self, host: str) -> bool:
        address = _address(host)
        if address is not None:
            return self.covers(address)
        return any(host == name or (name.startswith("*.") and host.endswith(name[1:])) for name in self.hosts)

    def target(self, url: str) -> tuple[str, str, int]:
        """(scheme, host, port) of ``url`` when its scheme and host are allowed; else a refusal."""
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            port = parts.port or (443 if scheme == "https" else 80)
            hostname = parts.hostname or ""
        except ValueError as error:  # a bracket left open, a port that is no number
            raise RemoteRefusedError("host", f"{url!r}: not a valid URL ({error})") from None
        if scheme not in ("http", "https"):
            raise RemoteRefusedError("scheme", f"{url}: only http and https are fetched")
        host = _plain_host(hostname)
        if not host:
            raise RemoteRefusedError("host", f"{url!r}: no host, or one that is neither a DNS name nor an address")
        if not self.lists_host(host):
            raise RemoteRefusedError("host", f"{url}: {host} is not on PLANTAI_REMOTE_HOSTS")
        return scheme, host, port

    def checked_addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to, in the resolver's order: every answer public or listed, else a refusal."""
        literal = _address(host)
        answers = [str(literal)] if literal is not None else self.resolver(host, port)
        if not answers:
            raise RemoteRefusedError("network", f"{host}: no address")
        for answer in answers:
            address = _address(answer)
            if address is None:
                raise RemoteRefusedError("address", f"{host}: resolver gave {answer!r}, not an address")
            embedded = _embedded_ipv4(address)
            public = address.is_global and (embedded is None or embedded.is_global)
            if not public and not self.covers(address):
                raise RemoteRefusedError(
                    "address",
                    f"{host} resolves to {address}, a private, loopback or link-local address that no "
                    "PLANTAI_REMOTE_HOSTS address or network covers",
                )
        return answers

    def redirect_target(self, current: str, location: str | None) -> str:
        """Where a redirect from ``current`` leads, when the rules allow it; else a ``redirect`` refusal."""
        if not location:
            raise RemoteRefusedError("status", f"{current}: a redirect without a Location")
        try:
            target = urljoin(current, location)
            self.target(target)
        except (RemoteRefusedError, ValueError) as refusal:
            raise RemoteRefusedError("redirect", f"{current} redirects to {location!r}: {refusal}") from None
        if current.lower().startswith("https:") and not target.lower().startswith("https:"):
            raise RemoteRefusedError("redirect", f"{current} redirects to {target}: from https to http")
        return target


@dataclass(frozen=True)
class Fetched:
    """What one fetch brought back."""

    url: str  # as asked
    final_url: str  # after redirects
    data: bytes
    sha256: str
    content_type: str | None


class RemoteFetcher:
    """Fetches under a :class:`RemotePolicy`; keeps one connection pool per checked address (thread-safe)."""

    def __init__(self, policy: RemotePolicy, ca_certs: str | None = None) -> None:
        self.policy = policy
        self.ca_certs = ca_certs or certifi.where()  # the certificate authorities https servers must chain to
        self._pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> Fetched:
        """``url``'s body, every rule of the module checked; a :class:`RemoteRefusedError` otherwise."""
        deadline = time.monotonic() + self.policy.seconds
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            scheme, host, port = self.policy.target(current)
            response = self._get(scheme, host, port, current, headers or {}, deadline)
            try:
                if response.status in REDIRECT_STATUSES:
                    current = self.policy.redirect_target(current, response.headers.get("Location"))
                    continue
                if response.status != 200:
                    raise RemoteRefusedError("status", f"{current}: the server answered {response.status}")
                data = self._body(response, current, deadline)
            finally:
                if not response.closed:  # a body left unread: its connection cannot carry another request
                    response.close()
                response.release_conn()
            content_type = response.headers.get("Content-Type")
            return Fetched(url, current, data, hashlib.sha256(data).hexdigest(), content_type)
        raise RemoteRefusedError("redirect", f"{url}: more than {MAX_REDIRECTS} redirects")

    def _too_slow(self, url: str) -> RemoteRefusedError:
        return RemoteRefusedError("time", f"{url}: over {self.policy.seconds:g} s (PLANTAI_REMOTE_SECONDS)")

    def _get(
        self, scheme: str, host: str, port: int, url: str, headers: Mapping[str, str], deadline: float
    ) -> urllib3.BaseHTTPResponse:
        """The answer from the first checked address of ``host`` that takes the connection."""
        addresses = self.policy.checked_addresses(host, port)
        for address in addresses[:-1]:
            try:
                return self._get_from(scheme, host, port, address, url, headers, deadline)
            except RemoteRefusedError as refusal:
                if refusal.reason != "network":
                    raise
        return self._get_from(scheme, host, port, addresses[-1], url, headers, deadline)

    def _get_from(
        self,
        scheme: str,
        host: str,
        port: int,
        address: str,
        url: str,
        headers: Mapping[str, str],
        deadline: float,
    ) -> urllib3.BaseHTTPResponse:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._too_slow(url)
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = 443 if scheme == "https" else 80
        host_header = host if port == default_port else f"{host}:{port}"
        if _address(host) is not None and ":" in host:
            host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
        try:
            return self._pool(scheme, host, port, address).urlopen(
                "GET",
                path,
                headers={**headers, "Host": host_header},
                redirect=False,
                retries=False,
                preload_content=False,
                timeout=urllib3.Timeout(connect=remaining, read=remaining),
            )
        except urllib3.exceptions.NewConnectionError:  # before TimeoutError: urllib3 derives it from one
            raise RemoteRefusedError("network", f"{url}: no connection") from None
        except urllib3.exceptions.TimeoutError:
            raise self._too_slow(url) from None
        except urllib3.exceptions.HTTPError as error:
            raise RemoteRefusedError("network", f"{url}: {error.__class__.__name__}") from None

    def _pool(self, scheme: str, host: str, port: int, address: str) -> urllib3.HTTPConnectionPool:
        key = (scheme, host, port, address)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                if scheme == "https":  # the checked address, with the name for SNI and the certificate
                    pool = urllib3.HTTPSConnectionPool(
                        address,
                        port,
                        maxsize=POOL_CONNECTIONS,
                        server_hostname=host,
                        assert_hostname=host,
                        ca_certs=self.ca_certs,
                    )
                else:
                    pool = urllib3.HTTPConnectionPool(address, port, maxsize=POOL_CONNECTIONS)
                self._pools[key] = pool
            return pool

    def _body(self, response: urllib3.BaseHTTPResponse, url: str, deadline: float) -> bytes:
        limit = self.policy.max_bytes
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RemoteRefusedError("size", f"{url}: {declared} bytes, over {limit} (PLANTAI_REMOTE_MAX_BYTES)")
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := response.read1(1 << 16):  # returns after one read: a slow drip meets the deadline
                size += len(chunk)
                if size > limit:
                    raise RemoteRefusedError("size", f"{url}: over {limit} bytes (PLANTAI_REMOTE_MAX_BYTES)")
                if time.monotonic() > deadline:
                    raise self._too_slow(url)
                chunks.append(chunk)
        except urllib3.exceptions.TimeoutError:
            raise self._too_slow(url) from None
        except urllib3.exceptions.HTTPError as error:
            raise RemoteRefusedError("network", f"{url}: {error.__class__.__name__} while reading") from None
        return b"".join(chunks)


__all__ = [
    "MAX_REDIRECTS",
    "Fetched",
    "RemoteFetcher",
    "RemotePolicy",
    "RemotePolicyError",
    "RemoteRefusedError",
    "Resolver",
    "system_resolver",
]
