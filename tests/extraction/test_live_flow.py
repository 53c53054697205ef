"""The whole flow on OpenAI's Live API, through our API, a real worker and the emulator:
create with the page's SDP offer, talk (spoken and typed), the sideband capture, the profile,
renew into a new Live session seeded with `input`, and refresh.

The browser is an aiortc peer (tests.extraction.test_flow.Peers); speech is driven through
the emulator's control API (`user-speech`, the transcript as if heard), or through real audio
on the WebRTC track where a test says so.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from openai import OpenAI

from extraction.models import Profile
from realtime_emulator.browser_peer import BrowserPeer
from realtime_emulator.testing import EmulatorServer
from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn
from tests.peers import Peers
from tests.sideband.helpers import turns, wait_for
from tests.unchanged import nothing_changes

LIVE_MODEL = "gpt-live-1"


def offer(pool: Peers) -> tuple[BrowserPeer, str]:
    async def make() -> tuple[BrowserPeer, str]:
        peer = BrowserPeer()
        pool.open.append(peer)
        return peer, await peer.offer()

    return pool.run(make())


def answer(pool: Peers, peer: BrowserPeer, sdp: str) -> None:
    pool.run(peer.accept(sdp))


def typed(pool: Peers, peer: BrowserPeer, text: str) -> None:
    """What the page does with a typed line on Live: context on its data channel."""

    async def send() -> None:
        peer.send({"type": "session.commentary.append", "delegation_id": None, "content": text})

    pool.run(send())


def live_session(upstream: EmulatorServer, session_id: str) -> dict[str, Any]:
    found: dict[str, Any] = upstream.control("GET", f"/_emulator/live/sessions/{session_id}")
    return found


def live_attached(upstream: EmulatorServer, call_id: str) -> Call:
    """Wait until the worker holds the call's lease and its sideband is attached upstream."""
    wait_for(
        lambda: (
            live_session(upstream, call_id)["sidebands"] == 1
            and Call.objects.filter(call_id=call_id).exclude(lease_owner="").exists()
        ),
        timeout=10,
        what=f"sideband of {call_id}",
    )
    return Call.objects.get(call_id=call_id)


def speak(upstream: EmulatorServer, call_id: str, text: str) -> None:
    upstream.control("POST", f"/_emulator/live/sessions/{call_id}/user-speech", {"text": text})


def said(session: Session, count: int) -> list[tuple[str, str | None]]:
    """Waits for `count` turns and the last one's text to stop growing; (role, text)."""
    last: list[list[tuple[str, str | None]]] = []

    def check() -> list[tuple[str, str | None]] | None:
        rows = [(role, text) for role, text, _ in turns(session)]
        previous = last[0] if last else None
        last[:] = [rows]
        return rows if len(rows) == count and rows == previous else None

    rows = wait_for(check, timeout=15, what=f"{count} turns")
    assert rows is not None
    return rows


def post(client: Any, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, body, content_type="application/json")


def create(browser: Any, sdp: str, **extra: Any) -> Any:
    return post(
        browser,
        "/session",
        {"api": "live", "model": LIVE_MODEL, "voice": "marin", "sdp": sdp, **extra},
    )


def live_started(
    upstream: EmulatorServer, browser: Any, peers: Peers
) -> tuple[BrowserPeer, Session, str]:
    """A Live session created, its call answered and its sideband attached: (peer, session,
    call id)."""
    peer, sdp = offer(peers)
    created = create(browser, sdp).json()
    answer(peers, peer, created["sdp"])
    session = Session.objects.get(public_id=created["sessionId"])
    live_attached(upstream, created["callId"])
    return peer, session, created["callId"]


def hangup(upstream: EmulatorServer, call_id: str) -> None:
    client = OpenAI(base_url=upstream.api_base, api_key=upstream.api_key, max_retries=0)
    client.live.sessions.hangup(call_id)


def reply(text: str) -> str:
    return f'You said: "{text}".'


