"""The control API for Live sessions (`/_emulator/live/sessions/...`): drivers and fault knobs.

The same knobs as for Realtime calls: drop (and block) sidebands, expire, plus a simulated
spoken turn (`user-speech`: the user's transcript, as if heard) and a close with any of the
`session.closed` reasons. Loopback only, like the rest of `/_emulator/`.
"""

from __future__ import annotations

from typing import Any, get_args

from aiohttp import web

from .errors import invalid_type, invalid_value
from .http_api import json_response, read_json, registry
from .live_api import session_not_found
from .live_session import CloseReason, LiveSession
from .sideband import SidebandSubscriber

CLOSE_REASONS: tuple[str, ...] = get_args(CloseReason)


def _session(request: web.Request, *, active: bool = False) -> LiveSession:
    session = registry(request).live_sessions.get(request.match_info["session_id"])
    if session is None or (active and session.status == "ended"):
        raise session_not_found()
    return session


def _summary(session: LiveSession) -> dict[str, Any]:
    return {
        "session_id": session.id,
        "status": session.status,
        "close_reason": session.close_reason,
        "sidebands": session.sideband_count,
        "store": session.store,
        "forked_from": session.forked_from,
    }


async def live_list(request: web.Request) -> web.Response:
    sessions = registry(request).live_sessions.values()
    return json_response({"sessions": [_summary(s) for s in sessions]})


async def live_detail(request: web.Request) -> web.Response:
    session = _session(request)
    return json_response(
        {
            **_summary(session),
            "session": session.resource(),
            "history": [{"role": role, "text": text} for role, text in session.history],
            "timeline_ms": session.timeline_ms,
            "speaking": session.speaking,
        }
    )


async def live_user_speech(request: web.Request) -> web.Response:
    session = _session(request, active=True)
    body = await read_json(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise invalid_type("text", "a non-empty string", text)
    interrupted = session.speaking
    session.user_said(text)
    return json_response({"interrupted": interrupted})


async def live_drop_sidebands(request: web.Request) -> web.Response:
    session = _session(request)
    body = await read_json(request)
    block = body.get("block", False)
    if not isinstance(block, bool):
        raise invalid_type("block", "a boolean", block)
    if block:
        session.sidebands_blocked = True
    dropped = [s for s in session.subscribers if isinstance(s, SidebandSubscriber)]
    for subscriber in dropped:
        session.detach(subscriber)
        subscriber.abort()
    return json_response({"dropped": len(dropped), "blocked": session.sidebands_blocked})


async def live_unblock_sidebands(request: web.Request) -> web.Response:
    session = _session(request)
    session.sidebands_blocked = False
    return json_response({"blocked": False})


async def live_expire(request: web.Request) -> web.Response:
    session = _session(request, active=True)
    session.close("expired")
    return json_response(_summary(session))


async def live_close(request: web.Request) -> web.Response:
    session = _session(request, active=True)
    body = await read_json(request)
    reason = body.get("reason", "close_requested")
    if reason not in CLOSE_REASONS:
        raise invalid_value("reason", reason, list(CLOSE_REASONS))
    session.close(reason)
    return json_response(_summary(session))


def add_live_control_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_emulator/live/sessions", live_list)
    r.add_get("/_emulator/live/sessions/{session_id}", live_detail)
    r.add_post("/_emulator/live/sessions/{session_id}/user-speech", live_user_speech)
    r.add_post("/_emulator/live/sessions/{session_id}/drop-sidebands", live_drop_sidebands)
    r.add_post("/_emulator/live/sessions/{session_id}/unblock-sidebands", live_unblock_sidebands)
    r.add_post("/_emulator/live/sessions/{session_id}/expire-session", live_expire)
    r.add_post("/_emulator/live/sessions/{session_id}/close", live_close)
