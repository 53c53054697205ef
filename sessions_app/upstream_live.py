"""The upstream client for OpenAI's Live API (GPT-Live): everything that knows its outgoing side.

No client secrets: the browser's SDP offer comes to this server, which creates the session
(`POST /v1/live/sessions`, project key) and answers with OpenAI's SDP answer. So the session
id, which plays a Realtime call id's role here, is known before the first word, and the
sideband (`/v1/live/sessions/{id}/attach`, project key) is dispatched at once.

Memory is native: `input` seeds a new session with real turns (at most 128 messages and about
8,192 tokens, text only); `instructions` are fixed after start. What comes back on the
sideband is the Live capture's business (sideband/live_capture/). The Realtime counterpart is
sessions_app/upstream.py; sessions_app/voice.py puts both behind one interface.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import openai
from django.conf import settings

from sessions_app.upstream import hangup_outcome, openai_client, upstream_error_from

logger = logging.getLogger(__name__)


class OfferRefused(Exception):
    """The upstream could not negotiate the browser's SDP offer (a 400 on `transport.sdp`):
    the offer is what is wrong, not this server's request."""


@dataclass(frozen=True)
class LiveStarted:
    session_id: str
    answer_sdp: str
    expires_at: dt.datetime


def input_message(*, role: str, text: str) -> dict[str, Any]:
    """One `input` message: user and developer text is `input_text`, assistant `output_text`."""
    part_type = "output_text" if role == "assistant" else "input_text"
    return {"role": role, "content": [{"type": part_type, "text": text}]}


def live_session_config(
    *, model: str, voice: str, instructions: str, history: list[tuple[str, str]]
) -> dict[str, Any]:
    """The `session` object of POST /v1/live/sessions."""
    config: dict[str, Any] = {
        "model": model,
        "instructions": instructions,
        "audio": {"output": {"voice": voice}},
    }
    if history:
        config["input"] = [input_message(role=role, text=text) for role, text in history]
    return config


def live_session_create(
    *, model: str, voice: str, instructions: str, history: list[tuple[str, str]], offer_sdp: str
) -> LiveStarted:
    """Create a Live WebRTC session with the browser's offer; its id and the SDP answer."""
    started_at = dt.datetime.now(tz=dt.UTC)
    try:
        created = openai_client().live.create(
            session=live_session_config(  # type: ignore[arg-type]
                model=model, voice=voice, instructions=instructions, history=history
            ),
            transport={"type": "webrtc", "sdp": offer_sdp},
        )
    except openai.BadRequestError as exc:
        if _error_param(exc) == "transport.sdp":
            raise OfferRefused("OpenAI could not negotiate this SDP offer.") from exc
        raise upstream_error_from(exc) from exc
    except openai.APIError as exc:
        raise upstream_error_from(exc) from exc
    return LiveStarted(
        session_id=created.session.id,
        answer_sdp=created.transport.sdp,
        expires_at=started_at + dt.timedelta(seconds=settings.LIVE_SESSION_MAX_S),
    )


def _error_param(exc: openai.APIStatusError) -> object:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return error.get("param")
    return None


def live_sideband_url(session_id: str) -> str:
    """wss://api.openai.com/v1/live/sessions/{id}/attach (ws:// for a plain-http upstream)."""
    parts = urlsplit(settings.OPENAI_BASE_URL)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + f"/live/sessions/{quote(session_id, safe='')}/attach"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def live_sideband_headers() -> list[str]:
    """A Live sideband always authenticates with the project key (there are no secrets)."""
    return [f"Authorization: Bearer {settings.UPSTREAM_API_KEY}"]


def live_session_hangup(*, session_id: str) -> bool:
    """End the Live session upstream (project key), as upstream.call_hangup does a Realtime
    call: True hung up now, False the upstream no longer knows it. Raises UpstreamError when
    trying again may help (timeout, unreachable, 429, 5xx)."""
    return hangup_outcome(
        lambda: openai_client().live.sessions.hangup(session_id), f"live session {session_id}"
    )


def live_session_hangup_quietly(session_id: str) -> None:
    """End an upstream Live session this server no longer records; failures are logged only
    (the session ends on its own when the browser goes, or at its expiry)."""
    try:
        openai_client().live.sessions.hangup(session_id)
    except openai.APIError as exc:
        logger.warning("hangup of live session failed: %s", type(exc).__name__)
