"""One interface over OpenAI's two voice APIs, for the services: start a session upstream.

- Realtime (sessions_app/upstream.py): the server mints a client secret; the browser makes
  its WebRTC call with OpenAI and registers the call id afterwards (`POST /session/call`).
  Earlier turns reach a renewed call through the sideband (extraction.seeding).
- Live (sessions_app/upstream_live.py): the browser's SDP offer comes through the server,
  which creates the session and gets the answer and the session id at once: the call is
  registered in the same transaction and its sideband dispatched on commit. Earlier turns
  reach a renewed session as its `input`.

`Started` says which: a secret for the browser, or a call id and an SDP answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sessions_app import upstream, upstream_live
from sessions_app.models import Session


class OfferMismatch(Exception):
    """An SDP offer was given to an API that takes none, or none to one that needs it, or
    the upstream could not negotiate it (a 400 naming `sdp`)."""


@dataclass(frozen=True)
class Started:
    expires_at: dt.datetime
    # Realtime: the client secret minted for the browser.
    secret: upstream.MintedSecret | None = None
    # Live: the upstream session (our call id) and the SDP answer for the browser.
    call_id: str | None = None
    answer_sdp: str | None = None


def voice_start(
    *,
    api: str,
    model: str,
    voice: str,
    transcription: bool,
    instructions: str,
    history: list[tuple[str, str]],
    offer_sdp: str | None,
    ttl_seconds: int,
) -> Started:
    """Start a session upstream on `api`. Raises OfferMismatch, upstream.UpstreamError."""
    if api == Session.Api.LIVE:
        if offer_sdp is None:
            raise OfferMismatch("A Live session needs the browser's SDP offer.")
        try:
            started = upstream_live.live_session_create(
                model=model,
                voice=voice,
                instructions=instructions,
                history=history,
                offer_sdp=offer_sdp,
            )
        except upstream_live.OfferRefused as exc:
            raise OfferMismatch(str(exc)) from exc
        return Started(
            expires_at=started.expires_at, call_id=started.session_id, answer_sdp=started.answer_sdp
        )
    if offer_sdp is not None:
        raise OfferMismatch("A Realtime session takes no SDP offer: the browser calls OpenAI.")
    minted = upstream.client_secret_mint(
        model=model,
        voice=voice,
        transcription=transcription,
        instructions=instructions,
        ttl_seconds=ttl_seconds,
    )
    return Started(expires_at=minted.expires_at, secret=minted)


def voice_hangup(*, api: str, call_id: str) -> bool:
    """Hang up a call (Realtime) or session (Live) upstream; False when already gone.
    Raises upstream.UpstreamError when trying again may help."""
    if api == Session.Api.LIVE:
        return upstream_live.live_session_hangup(session_id=call_id)
    return upstream.call_hangup(call_id=call_id)
