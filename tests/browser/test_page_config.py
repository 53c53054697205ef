"""What the server tells the page at / (no browser needed)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from django.test import Client

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsWrapper


def _page_config(client: Client) -> dict[str, object]:
    response = client.get("/")
    assert response.status_code == 200
    match = re.search(
        r'<script id="page-config" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match is not None
    config: dict[str, object] = json.loads(match.group(1))
    return config


def test_the_page_gets_the_allow_lists_upstream_url_and_key_lifetime(
    client: Client, settings: SettingsWrapper
) -> None:
    settings.REALTIME_MODELS = ["gpt-realtime-mini", "gpt-realtime"]
    settings.REALTIME_VOICES = ["cedar", "marin"]
    settings.OPENAI_BROWSER_BASE_URL = "https://upstream.example/v1"
    settings.CLIENT_SECRET_TTL_S = 600
    settings.REALTIME_SESSION_MAX_S = 3600
    settings.SIDEBAND_IDLE_S = 120

    assert _page_config(client) == {
        "models": ["gpt-realtime-mini", "gpt-realtime"],
        "voices": ["cedar", "marin"],
        "defaultModel": "gpt-realtime-mini",
        "defaultVoice": "cedar",
        "upstreamBaseUrl": "https://upstream.example/v1",
        "clientSecretTtlS": 600,
        "renewMarginS": 60,
        "sessionMaxS": 3600,
        "presenceIntervalS": 30,
    }


def test_the_renew_margin_is_a_tenth_of_the_key_lifetime_within_bounds(
    client: Client, settings: SettingsWrapper
) -> None:
    margins = {}
    for ttl in (10, 120, 7200):
        settings.CLIENT_SECRET_TTL_S = ttl
        margins[ttl] = _page_config(client)["renewMarginS"]

    assert margins == {10: 5, 120: 12, 7200: 60}


def test_the_page_config_holds_no_secret(client: Client, settings: SettingsWrapper) -> None:
    settings.UPSTREAM_API_KEY = "sk-must-not-leak"

    response = client.get("/")

    assert b"sk-must-not-leak" not in response.content
    assert "csrftoken" in response.cookies
