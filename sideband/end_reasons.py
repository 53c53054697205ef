"""Why a call ended: every rule that picks a `Call.EndReason`, in one place.

What the upstream says (a Realtime `error` code, a close frame, a refused handshake, Live's
`session.closed`) and what we notice (a newer call took over, the session closed, the session
cap passed, nobody there any more) each map to one reason here; the capture, the connection
owner and the services call these functions and decide nothing of their own. What an end then
does (the page told, the call hung up upstream) is `sideband.services.calls_end`'s.

Pure (no Django import), so the capture can use it: the values are Call.EndReason's
(tests/sideband/test_end_reasons.py holds the two equal).
"""

from __future__ import annotations

from typing import Final

SUPERSEDED: Final = "superseded"
HANGUP: Final = "hangup"
SESSION_EXPIRED: Final = "session_expired"
SECRET_EXPIRED: Final = "secret_expired"  # noqa: S105 - a reason, not a secret
SESSION_CLOSED: Final = "session_closed"
UPSTREAM_ERROR: Final = "upstream_error"
ABANDONED: Final = "abandoned"
END_REASONS: Final = frozenset(
    {SUPERSEDED, HANGUP, SESSION_EXPIRED, SECRET_EXPIRED, SESSION_CLOSED, UPSTREAM_ERROR, ABANDONED}
)

# Ends WE decide while the call may still run upstream: the call is hung up there too, so it
# stops running (and billing).
ENDED_HERE: Final = frozenset({SUPERSEDED, ABANDONED, SESSION_CLOSED})

# Realtime `error` codes after which the call is over. With client-secret auth a rejected
# credential mid-call means the secret expired.
_REALTIME_ERRORS: Final = {
    "session_expired": SESSION_EXPIRED,
    "invalid_api_key": SECRET_EXPIRED,
}
# Realtime close-frame reasons that mean the call itself ended (not just our socket).
_REALTIME_CLOSES: Final = {
    "hangup": HANGUP,
    "call_not_found": HANGUP,
    "session_expired": SESSION_EXPIRED,
    "invalid_api_key": SECRET_EXPIRED,
}
# Handshake answers that mean the call can no longer be joined.
_AUTH_REFUSED: Final = (401, 403)
_CALL_GONE: Final = (404, 410)
# Live `session.closed` reasons; any other closes the session.
_LIVE_CLOSES: Final = {
    "close_requested": SESSION_CLOSED,
    "expired": SESSION_EXPIRED,
    "content": SESSION_CLOSED,
    "remote_hangup": HANGUP,
    "connection_lost": UPSTREAM_ERROR,
}


def realtime_error_end(code: object) -> str | None:
    """The end of a Realtime `error` event with `code` (as the capture reports it, before
    `upstream_end`); None: the call goes on."""
    return _REALTIME_ERRORS.get(code) if isinstance(code, str) else None


def live_closed_end(reason: str) -> str:
    """The end of a Live `session.closed` with `reason` (before `upstream_end`)."""
    return _LIVE_CLOSES.get(reason, SESSION_CLOSED)


def upstream_end(reason: str, *, server_key: bool) -> str:
    """The end to record for a reason the upstream gave. A rejected credential is an expired
    client secret, unless we authenticate with the server's key (`server_key`): then it is
    our misconfiguration, upstream_error; so is a reason this server does not know."""
    if reason == SECRET_EXPIRED and server_key:
        return UPSTREAM_ERROR
    return reason if reason in END_REASONS else UPSTREAM_ERROR


def handshake_end(status: int, *, server_key: bool) -> str | None:
    """The end of a sideband handshake refused with HTTP `status`; None: try again later."""
    if status in _CALL_GONE:
        return HANGUP
    if status in _AUTH_REFUSED:
        return upstream_end(SECRET_EXPIRED, server_key=server_key)
    return None


def close_frame_end(close_reason: str, *, server_key: bool) -> str | None:
    """The end of a close frame's reason text; None: only our socket dropped."""
    end = _REALTIME_CLOSES.get(close_reason)
    return None if end is None else upstream_end(end, server_key=server_key)


def call_gone_end(*, superseded: bool, session_active: bool, past_cap: bool = False) -> str | None:
    """Why a live call can no longer be held: a newer call of its session took over, its
    session was closed, or it ran past the session cap; None: it still can be."""
    if superseded:
        return SUPERSEDED
    if not session_active:
        return SESSION_CLOSED
    if past_cap:
        return SESSION_EXPIRED
    return None
