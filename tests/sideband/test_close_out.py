"""No orphan: abandoned calls end, spoken turns that never get a transcript are closed out,
idle sessions close; and the sideband authenticates with the server's API key.

These tests run their own worker processes with short bounds (SIDEBAND_IDLE_S,
SIDEBAND_TRANSCRIPT_WAIT_S) and API-key sideband auth; the suite's shared pool is stopped while
they run (a later test starts it again), so no call of theirs is held by a worker with other
bounds.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from sessions_app.models import Call, Session, TranscriptTurn
from sideband.services import turns_close_out
from sideband.tasks import sessions_close_idle_task
from tests.factories import CallFactory, TranscriptTurnFactory
from tests.sideband.helpers import (
    Worker,
    Workers,
    attached,
    call_start,
    emulator_call,
    ended,
    page_socket,
    reply,
    session_new,
    sidebands,
    synthetic_call,
    turns,
    turns_settled,
    user_audio,
    user_text,
    wait_for,
    workers_running,
)

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsWrapper

    from realtime_emulator.testing import EmulatorServer

pytestmark = pytest.mark.django_db(transaction=True)

IDLE_S = 2.0
TRANSCRIPT_WAIT_S = 0.5


@pytest.fixture(scope="module")
def brisk_workers(
    workers: Workers, emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    workers.stop_all()
    with workers_running(
        emulator_server=emulator_server,
        log_dir=tmp_path_factory.mktemp("brisk-workers"),
        SIDEBAND_IDLE_S=str(IDLE_S),
        SIDEBAND_TRANSCRIPT_WAIT_S=str(TRANSCRIPT_WAIT_S),
        SIDEBAND_AUTH="api_key",
        SESSION_IDLE_CLOSE_S="3600",
    ) as pool:
        yield pool


@pytest.fixture
def brisk(brisk_workers: Workers, upstream: EmulatorServer) -> Worker:
    return brisk_workers.any()


def test_an_abandoned_call_is_hung_up_and_ended_within_its_bound(
    brisk: Worker, upstream: EmulatorServer
) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))
    started = time.monotonic()

    # No page follows the session and the upstream stays silent (the browser vanished).
    call = ended(call, timeout=IDLE_S + 10)

    assert time.monotonic() - started < IDLE_S + 3
    assert call.end_reason == Call.EndReason.ABANDONED
    assert call.lease_owner == ""
    wait_for(
        lambda: emulator_call(upstream, call.call_id)["status"] == "ended",
        what="the abandoned call to be hung up upstream",
    )
    assert sidebands(upstream, call.call_id) == 0


def test_a_page_on_the_live_socket_keeps_a_quiet_call(
    brisk: Worker, upstream: EmulatorServer
) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))

    async def follow(seconds: float) -> None:
        page = page_socket(session)
        assert (await page.connect())[0] is True
        await page.receive_json_from(timeout=5)  # the snapshot
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await page.send_json_to({"type": "presence"})
            assert await page.receive_nothing(timeout=IDLE_S / 4)
        await page.disconnect()

    async_to_sync(follow)(IDLE_S * 2)

    assert Call.objects.get(pk=call.pk).ended_at is None
    # Once the page is gone too, the call is abandoned.
    assert ended(call, timeout=IDLE_S + 10).end_reason == Call.EndReason.ABANDONED


def test_a_never_transcribed_audio_turn_is_closed_out(
    brisk: Worker, upstream: EmulatorServer
) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))

    user_audio(upstream, call, "words nobody transcribed", transcription="never")

    assert wait_for(turns_settled(session, 2), timeout=10) == [
        ("user", None, "untranscribed"),
        ("assistant", "I heard you.", "completed"),
    ]
    user = TranscriptTurn.objects.get(session=session, role="user")
    assert (
        user.status_reason == f"not transcribed: no transcript within {2 * TRANSCRIPT_WAIT_S:g} s"
    )


def test_the_api_key_sideband_outlives_the_client_secret(
    brisk: Worker, upstream: EmulatorServer
) -> None:
    session = session_new()
    synthetic = synthetic_call(upstream)
    call = attached(upstream, call_start(session, synthetic))

    # With client-secret auth this ends the call (test_expired_secret_ends_the_call).
    upstream.control("POST", "/_emulator/secrets/expire", {"value": synthetic["client_secret"]})
    upstream.control("POST", f"/_emulator/calls/{call.call_id}/drop-sidebands", {})
    wait_for(lambda: sidebands(upstream, call.call_id) == 1, what="the worker to reconnect")
    user_text(upstream, call, "still recorded")

    assert wait_for(turns_settled(session, 2)) == [
        ("user", "still recorded", "completed"),
        ("assistant", reply("still recorded"), "completed"),
    ]
    assert Call.objects.get(pk=call.pk).ended_at is None


def _aged(session: Session, seconds: float) -> None:
    """As if nothing had happened on the session for `seconds`."""
    then = timezone.now() - dt.timedelta(seconds=seconds)
    Session.objects.filter(pk=session.pk).update(updated_at=then)
    TranscriptTurn.objects.filter(session=session).update(updated_at=then)


def test_an_idle_session_is_closed_by_beat_and_keeps_its_transcript(
    brisk: Worker, settings: SettingsWrapper
) -> None:
    settings.SESSION_IDLE_CLOSE_S = 3600  # as the brisk workers have it
    idle = session_new()
    kept = cast(
        TranscriptTurn,
        TranscriptTurnFactory(session=idle, text="remember me", status="completed"),
    )
    _aged(idle, 3700)
    with_live_call = session_new()
    CallFactory(session=with_live_call)
    _aged(with_live_call, 3700)
    recent = session_new()

    sessions_close_idle_task.delay()

    wait_for(
        lambda: Session.objects.filter(pk=idle.pk, status=Session.Status.CLOSED).exists(),
        what="the idle session to close",
    )
    idle.refresh_from_db()
    assert (idle.close_reason, idle.closed_at is not None) == ("idle", True)
    assert list(TranscriptTurn.objects.filter(session=idle).values_list("pk", "text")) == [
        (kept.pk, "remember me")
    ]
    statuses = dict(Session.objects.values_list("pk", "status"))
    assert (statuses[with_live_call.pk], statuses[recent.pk]) == ("active", "active")
    # Twice is harmless.
    assert sessions_close_idle_task.run() == 0


def test_a_spoken_turn_of_an_ended_call_is_closed_out_by_beat(settings: Any) -> None:
    settings.SIDEBAND_TRANSCRIPT_WAIT_S = 1
    session = session_new()
    call = CallFactory(session=session, ended_at=timezone.now(), end_reason="hangup")
    waiting = cast(
        TranscriptTurn,
        TranscriptTurnFactory(session=session, call=call, text=None, status="in_progress"),
    )
    answered = cast(
        TranscriptTurn,
        TranscriptTurnFactory(session=session, call=call, role="assistant", status="in_progress"),
    )
    old = timezone.now() - dt.timedelta(seconds=10)
    TranscriptTurn.objects.filter(pk__in=[waiting.pk, answered.pk]).update(updated_at=old)

    first, second = turns_close_out(), turns_close_out()

    assert (first, second) == (1, 0)
    assert turns(session) == [
        (waiting.role, None, "untranscribed"),
        ("assistant", answered.text, "in_progress"),
    ]
