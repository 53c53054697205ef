"""Why a call ended (sideband/end_reasons.py): one rule per thing the upstream says or we notice."""

from __future__ import annotations

import pytest

from sessions_app.models import Call
from sideband import end_reasons


def test_the_reasons_are_the_models_end_reasons() -> None:
    assert set(Call.EndReason.values) == end_reasons.END_REASONS
    assert end_reasons.ENDED_HERE <= end_reasons.END_REASONS


@pytest.mark.parametrize(
    ("status", "client_secret", "server_key"),
    [
        (404, "hangup", "hangup"),
        (410, "hangup", "hangup"),
        (401, "secret_expired", "upstream_error"),
        (403, "secret_expired", "upstream_error"),
        (500, None, None),
        (429, None, None),
    ],
)
def test_a_refused_handshake_ends_the_call_or_is_tried_again(
    status: int, client_secret: str | None, server_key: str | None
) -> None:
    assert end_reasons.handshake_end(status, server_key=False) == client_secret
    assert end_reasons.handshake_end(status, server_key=True) == server_key


@pytest.mark.parametrize(
    ("close_reason", "client_secret", "server_key"),
    [
        ("hangup", "hangup", "hangup"),
        ("call_not_found", "hangup", "hangup"),
        ("session_expired", "session_expired", "session_expired"),
        ("invalid_api_key", "secret_expired", "upstream_error"),
        ("going away", None, None),
        ("", None, None),
    ],
)
def test_a_close_frame_ends_the_call_only_when_the_call_itself_ended(
    close_reason: str, client_secret: str | None, server_key: str | None
) -> None:
    assert end_reasons.close_frame_end(close_reason, server_key=False) == client_secret
    assert end_reasons.close_frame_end(close_reason, server_key=True) == server_key


def test_a_reason_the_upstream_gives_is_recorded_as_one_of_ours() -> None:
    assert end_reasons.upstream_end("session_expired", server_key=False) == "session_expired"
    assert end_reasons.upstream_end("secret_expired", server_key=False) == "secret_expired"
    assert end_reasons.upstream_end("secret_expired", server_key=True) == "upstream_error"
    assert end_reasons.upstream_end("no_such_reason", server_key=False) == "upstream_error"


def test_only_terminal_realtime_errors_end_the_call() -> None:
    assert end_reasons.realtime_error_end("session_expired") == "session_expired"
    assert end_reasons.realtime_error_end("invalid_api_key") == "secret_expired"
    assert end_reasons.realtime_error_end("call_not_found") is None
    assert end_reasons.realtime_error_end(None) is None


def test_a_live_close_for_an_unknown_reason_closes_the_session() -> None:
    assert end_reasons.live_closed_end("remote_hangup") == "hangup"
    assert end_reasons.live_closed_end("something_new") == "session_closed"


@pytest.mark.parametrize(
    ("superseded", "session_active", "past_cap", "end"),
    [
        (True, False, True, "superseded"),
        (False, False, True, "session_closed"),
        (False, True, True, "session_expired"),
        (False, True, False, None),
    ],
)
def test_a_call_that_can_no_longer_be_held_ends_for_the_first_reason_that_holds(
    superseded: bool, session_active: bool, past_cap: bool, end: str | None
) -> None:
    assert (
        end_reasons.call_gone_end(
            superseded=superseded, session_active=session_active, past_cap=past_cap
        )
        == end
    )
