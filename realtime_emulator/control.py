"""The control API (`/_emulator/...`) for tests and benchmarks: knobs, faults, call drivers.

No auth; answered on loopback only. JSON bodies, JSON answers; errors use OpenAI's envelope.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .config import TRANSCRIPTION_MODES
from .engine import Call
from .errors import ApiError, invalid_type, invalid_value
from .http_api import json_response, read_json, registry
from .sideband import drop_sidebands
from .state import FAULT_ENDPOINTS, FAULT_STATUSES, Fault
from .synthetic import create_synthetic_calls, start_script


def _call(request: web.Request) -> Call:
    call_id = request.match_info["call_id"]
    call = registry(request).calls.get(call_id)
    if call is None:
        raise ApiError(
            f"Call '{call_id}' not found.", status=404, param="call_id", code="call_not_found"
        )
    return call


def _active_call(request: web.Request) -> Call:
    call = _call(request)
    if call.status == "ended":
        raise ApiError(
            f"Call '{call.id}' has ended ({call.end_reason}).",
            status=409,
            param="call_id",
            code="call_ended",
        )
    return call


def _summary(call: Call) -> dict[str, Any]:
    return {
        "call_id": call.id,
        "kind": call.kind,
        "status": call.status,
        "end_reason": call.end_reason,
        "sidebands": call.sideband_count,
        # A browser's data channel (WebRTC calls): 0 once the browser has gone.
        "datachannels": sum(1 for s in call.subscribers if s.kind == "datachannel"),
    }


async def health(request: web.Request) -> web.Response:
    return json_response({"ok": True})


async def reset(request: web.Request) -> web.Response:
    reg = registry(request)
    reg.reset()
    return json_response({"ok": True, "settings": reg.settings.as_dict()})


async def faults(request: web.Request) -> web.Response:
    body = await read_json(request)
    endpoint = body.get("endpoint")
    if endpoint not in FAULT_ENDPOINTS:
        raise invalid_value("endpoint", endpoint, list(FAULT_ENDPOINTS))
    status = body.get("status")
    if status not in FAULT_STATUSES:
        raise invalid_value("status", status, [str(s) for s in FAULT_STATUSES])
    times = body.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 0:
        raise invalid_type("times", "a non-negative integer", times)
    retry_after = body.get("retry_after_s", 1)
    if isinstance(retry_after, bool) or not isinstance(retry_after, int | float) or retry_after < 0:
        raise invalid_type("retry_after_s", "a non-negative number", retry_after)
    reg = registry(request)
    if times == 0:
        reg.faults.pop(endpoint, None)
    else:
        reg.faults[endpoint] = Fault(status=status, remaining=times, retry_after_s=retry_after)
    return json_response({"endpoint": endpoint, "status": status, "times": times})


async def settings(request: web.Request) -> web.Response:
    body = await read_json(request)
    reg = registry(request)
    reg.settings.update(body)
    return json_response(reg.settings.as_dict())


async def secrets_expire(request: web.Request) -> web.Response:
    body = await read_json(request)
    reg = registry(request)
    value = body.get("value")
    now = time.time()
    if value is None:
        targets = list(reg.secrets.values())
    elif value in reg.secrets:
        targets = [reg.secrets[value]]
    else:
        raise ApiError(
            "Client secret not found.", status=404, param="value", code="secret_not_found"
        )
    for secret in targets:
        secret.expires_at = min(secret.expires_at, now)
    return json_response({"expired": len(targets)})


async def calls_list(request: web.Request) -> web.Response:
    return json_response({"calls": [_summary(c) for c in registry(request).calls.values()]})


async def call_detail(request: web.Request) -> web.Response:
    call = _call(request)
    return json_response(
        {
            **_summary(call),
            "instructions": call.session["instructions"],
            "session": call.session,
            "items": call.items,
        }
    )


async def user_text(request: web.Request) -> web.Response:
    call = _active_call(request)
    body = await read_json(request)
    text = body.get("text")
    if not isinstance(text, str):
        raise invalid_type("text", "a string", text)
    respond = body.get("respond", True)
    if not isinstance(respond, bool):
        raise invalid_type("respond", "a boolean", respond)
    return json_response({"item_id": call.user_text(text, respond=respond)})


async def user_audio(request: web.Request) -> web.Response:
    call = _active_call(request)
    body = await read_json(request)
    transcript = body.get("transcript")
    if not isinstance(transcript, str) or not transcript.strip():
        raise invalid_type("transcript", "a non-empty string", transcript)
    mode = body.get("transcription")
    if mode is not None and mode not in TRANSCRIPTION_MODES:
        raise invalid_value("transcription", mode, list(TRANSCRIPTION_MODES))
    return json_response({"item_id": call.user_audio(transcript, mode)})


async def interrupt(request: web.Request) -> web.Response:
    call = _active_call(request)
    response_id = call.interrupt("turn_detected")
    return json_response({"interrupted": response_id is not None, "response_id": response_id})


async def drop(request: web.Request) -> web.Response:
    call = _call(request)
    body = await read_json(request)
    block = body.get("block", False)
    if not isinstance(block, bool):
        raise invalid_type("block", "a boolean", block)
    if block:
        call.sidebands_blocked = True
    dropped = drop_sidebands(call)
    return json_response({"dropped": dropped, "blocked": call.sidebands_blocked})


async def unblock(request: web.Request) -> web.Response:
    call = _call(request)
    call.sidebands_blocked = False
    return json_response({"blocked": False})


async def expire_session(request: web.Request) -> web.Response:
    call = _active_call(request)
    call.expire()
    return json_response(_summary(call))


async def hangup(request: web.Request) -> web.Response:
    call = _call(request)
    call.end("hangup")
    return json_response(_summary(call))


async def start(request: web.Request) -> web.Response:
    call = _active_call(request)
    if not start_script(registry(request), call):
        raise ApiError(
            f"Call '{call.id}' has no script waiting to start.",
            status=409,
            param="call_id",
            code="no_script",
        )
    return json_response({"started": True})


async def stats(request: web.Request) -> web.Response:
    """Event-loop lag over the last `window_s` seconds (default 10) and live counts: how
    promptly this process runs its timers, independent of any client."""
    reg = registry(request)
    try:
        window = float(request.query.get("window_s", "10"))
    except ValueError as exc:
        raise invalid_value("window_s", request.query.get("window_s")) from exc
    active = [c for c in reg.calls.values() if c.status == "active"]
    return json_response(
        {
            "loop_lag_ms": reg.loop_lag.summary(window),
            "calls_active": len(active),
            "sidebands": sum(c.sideband_count for c in active),
        }
    )


async def synthetic_calls(request: web.Request) -> web.Response:
    body = await read_json(request)
    return json_response({"calls": create_synthetic_calls(registry(request), body)})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_emulator/health", health)
    r.add_post("/_emulator/reset", reset)
    r.add_post("/_emulator/faults", faults)
    r.add_post("/_emulator/settings", settings)
    r.add_post("/_emulator/secrets/expire", secrets_expire)
    r.add_get("/_emulator/calls", calls_list)
    r.add_get("/_emulator/calls/{call_id}", call_detail)
    r.add_post("/_emulator/calls/{call_id}/user-text", user_text)
    r.add_post("/_emulator/calls/{call_id}/user-audio", user_audio)
    r.add_post("/_emulator/calls/{call_id}/interrupt", interrupt)
    r.add_post("/_emulator/calls/{call_id}/drop-sidebands", drop)
    r.add_post("/_emulator/calls/{call_id}/unblock-sidebands", unblock)
    r.add_post("/_emulator/calls/{call_id}/expire-session", expire_session)
    r.add_post("/_emulator/calls/{call_id}/hangup", hangup)
    r.add_post("/_emulator/calls/{call_id}/start", start)
    r.add_post("/_emulator/synthetic-calls", synthetic_calls)
    r.add_get("/_emulator/stats", stats)
