"""OpenAI's public HTTP endpoints: client secrets, WebRTC calls, hangup, and the routes table."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import BodyPartReader, web

from .errors import ApiError, bearer_token, invalid_api_key, invalid_type, unknown_parameter
from .session import apply_session_patch, model_is_supported
from .state import FaultEndpoint, Registry
from .webrtc import answer_offer

log = logging.getLogger(__name__)

REGISTRY: web.AppKey[Registry] = web.AppKey("registry", Registry)
SECRET_TTL_DEFAULT = 600
SECRET_TTL_MIN = 10
SECRET_TTL_MAX = 7200


def registry(request: web.Request) -> Registry:
    return request.app[REGISTRY]


def fault_raise(reg: Registry, endpoint: FaultEndpoint) -> None:
    """Fail this request if a fault is armed for the endpoint (faults apply before auth)."""
    fault = reg.take_fault(endpoint)
    if fault is not None:
        raise fault


def api_key_check(request: web.Request, *, endpoint: FaultEndpoint) -> Registry:
    """Answer armed faults, then require the server API key; returns the registry."""
    reg = registry(request)
    fault_raise(reg, endpoint)
    key = bearer_token(request)
    if not reg.is_api_key(key):
        raise invalid_api_key(key)
    return reg


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            code="invalid_json",
        ) from exc
    if not isinstance(body, dict):
        raise invalid_type("body", "an object", body)
    return body


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def _secret_ttl(raw: Any) -> int:
    if raw is None:
        return SECRET_TTL_DEFAULT
    if not isinstance(raw, dict):
        raise invalid_type("expires_after", "an object", raw)
    for key in raw:
        if key not in ("anchor", "seconds"):
            raise unknown_parameter(f"expires_after.{key}")
    anchor = raw.get("anchor", "created_at")
    if anchor != "created_at":
        raise ApiError(
            f"Invalid value: '{anchor}'. Supported values are: 'created_at'.",
            param="expires_after.anchor",
            code="invalid_value",
        )
    seconds = raw.get("seconds", SECRET_TTL_DEFAULT)
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise invalid_type("expires_after.seconds", "an integer", seconds)
    if seconds < SECRET_TTL_MIN:
        raise ApiError(
            "Invalid 'expires_after.seconds': integer below minimum value. Expected a value >= "
            f"{SECRET_TTL_MIN}, but got {seconds} instead.",
            param="expires_after.seconds",
            code="integer_below_min_value",
        )
    if seconds > SECRET_TTL_MAX:
        raise ApiError(
            "Invalid 'expires_after.seconds': integer above maximum value. Expected a value <= "
            f"{SECRET_TTL_MAX}, but got {seconds} instead.",
            param="expires_after.seconds",
            code="integer_above_max_value",
        )
    return seconds


async def client_secrets_create(request: web.Request) -> web.Response:
    reg = api_key_check(request, endpoint="client_secrets")
    body = await read_json(request)
    for name in body:
        if name not in ("expires_after", "session"):
            raise unknown_parameter(name)
    ttl = _secret_ttl(body.get("expires_after"))
    session = apply_session_patch(reg.new_session(), body.get("session", {"type": "realtime"}))
    secret = reg.create_secret(session, ttl)
    return json_response(
        {"value": secret.value, "expires_at": int(secret.expires_at), "session": session}
    )


async def _read_offer(request: web.Request) -> tuple[str, Any]:
    """The SDP offer and the optional session (multipart `sdp` + `session`, or raw SDP)."""
    if request.content_type.startswith("multipart/"):
        sdp: str | None = None
        session: Any = None
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            name = part.name
            text = await part.text()
            if name == "sdp":
                sdp = text
            elif name == "session":
                try:
                    session = json.loads(text)
                except ValueError as exc:
                    raise invalid_type("session", "a JSON object", text) from exc
        if sdp is None:
            raise ApiError(
                "Missing required parameter: 'sdp'.", param="sdp", code="missing_required_parameter"
            )
        return sdp, session
    if request.content_type not in ("application/sdp", "text/plain"):
        raise ApiError(
            f"Unsupported content type: '{request.content_type}'. Send 'application/sdp' or "
            "'multipart/form-data'.",
            param="content-type",
            code="unsupported_content_type",
        )
    return await request.text(), None


async def calls_create(request: web.Request) -> web.Response:
    reg = registry(request)
    fault_raise(reg, "calls")
    key = bearer_token(request)
    sdp, session_patch = await _read_offer(request)
    secret_value: str | None = None
    if reg.is_api_key(key):
        session = reg.new_session()
        model = request.query.get("model")
        if model is not None:
            if not model_is_supported(model):
                raise ApiError(f"Invalid model: '{model}'.", param="model", code="invalid_value")
            session["model"] = model
    elif key is not None and key in reg.secrets:
        secret = reg.secrets[key]
        if secret.expired:
            raise ApiError(
                "The client secret has expired. Create a new one with /v1/realtime/client_secrets.",
                status=401,
                code="invalid_api_key",
            )
        session = secret.session
        secret_value = key
    else:
        raise invalid_api_key(key)
    if session_patch is not None:
        session = apply_session_patch(session, session_patch)
    if "v=0" not in sdp or "m=" not in sdp:
        raise ApiError("Invalid SDP offer.", param="sdp", code="invalid_offer")
    call = reg.create_call(session, secret=secret_value, kind="webrtc")
    try:
        answer = await answer_offer(call, sdp)
    except Exception as exc:
        log.warning("call %s: SDP negotiation failed: %s", call.id, exc)
        call.end("negotiation_failed")
        raise ApiError(
            f"Could not negotiate the SDP offer: {exc}", param="sdp", code="invalid_offer"
        ) from exc
    return web.Response(
        status=201,
        text=answer,
        content_type="application/sdp",
        headers={"Location": f"/v1/realtime/calls/{call.id}"},
    )


async def calls_hangup(request: web.Request) -> web.Response:
    reg = registry(request)
    fault_raise(reg, "hangup")
    call_id = request.match_info["call_id"]
    call = reg.calls.get(call_id)
    key = bearer_token(request)
    if not reg.is_api_key(key) and not (
        call is not None and key is not None and key == call.secret
    ):
        raise invalid_api_key(key)
    if call is None:
        raise ApiError(
            f"Call '{call_id}' not found.", status=404, param="call_id", code="call_not_found"
        )
    call.end("hangup")
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    from .responses_api import responses_create
    from .sideband import sideband_connect

    app.router.add_post("/v1/realtime/client_secrets", client_secrets_create)
    app.router.add_post("/v1/realtime/calls", calls_create)
    app.router.add_post("/v1/realtime/calls/{call_id}/hangup", calls_hangup)
    app.router.add_get("/v1/realtime", sideband_connect)
    app.router.add_post("/v1/responses", responses_create)
