"""Who may call a backend, and how much one request may ask of it.

HTTP basic auth with Label Studio's own convention (``BASIC_AUTH_USER``/``BASIC_AUTH_PASS``, what
Label Studio sends when a model is connected with basic auth), and the limits of one request:
body bytes, tasks per ``/predict``, seconds of work. Image bytes and decoded pixels are capped
where images are read (:mod:`ml_backends.task_images`, :mod:`herbarium.imaging`).
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
from dataclasses import dataclass

from herbarium.settings import setting


class AdmissionConfigError(ValueError):
    """Auth or limit settings that cannot work; the message names the setting."""


@dataclass(frozen=True)
class BasicAuth:
    user: str
    password: str

    @classmethod
    def of(cls, user: str | None, password: str | None) -> BasicAuth | None:
        """Both a user and a password, or neither (no auth); one alone is an error."""
        if bool(user) != bool(password):
            missing = "BASIC_AUTH_PASS" if user else "BASIC_AUTH_USER"
            raise AdmissionConfigError(f"basic auth needs both BASIC_AUTH_USER and BASIC_AUTH_PASS: set {missing}")
        return cls(user, password) if user and password else None

    @classmethod
    def from_settings(cls) -> BasicAuth | None:
        """``BASIC_AUTH_USER`` and ``BASIC_AUTH_PASS`` (see :meth:`of`)."""
        return cls.of(setting("BASIC_AUTH_USER"), setting("BASIC_AUTH_PASS"))

    def header(self) -> str:
        """The ``Authorization`` header value a client sends."""
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def admits(self, user: str | None, password: str | None) -> bool:
        # Both compared in constant time, whatever the first one says: no timing hint of which was wrong.
        user_ok = hmac.compare_digest((user or "").encode(), self.user.encode())
        password_ok = hmac.compare_digest((password or "").encode(), self.password.encode())
        return user_ok and password_ok


def _positive(name: str, parse: type[int] | type[float]) -> int | float:
    value = setting(name)
    try:
        number = parse(value or "")
    except ValueError:
        raise AdmissionConfigError(f"{name}: expected a positive number, got {value!r}") from None
    if number <= 0:
        raise AdmissionConfigError(f"{name}: expected a positive number, got {value!r}")
    return number


@dataclass(frozen=True)
class RequestLimits:
    """The most one request may ask; the defaults are the settings' (herbarium/settings.py)."""

    max_body_bytes: int
    max_tasks: int
    max_seconds: float

    @classmethod
    def from_settings(cls) -> RequestLimits:
        return cls(
            max_body_bytes=int(_positive("PLANTAI_MAX_REQUEST_BYTES", int)),
            max_tasks=int(_positive("PLANTAI_MAX_PREDICT_TASKS", int)),
            max_seconds=float(_positive("PLANTAI_PREDICT_SECONDS", float)),
        )


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the backend on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int, auth: BasicAuth | None) -> str | None:
    """What to say at start-up when a backend without auth listens beyond this machine; None when it does not."""
    if auth is not None or is_loopback(host):
        return None
    return (
        f"WARNING: no authentication, listening on {host}: anyone who reaches port {port} can run every model "
        "on every image under the document root and queue retraining. Set BASIC_AUTH_USER and BASIC_AUTH_PASS "
        "(see SECURITY.md)."
    )
