"""Request helpers of the session API tests."""

from __future__ import annotations

from typing import Any

from django.test import Client


def post_json(client: Client, path: str, body: Any, **extra: Any) -> Any:
    return client.post(path, body, content_type="application/json", **extra)


def session_create(client: Client, **overrides: Any) -> dict[str, Any]:
    body = {"model": "gpt-realtime", "voice": "marin", "enableTranscription": True, **overrides}
    response = post_json(client, "/session", body)
    assert response.status_code == 201, response.content
    return dict(response.json())
