"""POST /session/call: generation bump, supersede, idempotency, conflicts, dispatch."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from sessions_app import services
from sessions_app.calls import call_register
from sessions_app.models import Call, Session
from tests.factories import ClientSecretFactory, SessionFactory
from tests.sessions_app.helpers import post_json
from tests.unchanged import nothing_changes

pytestmark = pytest.mark.django_db

CALL = "rtc_u1_9c6574da8b8a41a18da9308f4ad974ce"
OTHER_CALL = "rtc_0123456789abcdef0123456789abcdef"


def _register(client: Client, session: Session, call_id: str) -> Any:
    return post_json(
        client, "/session/call", {"sessionId": str(session.public_id), "callId": call_id}
    )


def test_register_records_the_newest_generation_and_dispatches_the_sideband(
    owner: Client, published: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    session = SessionFactory.create()
    ClientSecretFactory.create(session=session)
    newest = ClientSecretFactory.create(session=session)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _register(owner, session, CALL)

    assert response.status_code == 200
    assert response.json() == {"sessionId": str(session.public_id), "callId": CALL, "generation": 1}
    call = Call.objects.get()
    assert (call.call_id, call.session, call.generation) == (CALL, session, 1)
    assert call.secret == newest
    assert call.ended_at is None
    session.refresh_from_db()
    assert session.current_generation == 1
    assert len(callbacks) == 1
    assert published == [
        {"task": "sideband.tasks.call_own", "args": [CALL, 1], "queue": "sideband"}
    ]


def test_registering_the_same_call_twice_is_idempotent(
    owner: Client, published: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    session = SessionFactory.create()
    with django_capture_on_commit_callbacks(execute=True):
        first = _register(owner, session, CALL)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = _register(owner, session, CALL)

    assert second.status_code == 200
    assert second.json() == first.json()
    assert Call.objects.count() == 1
    session.refresh_from_db()
    assert session.current_generation == 1
    assert callbacks == []
    assert len(published) == 1


def test_a_new_call_supersedes_the_live_one(owner: Client) -> None:
    session = SessionFactory.create()
    _register(owner, session, CALL)

    response = _register(owner, session, OTHER_CALL)

    assert response.json()["generation"] == 2
    old, new = Call.objects.order_by("generation")
    assert (old.call_id, old.end_reason) == (CALL, Call.EndReason.SUPERSEDED)
    assert old.ended_at is not None
    assert (new.call_id, new.generation, new.ended_at, new.end_reason) == (OTHER_CALL, 2, None, "")
    session.refresh_from_db()
    assert session.current_generation == 2


def test_a_call_bound_to_another_session_is_a_conflict_and_changes_nothing(owner: Client) -> None:
    first = SessionFactory.create()
    second = SessionFactory.create()
    _register(owner, first, CALL)

    with nothing_changes():
        response = _register(owner, second, CALL)

    assert response.status_code == 409
    assert response.json()["code"] == "call_conflict"


def test_a_closed_session_takes_no_call(owner: Client) -> None:
    session = SessionFactory.create()
    services._session_close_locked(session=session, reason="refreshed")

    with nothing_changes():
        response = _register(owner, session, CALL)

    assert response.status_code == 409
    assert response.json()["code"] == "session_closed"


def test_another_client_gets_404_and_nothing_changes(stranger: Client, browser: Client) -> None:
    session = SessionFactory.create()

    with nothing_changes():
        assert _register(stranger, session, CALL).status_code == 404
        assert _register(browser, session, CALL).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"callId": CALL}, "sessionId"),
        ({"sessionId": "not-a-uuid", "callId": CALL}, "sessionId"),
        ({"sessionId": 12, "callId": CALL}, "sessionId"),
        ({"sessionId": "SESSION"}, "callId"),
        ({"sessionId": "SESSION", "callId": "call_123"}, "callId"),
        ({"sessionId": "SESSION", "callId": "rtc_"}, "callId"),
        ({"sessionId": "SESSION", "callId": "rtc_abc def"}, "callId"),
        ({"sessionId": "SESSION", "callId": "rtc_" + "a" * 61}, "callId"),
        ({"sessionId": "SESSION", "callId": ["rtc_abc"]}, "callId"),
    ],
)
def test_register_rejects_bad_input_naming_the_field(
    owner: Client, body: dict[str, Any], field: str
) -> None:
    session = SessionFactory.create()
    body = {k: (str(session.public_id) if v == "SESSION" else v) for k, v in body.items()}

    with nothing_changes():
        response = post_json(owner, "/session/call", body)

    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_get_distinct_generations_and_one_live_call() -> None:
    session = SessionFactory.create()
    call_ids = [f"rtc_concurrent{i}" for i in range(6)] + ["rtc_concurrent0"] * 2
    barrier = threading.Barrier(len(call_ids))
    errors: list[BaseException] = []

    def register(call_id: str) -> None:
        try:
            barrier.wait(timeout=10)
            call_register(session=session, call_id=call_id)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(c,)) for c in call_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    calls = list(Call.objects.filter(session=session).order_by("generation"))
    assert sorted(c.call_id for c in calls) == sorted(set(call_ids))
    assert [c.generation for c in calls] == [1, 2, 3, 4, 5, 6]
    assert [c.call_id for c in calls if c.ended_at is None] == [calls[-1].call_id]
    session.refresh_from_db()
    assert session.current_generation == 6
