"""The one place PlantAI builds a Label Studio SDK client."""

from __future__ import annotations

from typing import Any

from herbarium.settings import setting


class LabelStudioNotConfiguredError(ValueError):
    """No Label Studio URL or key, given or in the settings; the message names what is missing."""


def label_studio_client(url: str | None = None, api_key: str | None = None, **sdk_options: Any) -> Any:
    """A ``label_studio_sdk.LabelStudio`` client for ``url`` with ``api_key``.

    Either left out (or empty) comes from its setting, ``LABEL_STUDIO_URL`` or ``LABEL_STUDIO_API_KEY``;
    :class:`LabelStudioNotConfiguredError` when one is still missing. ``sdk_options`` (``timeout``,
    ``httpx_client``) go to the SDK as they are.
    """
    base_url = url or setting("LABEL_STUDIO_URL")
    key = api_key or setting("LABEL_STUDIO_API_KEY")
    missing = [name for name, value in (("LABEL_STUDIO_URL", base_url), ("LABEL_STUDIO_API_KEY", key)) if not value]
    if missing:
        raise LabelStudioNotConfiguredError(f"Label Studio is not configured: set {' and '.join(missing)}")
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=base_url, api_key=key, **sdk_options)  # type: ignore[no-untyped-call]


__all__ = ["LabelStudioNotConfiguredError", "label_studio_client"]
