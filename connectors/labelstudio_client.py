"""The one place PlantAI builds a Label Studio SDK client."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from herbarium.settings import setting


class LabelStudioNotConfiguredError(ValueError):
    """No Label Studio URL or key, given or in the settings; the message names what is missing."""


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _normalised(url: str) -> tuple[object, ...]:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)  # an invalid port raises ValueError
    host = (parts.hostname or "").lower()
    return scheme, parts.username, parts.password, host, port, parts.path.rstrip("/"), parts.query, parts.fragment


def same_label_studio(url: str, other: str) -> bool:
    """Whether two URLs name the same Label Studio: scheme, credentials, host (any case), port (the
    scheme's default when absent), path (a trailing slash aside), query and fragment. A URL without
    a host, or with a port that is no port, names none."""
    try:
        return bool(urlsplit(url.strip()).hostname) and _normalised(url) == _normalised(other)
    except ValueError:
        return False


def label_studio_client(url: str | None = None, api_key: str | None = None, **sdk_options: Any) -> Any:
    """A ``label_studio_sdk.LabelStudio`` client for ``url`` with ``api_key``.

    Either left out (or empty) comes from its setting, ``LABEL_STUDIO_URL`` or ``LABEL_STUDIO_API_KEY``;
    :class:`LabelStudioNotConfiguredError` when one is still missing. The configured key is only ever
    sent to the configured URL: another URL needs its own key. ``sdk_options`` (``timeout``,
    ``httpx_client``) go to the SDK as they are.
    """
    configured_url = setting("LABEL_STUDIO_URL")
    base_url = url or configured_url
    key = api_key
    if not key:
        key = setting("LABEL_STUDIO_API_KEY")
        if key and url and not (configured_url and same_label_studio(url, configured_url)):
            raise LabelStudioNotConfiguredError(
                f"the configured LABEL_STUDIO_API_KEY is only sent to LABEL_STUDIO_URL, not to {url}: give its own key"
            )
    missing = [name for name, value in (("LABEL_STUDIO_URL", base_url), ("LABEL_STUDIO_API_KEY", key)) if not value]
    if missing:
        raise LabelStudioNotConfiguredError(f"Label Studio is not configured: set {' and '.join(missing)}")
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=base_url, api_key=key, **sdk_options)  # type: ignore[no-untyped-call]


__all__ = ["LabelStudioNotConfiguredError", "label_studio_client", "same_label_studio"]
