from __future__ import annotations

import pytest

from connectors.labelstudio_client import LabelStudioNotConfiguredError, label_studio_client, same_label_studio


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
    same = label_studio_client("HTTP://Label-Studio.example:8080/")
    assert same._client_wrapper.get_base_url() == "HTTP://Label-Studio.example:8080/"
    given = label_studio_client("http://other.example:9000", api_key="its-own-key")
    assert given._client_wrapper.get_base_url() == "http://other.example:9000"


def test_the_configured_key_goes_to_the_configured_url_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://label-studio.example:8080")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "0123456789abcdef")
    for elsewhere in (
        "http://other.example:8080",
        "http://label-studio.example:8081",
        "https://label-studio.example:8080",
    ):
        with pytest.raises(LabelStudioNotConfiguredError, match="only sent to LABEL_STUDIO_URL"):
            label_studio_client(elsewhere)


def test_same_label_studio_ignores_case_default_ports_and_a_trailing_slash() -> None:
    assert same_label_studio("http://LS.example/", "http://ls.example:80")
    assert same_label_studio("https://ls.example:443/ls/", "https://ls.example/ls")
    assert not same_label_studio("http://ls.example/a", "http://ls.example/b")
