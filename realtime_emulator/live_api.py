"""OpenAI's Live endpoints: create (WebRTC), hangup, fork, and the sideband attach.

- `POST /v1/live/sessions` `{session, transport: {type: "webrtc", sdp}}` with the API key:
  `201 {session: {id: "live_u1_…"}, transport: {type: "webrtc", sdp: <answer>}}`. No client
  secrets: the browser's offer travels through the application server.
- `POST /v1/live/sessions/{id}/hangup`: 200 with no body, then 404 `session_id_not_found`.
- `POST /v1/live/sessions/{id}/fork` `{transport, session?}`: a stored session (`store: true`)
  continues on a new WebRTC connection under a new id; its conversation comes along (the new
  `session.started` reports `input: []`, as recorded).
- `GET /v1/live/sessions/{id}/attach` (WebSocket, API key): `session.started`, then events.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from .errors import ApiError, bearer_token, invalid_api_key
from .http_api import api_key_check, json_response, read_json, registry
from .ids import new_live_session_id
from .live_config import checked_fork_overrides, checked_session, transport_offer
from .live_session import LiveSession
from .live_webrtc import answer_live_offer
from .sideband import SidebandSubscriber, sideband_serve, sidebands_blocked_error
from .state import Registry

log = logging.getLogger(__name__)


def session_not_found() -> ApiError:
    return ApiError(
        "No session found for the provided session_id",
        status=404,
        param="session_id",
        code="session_id_not_found",
    )


def _session(reg: Registry, request: web.Request, *, active: bool) -> LiveSession:
    session = reg.live_sessions.get(request.match_info["session_id"])
    if session is None or (active and session.status == "ended"):
        raise session_not_found()
    return session


async def _start(
    reg: Registry,
    *,
    config: dict[str, Any],
    offer: str,
    history: list[tuple[str, str]] | None = None,
    forked_from: str | None = None,
) -> web.Response:
    reg.prune()
    session = LiveSession(
        session_id=new_live_session_id(),
        config=config,
        settings=reg.settings,
        history=history,
        forked_from=forked_from,
    )
    reg.live_sessions[session.id] = session
    try:
        answer = await answer_live_offer(session, offer)
    except Exception as exc:
        log.warning("live session %s: SDP negotiation failed: %s", session.id, exc)
        session.close("connection_lost")
        del reg.live_sessions[session.id]
        raise ApiError(
            f"Could not negotiate the SDP offer: {exc}",
            param="transport.sdp",
            code="invalid_offer",
        ) from exc
    return json_response(
        {"session": {"id": session.id}, "transport": {"type": "webrtc", "sdp": answer}},
        status=201,
    )


async def live_sessions_create(request: web.Request) -> web.Response:
    reg = api_key_check(request, endpoint="live_sessions")
    body = await read_json(request)
    for name in body:
        if name not in ("session", "transport"):
            raise ApiError(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    if "session" not in body:
        raise ApiError(
            "Missing required parameter: 'session'.",
            param="session",
            code="missing_required_parameter",
        )
    config = checked_session(body["session"])
    offer = transport_offer(body.get("transport"))
    return await _start(reg, config=config, offer=offer)


async def live_sessions_fork(request: web.Request) -> web.Response:
    reg = api_key_check(request, endpoint="live_sessions")
    source = _session(reg, request, active=False)
    if not source.store:
        raise ApiError(
            "Only a session started with store: true can be forked.",
            param="session_id",
            code="session_not_stored",
        )
    body = await read_json(request)
    for name in body:
        if name not in ("session", "transport"):
            raise ApiError(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    overrides = checked_fork_overrides(body.get("session"))
    offer = transport_offer(body.get("transport"))
    config = {**source.config, "input": [], **overrides}
    return await _start(
        reg, config=config, offer=offer, history=list(source.history), forked_from=source.id
    )


async def live_sessions_hangup(request: web.Request) -> web.Response:
    reg = registry(request)
    key = bearer_token(request)
    if not reg.is_api_key(key):
        raise invalid_api_key(key)
    session = _session(reg, request, active=True)
    session.close("close_requested")
    return web.Response(status=200)


async def live_sessions_attach(request: web.Request) -> web.StreamResponse:
    """The sideband: refused before the upgrade (401/404/503) like any HTTP request."""
    reg = registry(request)
    key = bearer_token(request)
    if not reg.is_api_key(key):
        raise invalid_api_key(key)
    session = _session(reg, request, active=True)
    if session.sidebands_blocked:
        raise sidebands_blocked_error("session")
    transport = request.transport
    ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024, compress=False)
    await ws.prepare(request)
    subscriber = SidebandSubscriber(ws, transport)
    session.attach(subscriber)
    await sideband_serve(
        ws, subscriber, receive=session.handle_client_message, leave=session.detach
    )
    return ws


def add_live_routes(app: web.Application) -> None:
    app.router.add_post("/v1/live/sessions", live_sessions_create)
    app.router.add_post("/v1/live/sessions/{session_id}/hangup", live_sessions_hangup)
    app.router.add_post("/v1/live/sessions/{session_id}/fork", live_sessions_fork)
    app.router.add_get("/v1/live/sessions/{session_id}/attach", live_sessions_attach)