@pytest.mark.django_db(transaction=True)
def test_live_create_talk_extract_renew_with_history_then_refresh(
    upstream: EmulatorServer, worker: Any, browser: Any, peers: Peers
) -> None:
    # Create: the page's offer goes through our server; the answer and the call come back.
    peer, sdp = offer(peers)
    created = create(browser, sdp)
    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) == {"sessionId", "clientSecret", "expiresAt", "callId", "api", "sdp"}
    assert (body["api"], body["clientSecret"]) == ("live", None)
    assert body["callId"].startswith("live_u1_")
    answer(peers, peer, body["sdp"])
    session = Session.objects.get(public_id=body["sessionId"])
    assert (session.api, session.current_generation) == ("live", 1)
    assert not ClientSecret.objects.filter(session=session).exists()
    first = live_attached(upstream, body["callId"])
    assert first.generation == 1

    # Talk: a typed line (context for the model: Live reports no text for it, its answer is
    # a turn), then two spoken turns.
    typed(peers, peer, "Hi")
    said(session, 1)
    speak(upstream, first.call_id, "Hello. My name is Ada.")
    said(session, 3)
    speak(upstream, first.call_id, "I live in Lyon.")
    rows = said(session, 5)
    assert rows == [
        ("assistant", reply("Hi")),
        ("user", "Hello. My name is Ada."),
        ("assistant", reply("Hello. My name is Ada.")),
        ("user", "I live in Lyon."),
        ("assistant", reply("I live in Lyon.")),
    ]
    stored = list(TranscriptTurn.objects.filter(session=session).order_by("position"))
    assert [t.item_id.split("/")[0] for t in stored] == [first.call_id] * 5
    assert all(t.call_id == first.pk for t in stored)

    # Extraction reads the Live transcript like any other.
    extracted = post(browser, "/extract-profile", {"sessionId": str(session.public_id)})
    assert extracted.status_code == 200, extracted.content
    profile = extracted.json()["profile"]
    assert profile["name"] == {"value": "Ada", "evidence": [stored[1].item_id]}
    assert profile["location"] == {"value": "Lyon", "evidence": [stored[3].item_id]}

    # Renew: a new Live session with the profile's instructions and the real turns as input.
    peer2, sdp2 = offer(peers)
    renewed = post(browser, "/session/renew", {"sessionId": str(session.public_id), "sdp": sdp2})
    assert renewed.status_code == 200, renewed.content
    renewal = renewed.json()
    assert set(renewal) == {"clientSecret", "expiresAt", "instructions", "callId", "sdp"}
    assert renewal["clientSecret"] is None
    assert "Marker: profile v1" in renewal["instructions"].splitlines()
    answer(peers, peer2, renewal["sdp"])
    upstream_session = live_session(upstream, renewal["callId"])["session"]
    assert upstream_session["instructions"] == renewal["instructions"]
    assert [
        (m["role"], m["content"][0]["type"], m["content"][0]["text"])
        for m in upstream_session["input"]
    ] == [
        (role, "input_text" if role == "user" else "output_text", (text or "").strip())
        for role, text in rows
    ]
    second = live_attached(upstream, renewal["callId"])
    assert second.generation == 2
    first.refresh_from_db()
    assert first.end_reason == Call.EndReason.SUPERSEDED
    # ...and hung up upstream, on Live's own endpoint (sideband.tasks.call_hangup).
    wait_for(
        lambda: live_session(upstream, first.call_id)["status"] == "ended",
        timeout=15,
        what="the superseded Live session hung up",
    )
    assert live_session(upstream, first.call_id)["close_reason"] == "close_requested"
    # The first call's turns are complete now that it ended.
    assert set(TranscriptTurn.objects.filter(call=first).values_list("status", flat=True)) == {
        "completed"
    }

    # The new session quotes the seeded history, and its turns follow the earlier ones.
    speak(upstream, second.call_id, "Do you remember where I live?")
    after = said(session, 7)
    assert after[:5] == rows
    assert after[5:] == [
        ("user", "Do you remember where I live?"),
        ("assistant", 'You told me: "I live in Lyon.".'),
    ]

    # Hang up: the session closes upstream, and the capture completes the open turn.
    hangup(upstream, second.call_id)
    wait_for(
        lambda: TranscriptTurn.objects.filter(session=session, status="in_progress").count() == 0,
        timeout=10,
        what="the last turn completed",
    )

    # Refresh: a new Live session from scratch: base instructions, no input, no turns.
    peer3, sdp3 = offer(peers)
    refreshed = create(browser, sdp3, reset=True)
    assert refreshed.status_code == 201, refreshed.content
    fresh = Session.objects.get(public_id=refreshed.json()["sessionId"])
    assert fresh.replaces == session
    assert not fresh.turns.exists()
    assert not Profile.objects.filter(session=fresh).exists()
    clean = live_session(upstream, refreshed.json()["callId"])["session"]
    assert clean["instructions"] == django_settings.REALTIME_BASE_INSTRUCTIONS
    assert clean["input"] == []
    answer(peers, peer3, refreshed.json()["sdp"])


