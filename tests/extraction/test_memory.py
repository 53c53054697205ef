"""Memory that follows a user: a new session of the same user starts with the newest profile
of their earlier sessions and a recap of their latest turns, unless it opts out; refresh resets
the session, not the memory."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from extraction.instructions import marker_line
from extraction.models import Profile
from sessions_app.identity import subject_owner_hash
from sessions_app.models import Call, ClientSecret, Session
from tests.extraction.conftest import conversation_write
from tests.factories import OWNER_CREDENTIAL, profile_data
from tests.host_users import a_profile, a_session, user_client
from tests.sessions_app.conftest import _own_rate_limit_counters  # noqa: F401 - autouse fixture
from tests.sessions_app.helpers import post_json, session_create
from tests.sideband.helpers import attached, emulator_call, reply, turns, turns_settled, wait_for

pytestmark = pytest.mark.usefixtures("host_tokens")

SAID = ["Hello. My name is Ada.", "I live in Lyon.", "I want to learn Italian."]


def _converse(upstream: Any, session: Session, call_id: str, texts: list[str], before: int = 0):
    for n, text in enumerate(texts, 1):
        upstream.control("POST", f"/_emulator/calls/{call_id}/user-text", {"text": text})
        wait_for(turns_settled(session, before + 2 * n), timeout=10, what=f"turn {text!r}")


def _call(client: Client, peers: Any, upstream: Any, created: dict[str, Any]) -> Call:
    """The page's WebRTC call with the session's secret, registered and attached."""
    call_id = peers.connect(upstream.api_base, created["clientSecret"])
    registered = post_json(
        client, "/session/call", {"sessionId": created["sessionId"], "callId": call_id}
    )
    assert registered.status_code == 200, registered.content
    return attached(upstream, Call.objects.get(call_id=call_id))


@pytest.mark.django_db(transaction=True)
def test_a_second_session_of_the_same_user_starts_with_the_first_ones_profile(
    upstream, worker, peers
):
    # Monday: user 42 talks, and the profile is extracted.
    monday = user_client("42")
    first = session_create(monday)
    first_session = Session.objects.get(public_id=first["sessionId"])
    first_call = _call(monday, peers, upstream, first)
    _converse(upstream, first_session, first_call.call_id, SAID)
    extracted = post_json(monday, "/extract-profile", {"sessionId": first["sessionId"]})
    assert extracted.status_code == 200
    assert extracted.json()["profile"]["name"]["value"] == "Ada"

    # Tuesday, from another device: a new session of the same user.
    tuesday = user_client("42")
    second = session_create(tuesday)

    session = Session.objects.get(public_id=second["sessionId"])
    instructions = ClientSecret.objects.get(session=session).instructions
    assert marker_line(1) in instructions.splitlines()
    assert '{"field": "name", "value": "Ada"}' in instructions
    assert '{"role": "user", "text": "I want to learn Italian."}' in instructions  # the recap
    carried = Profile.objects.get(session=session)
    assert (carried.version, carried.data) == (1, extracted.json()["profile"])
    assert second["memory"]["carried"] is True
    assert second["memory"]["fromSessionId"] == first["sessionId"]
    assert second["memory"]["profile"] == extracted.json()["profile"]
    assert [t["text"] for t in second["memory"]["recapTurns"]][:1] == [SAID[0]]

    # Its WebRTC call starts upstream with those instructions; the assistant quotes the marker.
    call = _call(tuesday, peers, upstream, second)
    assert emulator_call(upstream, call.call_id)["instructions"] == instructions
    _converse(upstream, session, call.call_id, ["Do you remember me?"])
    assert turns(session) == [
        ("user", "Do you remember me?", "completed"),
        ("assistant", reply("Do you remember me?") + " (Marker: profile v1)", "completed"),
    ]


def _lives_in(city: str, item_id: str) -> dict[str, object]:
    return profile_data(location={"value": city, "evidence": [item_id]})


def _user_session(subject: str, **fields: Any) -> Session:
    session: Session = a_session(
        owner_hash=subject_owner_hash(subject), owner_subject=subject, **fields
    )
    return session


def _secret_instructions(created: dict[str, Any]) -> str:
    return ClientSecret.objects.get(session__public_id=created["sessionId"]).instructions


@pytest.mark.django_db
def test_a_user_who_opts_out_starts_from_nothing(upstream):
    earlier = _user_session("42")
    a_profile(session=earlier, version=1)

    created = session_create(user_client("42"), carryMemory=False)

    assert _secret_instructions(created) == django_settings.REALTIME_BASE_INSTRUCTIONS
    assert not Profile.objects.filter(session__public_id=created["sessionId"]).exists()
    assert "memory" not in created


@pytest.mark.django_db
def test_refresh_resets_the_session_not_the_memory(upstream):
    alice = user_client("42")
    first = session_create(alice)
    session = Session.objects.get(public_id=first["sessionId"])
    conversation_write(session, [("user", SAID[1]), ("assistant", "Lyon is lovely.")])
    a_profile(
        session=session,
        version=1,
        data=_lives_in("Lyon", "item_0001"),
    )

    refreshed = session_create(alice, reset=True)

    session.refresh_from_db()
    assert session.status == "closed"
    instructions = _secret_instructions(refreshed)
    assert '{"field": "location", "value": "Lyon"}' in instructions
    assert '{"role": "assistant", "text": "Lyon is lovely."}' in instructions
    assert refreshed["memory"]["carried"] is True
    # Asked to forget: the next refresh starts from the base instructions.
    forgotten = session_create(alice, reset=True, carryMemory=False)
    assert _secret_instructions(forgotten) == django_settings.REALTIME_BASE_INSTRUCTIONS


@pytest.mark.django_db
def test_the_newest_profile_of_any_session_is_carried(upstream):
    older = _user_session("42")
    a_profile(
        session=older,
        version=3,
        data=_lives_in("Paris", "item_0001"),
    )
    newer = _user_session("42")
    a_profile(
        session=newer,
        version=1,
        data=_lives_in("Lyon", "item_0002"),
    )

    created = session_create(user_client("42"))

    instructions = _secret_instructions(created)
    assert '{"field": "location", "value": "Lyon"}' in instructions
    assert "Paris" not in instructions
    assert created["memory"]["fromSessionId"] == str(newer.public_id)


@pytest.mark.django_db
def test_one_users_memory_never_reaches_another(upstream):
    a_profile(session=_user_session("42"), version=1)
    a_profile(session=a_session(), version=1)  # an anonymous browser's

    created = session_create(user_client("43"))

    assert _secret_instructions(created) == django_settings.REALTIME_BASE_INSTRUCTIONS
    assert created["memory"] == {
        "carried": False,
        "profile": None,
        "fromSessionId": None,
        "recapTurns": [],
    }


@pytest.mark.django_db
def test_an_anonymous_browser_carries_memory_only_when_it_asks(upstream):
    earlier = a_session()
    a_profile(session=earlier, version=1)
    browser = Client()
    browser.cookies[django_settings.CLIENT_COOKIE_NAME] = OWNER_CREDENTIAL

    plain = session_create(browser)
    remembered = session_create(browser, carryMemory=True)

    assert _secret_instructions(plain) == django_settings.REALTIME_BASE_INSTRUCTIONS
    assert "memory" not in plain
    assert marker_line(1) in _secret_instructions(remembered).splitlines()
    assert remembered["memory"]["fromSessionId"] == str(earlier.public_id)
