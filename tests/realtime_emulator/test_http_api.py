"""Public HTTP endpoints: auth, validation errors naming `param`, faults, CORS."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from realtime_emulator.testing import EmulatorError, EmulatorServer

from .conftest import idle_call

SDP_OFFER = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def _post(emulator: EmulatorServer, path: str, body: Any, key: str | None) -> tuple[int, Any]:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    try:
        return 200, emulator.request("POST", path, body, headers)
    except EmulatorError as error:
        return error.status, error.body


@pytest.mark.parametrize("key", [None, "sk-wrong", "ek_0123"])
def test_client_secrets_refuse_anything_but_the_api_key(
    emulator: EmulatorServer, key: str | None
) -> None:
    status, body = _post(
        emulator, "/v1/realtime/client_secrets", {"session": {"type": "realtime"}}, key
    )
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["type"] == "invalid_request_error"
    assert set(body["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (
            {"session": {"type": "realtime", "audio": {"output": {"voice": "robot"}}}},
            "session.audio.output.voice",
            "invalid_value",
        ),
        ({"session": {"type": "realtime", "model": "gpt-4o"}}, "session.model", "invalid_value"),
        ({"session": {"model": "gpt-realtime"}}, "session.type", "missing_required_parameter"),
        ({"session": {"type": "realtime", "voice": "alloy"}}, "session.voice", "unknown_parameter"),
        (
            {"session": {"type": "realtime", "instructions": 3}},
            "session.instructions",
            "invalid_type",
        ),
        (
            {
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "loud"}}},
                }
            },
            "session.audio.input.turn_detection.type",
            "invalid_value",
        ),
        (
            {"expires_after": {"anchor": "created_at", "seconds": 5}},
            "expires_after.seconds",
            "integer_below_min_value",
        ),
        (
            {"expires_after": {"anchor": "created_at", "seconds": 7201}},
            "expires_after.seconds",
            "integer_above_max_value",
        ),
        (
            {"expires_after": {"anchor": "now", "seconds": 60}},
            "expires_after.anchor",
            "invalid_value",
        ),
    ],
)
def test_client_secrets_name_the_invalid_param(
    emulator: EmulatorServer, body: dict[str, Any], param: str, code: str
) -> None:
    status, answer = _post(emulator, "/v1/realtime/client_secrets", body, emulator.api_key)
    assert status == 400
    assert (answer["error"]["param"], answer["error"]["code"]) == (param, code)


def test_client_secret_ttl_defaults_to_600_seconds_and_models_are_accepted(
    emulator: EmulatorServer,
) -> None:
    for model in (
        "gpt-realtime",
        "gpt-realtime-2",
        "gpt-realtime-mini",
        "gpt-4o-realtime-preview-2025-06-03",
    ):
        status, answer = _post(
            emulator,
            "/v1/realtime/client_secrets",
            {"session": {"type": "realtime", "model": model}},
            emulator.api_key,
        )
        assert status == 200
        assert answer["session"]["model"] == model
    status, answer = _post(emulator, "/v1/realtime/client_secrets", {}, emulator.api_key)
    assert status == 200
    assert abs(answer["expires_at"] - (time.time() + 600)) < 5


async def test_calls_refuse_unknown_and_expired_secrets(
    emulator: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    _, secret = _post(emulator, "/v1/realtime/client_secrets", {}, emulator.api_key)
    emulator.control("POST", "/_emulator/secrets/expire", {"value": secret["value"]})
    for key in ("ek_unknown", secret["value"]):
        response = await http.post(
            f"{emulator.api_base}/realtime/calls",
            data=SDP_OFFER,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"},
        )
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "invalid_api_key"


async def test_responses_refuse_a_client_secret(emulator: EmulatorServer) -> None:
    _, secret = _post(emulator, "/v1/realtime/client_secrets", {}, emulator.api_key)
    status, body = _post(
        emulator, "/v1/responses", {"model": "gpt-4.1", "input": "hi"}, secret["value"]
    )
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")


def test_responses_name_the_invalid_param(emulator: EmulatorServer) -> None:
    status, body = _post(
        emulator,
        "/v1/responses",
        {
            "model": "gpt-4.1",
            "input": "hi",
            "text": {"format": {"type": "json_schema", "name": "x"}},
        },
        emulator.api_key,
    )
    assert (status, body["error"]["param"]) == (400, "text.format.schema")
    status, body = _post(emulator, "/v1/responses", {"input": "hi"}, emulator.api_key)
    assert (status, body["error"]["param"]) == (400, "model")


async def test_sideband_with_a_wrong_key_gets_an_error_then_close_3000(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    call = idle_call(emulator)
    other = idle_call(emulator)
    emulator.control("POST", "/_emulator/secrets/expire", {"value": other["client_secret"]})
    for key in ("sk-wrong", other["client_secret"]):
        sideband = await connect_sideband(call["call_id"], key)
        event = await sideband.next()
        assert event is not None
        assert event["type"] == "error"
        assert event["error"]["code"] == "invalid_api_key"
        assert await sideband.closed() == 3000
    # the call's own secret, while unexpired, is accepted
    sideband = await connect_sideband(call["call_id"], call["client_secret"])
    emulator.control("POST", f"/_emulator/calls/{call['call_id']}/user-text", {"text": "x"})
    assert (await sideband.next())["type"] == "conversation.item.added"


async def test_sideband_to_an_unknown_call_gets_an_error_then_close(connect_sideband: Any) -> None:
    sideband = await connect_sideband("rtc_unknown")
    event = await sideband.next()
    assert event is not None
    assert event["error"]["code"] == "call_not_found"
    assert await sideband.closed() == 1008


@pytest.mark.parametrize(
    ("endpoint", "path", "status", "error_type", "code"),
    [
        ("client_secrets", "/v1/realtime/client_secrets", 429, "requests", "rate_limit_exceeded"),
        ("responses", "/v1/responses", 500, "server_error", "server_error"),
        ("calls", "/v1/realtime/calls", 503, "server_error", "service_unavailable"),
        ("responses", "/v1/responses", 502, "server_error", "bad_gateway"),
    ],
)
async def test_fault_knob_fails_the_next_n_requests(
    emulator: EmulatorServer,
    http: aiohttp.ClientSession,
    endpoint: str,
    path: str,
    status: int,
    error_type: str,
    code: str,
) -> None:
    emulator.control(
        "POST", "/_emulator/faults", {"endpoint": endpoint, "status": status, "times": 2}
    )
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    for _ in range(2):
        response = await http.post(f"{emulator.base_url}{path}", json={}, headers=headers)
        assert response.status == status
        assert (await response.json())["error"] == {
            "message": (await response.json())["error"]["message"],
            "type": error_type,
            "param": None,
            "code": code,
        }
        if status in (429, 503):
            assert response.headers["Retry-After"] == "1"
    # the third request reaches the endpoint again (and fails on its own validation, not a fault)
    response = await http.post(f"{emulator.base_url}{path}", json={}, headers=headers)
    assert response.status not in (429, 500, 502, 503)


async def test_cors_preflight_and_exposed_location(
    emulator: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    origin = "http://127.0.0.1:8000"
    response = await http.options(
        f"{emulator.api_base}/realtime/calls",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == origin
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    refused = await http.post(
        f"{emulator.api_base}/realtime/calls",
        data=SDP_OFFER,
        headers={"Origin": origin, "Content-Type": "application/sdp"},
    )
    assert refused.status == 401
    assert refused.headers["Access-Control-Allow-Origin"] == origin
    assert "Location" in refused.headers["Access-Control-Expose-Headers"]