@pytest.mark.django_db(transaction=True)
def test_live_spoken_audio_on_the_webrtc_track_is_captured(
    upstream: EmulatorServer, worker: Any, browser: Any, peers: Peers
) -> None:
    peer, session, _ = live_started(upstream, browser, peers)

    peer.mic.burst(1.0)
    rows = said(session, 2)

    assert rows == [
        ("user", "Spoken turn 1, about 1 second."),
        ("assistant", reply("Spoken turn 1, about 1 second.")),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"api": "live", "model": LIVE_MODEL, "voice": "marin"}, "sdp"),
        ({"api": "live", "model": "gpt-realtime", "voice": "marin", "sdp": "v=0\r\nm=x"}, "model"),
        ({"api": "live", "model": LIVE_MODEL, "voice": "marin", "sdp": "hello"}, "sdp"),
        # Well formed, but nothing the upstream can negotiate: its refusal names the offer.
        ({"api": "live", "model": LIVE_MODEL, "voice": "marin", "sdp": "v=0\nm="}, "sdp"),
        ({"api": "realtime", "model": "gpt-realtime", "voice": "marin", "sdp": "v=0\nm=x"}, "sdp"),
        ({"api": "sip", "model": "gpt-realtime", "voice": "marin"}, "api"),
    ],
)
def test_create_refuses_a_request_that_does_not_fit_its_api(
    upstream: EmulatorServer, browser: Any, body: dict[str, Any], field: str
) -> None:
    # Some of these reach the upstream, which refuses the offer: no tripwire on it here.
    with nothing_changes():
        response = post(browser, "/session", body)

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.django_db
def test_voice_api_setting_chooses_the_default(
    upstream: EmulatorServer, browser: Any, settings: Any
) -> None:
    settings.VOICE_API = "live"

    with nothing_changes(upstream):
        response = post(browser, "/session", {"model": LIVE_MODEL, "voice": "marin"})

    assert response.status_code == 400
    assert response.json() == {"sdp": ["Required for a Live session."]}


@pytest.mark.django_db
def test_renew_of_a_live_session_needs_an_offer(
    upstream: EmulatorServer, browser: Any, peers: Peers
) -> None:
    _, sdp = offer(peers)
    created = create(browser, sdp).json()

    with nothing_changes(upstream):
        response = post(browser, "/session/renew", {"sessionId": created["sessionId"]})

    assert response.status_code == 400
    assert response.json() == {"sdp": ["Required for a Live session."]}


@pytest.mark.django_db(transaction=True)
def test_a_dropped_live_sideband_reconnects_and_captures_on_without_duplicates(
    upstream: EmulatorServer, worker: Any, browser: Any, peers: Peers
) -> None:
    _, session, call_id = live_started(upstream, browser, peers)
    speak(upstream, call_id, "Before the drop.")
    before = said(session, 2)

    path = f"/_emulator/live/sessions/{call_id}/drop-sidebands"
    assert upstream.control("POST", path, {})["dropped"] == 1
    live_attached(upstream, call_id)  # the worker attached again
    speak(upstream, call_id, "After the drop.")
    after = said(session, 4)

    assert after == [
        *before,
        ("user", "After the drop."),
        ("assistant", reply("After the drop.")),
    ]
    assert Call.objects.get(call_id=call_id).end_reason == ""
