"""The extraction task: idempotent, retries what may pass, fails the run on the rest; and the
new version is pushed on the session's live socket."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from extraction.models import ExtractionRun, Profile
from extraction.services import extraction_request
from extraction.tasks import MAX_RETRIES, profile_extract, retry_countdown
from sessions_app.push import session_group
from tests.extraction.conftest import conversation_write

pytestmark = pytest.mark.django_db

INTRO = [("user", "My name is Ada."), ("assistant", 'You said: "My name is Ada.".')]


def _run(session) -> ExtractionRun:
    outcome = extraction_request(session=session)
    assert outcome.run is not None
    return outcome.run


def test_running_the_task_twice_makes_one_version(upstream, session):
    conversation_write(session, INTRO)
    run = _run(session)

    profile_extract.apply(args=[str(run.public_id)])
    profile_extract.apply(args=[str(run.public_id)])

    run.refresh_from_db()
    assert run.status == ExtractionRun.Status.SUCCEEDED
    assert run.attempts == 1
    assert list(Profile.objects.filter(session=session).values_list("version", flat=True)) == [1]


def test_a_vanished_run_is_ignored(upstream, session):
    result = profile_extract.apply(args=[str(uuid.uuid4())])

    assert result.successful()
    assert not Profile.objects.exists()


def test_a_5xx_is_retried_and_then_succeeds(upstream, session):
    conversation_write(session, INTRO)
    run = _run(session)
    upstream.control(
        "POST", "/_emulator/faults", {"endpoint": "responses", "status": 502, "times": 2}
    )

    profile_extract.apply(args=[str(run.public_id)])

    run.refresh_from_db()
    assert run.status == ExtractionRun.Status.SUCCEEDED
    assert run.attempts == 3
    assert Profile.objects.get(session=session).data["name"]["value"] == "Ada"


def test_an_upstream_that_stays_down_fails_the_run_and_stores_nothing(upstream, session):
    conversation_write(session, INTRO)
    run = _run(session)
    upstream.control(
        "POST",
        "/_emulator/faults",
        {"endpoint": "responses", "status": 503, "times": MAX_RETRIES + 1},
    )

    profile_extract.apply(args=[str(run.public_id)])

    run.refresh_from_db()
    assert run.status == ExtractionRun.Status.FAILED
    assert run.error == "The extraction model is unavailable (InternalServerError)."
    assert run.attempts == MAX_RETRIES + 1
    assert not Profile.objects.exists()


def test_the_backoff_doubles_up_to_a_cap(settings):
    settings.EXTRACTION_RETRY_BASE_S = 1.0

    assert [retry_countdown(n) for n in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_new_version_is_pushed_on_the_sessions_live_socket(
    upstream, session, django_capture_on_commit_callbacks
):
    conversation_write(session, INTRO)
    run = _run(session)
    layer = get_channel_layer()
    assert layer is not None
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(session_group(str(session.public_id)), channel)

    with django_capture_on_commit_callbacks(execute=True):
        profile_extract.apply(args=[str(run.public_id)])

    message = async_to_sync(layer.receive)(channel)
    profile = Profile.objects.get(session=session)
    payload = message["payload"]
    assert message["type"] == "session.push"
    assert isinstance(payload.pop("seq"), int)
    assert isinstance(payload.pop("epoch"), int)
    assert payload == {
        "type": "profile",
        "version": 1,
        "profile": profile.data,
        "instructions": profile.instructions,
    }
