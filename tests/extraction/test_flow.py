"""The whole flow through the API, a real worker and the emulator: a conversation, its
profile, renew into a new WebRTC call that starts with the profile and the seeded turns, and
refresh with and without carryProfile."""

from __future__ import annotations

import json
from typing import Any

import pytest
import websocket
from django.conf import settings as django_settings

from extraction.models import Profile
from extraction.services import extraction_perform, extraction_request
from sessions_app import upstream as upstream_api
from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn
from sessions_app.seed_items import SEED_ITEM_PREFIX, seed_item_id
from tests.extraction.conftest import conversation_write, session_new
from tests.sideband.helpers import (
    attached,
    call_start,
    emulator_call,
    reply,
    synthetic_call,
    turns,
    turns_settled,
    wait_for,
)

SAID = ["Hello. My name is Ada.", "I live in Lyon.", "I want to learn Italian."]


def _post(client: Any, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, body, content_type="application/json")


def _converse(upstream: Any, session: Session, call_id: str, texts: list[str], before: int = 0):
    for n, text in enumerate(texts, 1):
        upstream.control("POST", f"/_emulator/calls/{call_id}/user-text", {"text": text})
        wait_for(turns_settled(session, before + 2 * n), timeout=10, what=f"turn {text!r}")


def _retrieve(call_id: str, api_key: str, item_ids: list[str]) -> list[dict[str, Any]]:
    """`conversation.item.retrieve` each id over a sideband of our own; the items, in order."""
    ws = websocket.create_connection(
        upstream_api.sideband_url(call_id), header=[f"Authorization: Bearer {api_key}"], timeout=10
    )
    try:
        for item_id in item_ids:
            ws.send(json.dumps(upstream_api.item_retrieve_event(item_id)))
        found: dict[str, dict[str, Any]] = {}
        while len(found) < len(item_ids):
            event = json.loads(ws.recv())
            assert event["type"] != "error", event
            if event["type"] == "conversation.item.retrieved":
                found[event["item"]["id"]] = event["item"]
        return [found[item_id] for item_id in item_ids]
    finally:
        ws.close()


@pytest.mark.django_db(transaction=True)
def test_a_conversation_then_renew_continues_with_the_profile_and_the_seeded_turns(
    upstream, worker, browser, peers
):
    # A conversation on the first call, captured by the real sideband worker.
    session = session_new()
    first = synthetic_call(upstream)
    attached(upstream, call_start(session, first))
    _converse(upstream, session, first["call_id"], SAID)
    spoken = list(TranscriptTurn.objects.filter(session=session).order_by("position"))
    users = [turn for turn in spoken if turn.role == "user"]

    # The profile: the name, the city and the goal, each with the turn that said it.
    extracted = _post(browser, "/extract-profile", {"sessionId": str(session.public_id)})
    assert extracted.status_code == 200
    profile = extracted.json()["profile"]
    assert profile["name"] == {"value": "Ada", "evidence": [users[0].item_id]}
    assert profile["location"] == {"value": "Lyon", "evidence": [users[1].item_id]}
    assert profile["goals"] == [{"value": "learn Italian", "evidence": [users[2].item_id]}]

    # Renew: the new secret is minted with instructions carrying the profile.
    renewed = _post(browser, "/session/renew", {"sessionId": str(session.public_id)})
    assert renewed.status_code == 200
    instructions = renewed.json()["instructions"]
    assert "Marker: profile v1" in instructions.splitlines()
    assert '{"field": "name", "value": "Ada"}' in instructions

    # The page's new WebRTC call with that secret starts with those instructions upstream.
    call_id = peers.connect(upstream.api_base, renewed.json()["clientSecret"])
    assert emulator_call(upstream, call_id)["instructions"] == instructions
    registered = _post(
        browser, "/session/call", {"sessionId": str(session.public_id), "callId": call_id}
    )
    assert registered.status_code == 200
    second = attached(upstream, Call.objects.get(call_id=call_id))
    assert second.generation == 2

    # The worker seeded the earlier turns: the new conversation holds their real words.
    seed_ids = [seed_item_id(turn.item_id) for turn in spoken]
    wait_for(
        lambda: {item["id"] for item in emulator_call(upstream, call_id)["items"]} >= set(seed_ids),
        timeout=10,
        what="the seeded items",
    )
    items = _retrieve(call_id, upstream.api_key, seed_ids)
    assert [
        (item["role"], item["content"][0]["type"], item["content"][0]["text"]) for item in items
    ] == [
        (
            turn.role,
            "input_text" if turn.role == "user" else "output_text",
            turn.text,
        )
        for turn in spoken
    ]

    # The next turn continues the same session, and the assistant quotes the marker.
    upstream.control(
        "POST", f"/_emulator/calls/{call_id}/user-text", {"text": "Do you remember me?"}
    )
    rows = wait_for(turns_settled(session, 8), timeout=10, what="the turn on the new call")
    assert rows is not None
    assert rows[6:] == [
        ("user", "Do you remember me?", "completed"),
        ("assistant", reply("Do you remember me?") + " (Marker: profile v1)", "completed"),
    ]
    assert rows[:6] == [(turn.role, turn.text, turn.status) for turn in spoken]
    assert not TranscriptTurn.objects.filter(item_id__startswith=SEED_ITEM_PREFIX).exists()
    assert turns(session) == rows


def _refresh(browser: Any, **extra: Any) -> Any:
    return _post(
        browser,
        "/session",
        {
            "model": django_settings.REALTIME_MODELS[0],
            "voice": django_settings.REALTIME_VOICES[0],
            "enableTranscription": True,
            "reset": True,
            **extra,
        },
    )


@pytest.fixture
def talked_session(upstream: Any, browser: Any) -> Session:
    """An open session of the browser with a conversation and its profile v1."""
    session = session_new()
    conversation_write(
        session,
        [("user", SAID[0]), ("assistant", reply(SAID[0])), ("user", SAID[1]), ("assistant", "Ok.")],
    )
    outcome = extraction_request(session=session)
    assert outcome.run is not None
    extraction_perform(run=outcome.run)
    assert Profile.objects.filter(session=session).count() == 1
    return session


@pytest.mark.django_db
def test_refresh_starts_over_with_nothing_carried(upstream, browser, talked_session):
    response = _refresh(browser)

    assert response.status_code == 201
    fresh = Session.objects.get(public_id=response.json()["sessionId"])
    assert fresh.replaces == talked_session
    assert not fresh.turns.exists()
    assert not Profile.objects.filter(session=fresh).exists()
    secret = ClientSecret.objects.get(session=fresh)
    assert secret.instructions == django_settings.REALTIME_BASE_INSTRUCTIONS


@pytest.mark.django_db
def test_refresh_with_carry_profile_carries_the_profile_only(upstream, browser, talked_session):
    old = Profile.objects.get(session=talked_session)

    response = _refresh(browser, carryProfile=True)

    assert response.status_code == 201
    fresh = Session.objects.get(public_id=response.json()["sessionId"])
    assert not fresh.turns.exists()
    carried = Profile.objects.get(session=fresh)
    assert (carried.version, carried.data, carried.turn_count) == (1, old.data, 0)
    secret = ClientSecret.objects.get(session=fresh)
    assert secret.instructions == carried.instructions
    assert "Marker: profile v1" in secret.instructions.splitlines()
    assert '{"field": "name", "value": "Ada"}' in secret.instructions
    assert "<<<RECAP" not in secret.instructions
    assert SAID[1] not in secret.instructions
