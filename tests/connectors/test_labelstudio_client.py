from __future__ import annotations

import pytest

from connectors.labelstudio_client import LabelStudioNotConfiguredError, label_studio_client


@pytest.fixture(autouse=True)
def _no_label_studio_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)


def test_missing_settings_are_named() -> None:
    with pytest.raises(LabelStudioNotConfiguredError, match="set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"):
        label_studio_client()
    with pytest.raises(LabelStudioNotConfiguredError, match=r"set LABEL_STUDIO_API_KEY$"):
        label_studio_client("http://127.0.0.1:8080")
    with pytest.raises(ValueError, match=r"set LABEL_STUDIO_URL$"):
        label_studio_client(api_key="token")


def test_url_and_key_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://label-studio.example:8080")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "0123456789abcdef")
    client = label_studio_client()
    assert client._client_wrapper.get_base_url() == "http://label-studio.example:8080"
    given = label_studio_client("http://other.example:9000")
    assert given._client_wrapper.get_base_url() == "http://other.example:9000"
