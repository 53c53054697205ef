"""The upstream client: everything that knows the Realtime API's outgoing side.

URLs, the session config sent when minting a client secret, the sideband's URL and headers,
and the client events the server sends on the sideband. What comes back on the sideband is
the capture's business (sideband/capture/). Keeping the wire protocol here means a second
API (OpenAI's Live API) is one more module, not a change everywhere.

The upstream is OpenAI, or the bundled emulator when no OPENAI_API_KEY is set; the code is
the same, only OPENAI_BASE_URL and the key differ.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import openai
from django.conf import settings
from openai.types.responses import EasyInputMessageParam

logger = logging.getLogger(__name__)


class UpstreamError(Exception):
    """The upstream failed; `status` is what our API answers (502, 503 or 504)."""

    def __init__(self, message: str, *, status: int, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class MintedSecret:
    value: str
    expires_at: dt.datetime
    upstream_session_id: str


def openai_client(*, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=settings.UPSTREAM_API_KEY,
        base_url=settings.OPENAI_BASE_URL,
        timeout=settings.UPSTREAM_TIMEOUT_S,
        max_retries=max_retries,
    )


def realtime_session_config(
    *, model: str, voice: str, transcription: bool, instructions: str
) -> dict[str, Any]:
    """The `session` object of POST /v1/realtime/client_secrets (GA shape)."""
    audio_input: dict[str, Any] = {"turn_detection": {"type": "server_vad"}}
    if transcription:
        audio_input["transcription"] = {"model": settings.REALTIME_TRANSCRIPTION_MODEL}
    return {
        "type": "realtime",
        "model": model,
        "instructions": instructions,
        "audio": {"input": audio_input, "output": {"voice": voice}},
    }


def client_secret_mint(
    *, model: str, voice: str, transcription: bool, instructions: str, ttl_seconds: int
) -> MintedSecret:
    """Mint an ephemeral client secret for a Realtime session with this config."""
    session = realtime_session_config(
        model=model, voice=voice, transcription=transcription, instructions=instructions
    )
    try:
        response = openai_client().realtime.client_secrets.create(
            expires_after={"anchor": "created_at", "seconds": ttl_seconds},
            session=session,  # type: ignore[arg-type]
        )
    except openai.APIError as exc:
        raise upstream_error_from(exc) from exc
    return MintedSecret(
        value=response.value,
        expires_at=dt.datetime.fromtimestamp(response.expires_at, tz=dt.UTC),
        upstream_session_id=getattr(response.session, "id", None) or "",
    )


def upstream_error_from(exc: openai.APIError) -> UpstreamError:
    """Map an SDK error to what our API answers: never the upstream's own status."""
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamError("The Realtime API did not answer in time.", status=504)
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamError("The Realtime API cannot be reached.", status=503)
    if isinstance(exc, openai.RateLimitError):
        retry_after = _retry_after(exc.response.headers.get("retry-after"))
        return UpstreamError(
            "The Realtime API is rate-limiting this server; try again shortly.",
            status=503,
            retry_after=retry_after or 5,
        )
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return UpstreamError("The Realtime API failed; try again shortly.", status=502)
    # 4xx other than 429: our request or our key is wrong; the caller cannot fix it.
    logger.error("Upstream rejected a request: %s", type(exc).__name__)
    return UpstreamError("The Realtime API rejected the server's request.", status=502)


def _retry_after(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return max(1, int(float(raw)))
    except ValueError:
        return None


# --- The sideband -------------------------------------------------------------------------


def sideband_url(call_id: str) -> str:
    """wss://api.openai.com/v1/realtime?call_id=rtc_... (ws:// for a plain-http upstream)."""
    parts = urlsplit(settings.OPENAI_BASE_URL)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + "/realtime"
    return urlunsplit((scheme, parts.netloc, path, urlencode({"call_id": call_id}), ""))


def sideband_headers(*, client_secret: str) -> list[str]:
    """Bearer: the call's client secret (the seed's flow) or the server key (OpenAI's guide)."""
    token = settings.UPSTREAM_API_KEY if settings.SIDEBAND_AUTH == "api_key" else client_secret
    return [f"Authorization: Bearer {token}"]


def item_retrieve_event(item_id: str, *, event_id: str | None = None) -> dict[str, Any]:
    """`event_id`: the client event id, which the upstream echoes in an `error` about it."""
    event: dict[str, Any] = {"type": "conversation.item.retrieve", "item_id": item_id}
    if event_id is not None:
        event["event_id"] = event_id
    return event


def call_hangup(*, call_id: str) -> bool:
    """End the call upstream (`POST /v1/realtime/calls/{call_id}/hangup`, with the server's
    key). True: hung up now; False: the upstream no longer knows the call (ended already).

    Raises UpstreamError when trying again may help (timeout, unreachable, 429, 5xx); any
    other refusal is logged and reported as done, since repeating it cannot succeed.
    """
    return hangup_outcome(lambda: openai_client().realtime.calls.hangup(call_id), f"call {call_id}")


def hangup_outcome(hangup: Callable[[], object], what: str) -> bool:
    """Run an upstream hangup (either API's): True hung up now, False the upstream no longer
    knows it or refused for good (logged); UpstreamError when trying again may help."""
    try:
        hangup()
    except openai.NotFoundError:
        return False
    except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
        raise upstream_error_from(exc) from exc
    except openai.APIStatusError as exc:
        logger.error("Upstream refused the hangup of %s: %s", what, exc.status_code)
        return False
    return True


def session_update_event(*, instructions: str) -> dict[str, Any]:
    return {"type": "session.update", "session": {"type": "realtime", "instructions": instructions}}


def message_item_create_event(
    *, role: str, text: str, item_id: str | None = None, previous_item_id: str | None = None
) -> dict[str, Any]:
    """Seed a conversation item: user `input_text` or assistant `output_text`."""
    content_type = "input_text" if role == "user" else "output_text"
    item: dict[str, Any] = {
        "type": "message",
        "role": role,
        "content": [{"type": content_type, "text": text}],
    }
    if item_id:
        item["id"] = item_id
    event: dict[str, Any] = {"type": "conversation.item.create", "item": item}
    if previous_item_id is not None:
        event["previous_item_id"] = previous_item_id
    return event


# --- The Responses API (profile extraction) -----------------------------------------------

InputRole = Literal["developer", "user"]


def structured_response_text(
    *,
    model: str,
    instructions: str,
    messages: list[tuple[InputRole, str]],
    schema_name: str,
    schema: dict[str, Any],
) -> str:
    """POST /v1/responses with a strict json_schema structured output; the output's text.

    `messages` are (role, text) input messages, role "developer" or "user".

    SDK errors propagate unmapped (openai.RateLimitError, InternalServerError,
    APIConnectionError...): the extraction task decides what to retry. A refusal or an
    incomplete output comes back as text that fails the caller's validation.
    """
    response = openai_client().responses.create(
        model=model,
        instructions=instructions,
        input=[EasyInputMessageParam(role=role, content=text) for role, text in messages],
        text={
            "format": {"type": "json_schema", "name": schema_name, "schema": schema, "strict": True}
        },
        store=False,
    )
    return response.output_text
