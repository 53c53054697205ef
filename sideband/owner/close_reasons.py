"""What the upstream's refusals and close frames mean for the call (`Call.EndReason`)."""

from __future__ import annotations

from django.conf import settings

from sessions_app.models import Call

# Handshake answers that mean the call can no longer be joined.
_AUTH_REFUSED = (401, 403)
_CALL_GONE = (404, 410)
# Close reasons the upstream gives when the call itself ended (not just our socket).
_CLOSE_REASON_ENDS = {
    "hangup": Call.EndReason.HANGUP,
    "call_not_found": Call.EndReason.HANGUP,
    "session_expired": Call.EndReason.SESSION_EXPIRED,
    "invalid_api_key": Call.EndReason.SECRET_EXPIRED,
}


def end_reason(reason: str) -> str:
    """A rejected credential is an expired client secret, unless we authenticate with the
    server's key (then it is our misconfiguration: upstream_error)."""
    if reason == Call.EndReason.SECRET_EXPIRED and settings.SIDEBAND_AUTH == "api_key":
        return Call.EndReason.UPSTREAM_ERROR
    return reason if reason in Call.EndReason.values else Call.EndReason.UPSTREAM_ERROR


def handshake_end_reason(status: int) -> str | None:
    """The end reason of a handshake refused with HTTP `status`; None: try again later."""
    if status in _CALL_GONE:
        return Call.EndReason.HANGUP
    if status in _AUTH_REFUSED:
        return end_reason(Call.EndReason.SECRET_EXPIRED)
    return None


def close_end_reason(close_reason: str) -> str | None:
    """The end reason of a close frame's reason text; None: only our socket dropped."""
    end = _CLOSE_REASON_ENDS.get(close_reason)
    return None if end is None else end_reason(end)
