"""The bundled page in Debian's Chromium against the real stack — one test per seed diagram
(start, renew, refresh), plus extraction and a reload mid-conversation.

Every test saves a screenshot to artifacts/screenshots/; the start test's mid-conversation
shot (start-mid-conversation.png) is the one copied to docs/screenshot.png for the README.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings
from playwright.sync_api import Locator, Page, WebSocketRoute, expect

from extraction.models import Profile
from sessions_app.models import Call, Session, TranscriptTurn
from tests.browser.conftest import SCREENSHOTS
from tests.processes import wait_for

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

LaunchPage = Callable[..., Page]
# The server waits up to EXTRACTION_WAIT_S (10 s) for the extraction task, then the page polls:
# on a loaded machine the card takes longer than expect()'s default 5 s.
EXTRACTION_TIMEOUT_MS = 30_000
# The profile card's rows, in its order (static/js/profile_card.js FIELD_ORDER).
CARD_LABELS = {
    "name": "Name",
    "preferred_name": "Preferred name",
    "language": "Language",
    "location": "Location",
    "time_zone": "Time zone",
    "goals": "Goals",
    "preferences": "Preferences",
    "dislikes": "Dislikes",
    "facts": "Facts",
    "constraints": "Constraints",
    "follow_ups": "Follow ups",
}


# --- Helpers --------------------------------------------------------------------------------


def transcript_items(page: Page) -> Locator:
    return page.get_by_role("region", name="Transcript").get_by_role("listitem")


def transcript_texts(page: Page) -> Locator:
    return transcript_items(page).locator(".text")


def expect_transcript(page: Page, texts: list[str], *, timeout: float = 10_000) -> None:
    """The transcript shows exactly `texts`, each turn final as the server committed it (not
    partial text still streaming, which can read the same)."""
    expect(transcript_texts(page)).to_have_text(texts, timeout=timeout)
    final = transcript_items(page).and_(
        page.locator('[data-status="completed"][data-partial="false"]')
    )
    expect(final).to_have_count(len(texts), timeout=timeout)


def wait_ready(page: Page) -> None:
    """Connected: the call is registered and its data channel open, nothing in flight."""
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=30_000)


def start(page: Page) -> str:
    page.get_by_role("button", name="Start").click()
    wait_ready(page)
    expect(page.get_by_role("status")).to_have_text("Connected")
    return session_id_of(page)


def say(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()


def session_id_of(page: Page) -> str:
    return str(page.locator("body").get_attribute("data-session-id"))


def call_id_of(page: Page) -> str:
    return str(page.locator("body").get_attribute("data-call-id"))


def screenshot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def db_turns(session_id: str) -> list[tuple[str, str | None, str]]:
    return list(
        TranscriptTurn.objects.filter(session__public_id=session_id)
        .order_by("position")
        .values_list("role", "text", "status")
    )


def call_attached(call_id: str) -> bool:
    return Call.objects.filter(call_id=call_id, attached_at__isnull=False).exists()


def attached_call_of(page: Page, *, what: str = "the sideband to attach") -> str:
    """The page's current call id, once the server's sideband has attached to it."""
    call_id = call_id_of(page)
    wait_for(lambda: call_attached(call_id), timeout=20, what=what)
    return call_id


def emulator_call(upstream: EmulatorServer, call_id: str) -> dict[str, Any]:
    state: dict[str, Any] = upstream.control("GET", f"/_emulator/calls/{call_id}")
    return state


def reply(text: str, marker: str | None = None) -> str:
    """The emulator assistant's answer to a user's `text`."""
    return f'You said: "{text}".' + (f" ({marker})" if marker else "")


# --- Seed diagram 1: start, talk by text and by voice ------------------------------------------


def test_start_talk_by_text_and_microphone_shows_server_turns_in_order(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page(audio="speech")
    # The pickers offer the server's allow-lists.
    expect(page.get_by_label("Model").locator("option")).to_have_text(settings.REALTIME_MODELS)
    expect(page.get_by_label("Voice").locator("option")).to_have_text(settings.REALTIME_VOICES)
    page.get_by_label("Voice").select_option(settings.REALTIME_VOICES[1])

    session_id = start(page)
    # Keep the fake microphone quiet until the text turn is done.
    mute = page.get_by_role("button", name="Mute")
    mute.click()
    # The name stays: a screen reader hears "Mute, toggle button, pressed".
    expect(mute).to_have_attribute("aria-pressed", "true")
    call_id = attached_call_of(page)

    say(page, "Hello from the keyboard")
    expect_transcript(page, ["Hello from the keyboard", reply("Hello from the keyboard")])
    screenshot(page, "start-text-turn")

    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "false")
    # Live cues: the microphone's level rises, then the page shows the person speaking.
    page.wait_for_function(
        "document.getElementById('mic-level').value > 0.05", polling=50, timeout=15_000
    )
    expect(page.locator("#cue-you")).to_have_text("speaking", timeout=5_000)
    spoken = "Spoken turn 1, about 1 second."
    expect_transcript(
        page,
        ["Hello from the keyboard", reply("Hello from the keyboard"), spoken, reply(spoken)],
        timeout=30_000,
    )
    expect(page.locator("#cue-you")).to_have_text("quiet")
    expect(page.locator("#cue-assistant")).to_have_text("listening")
    expect(page.locator("#elapsed-value")).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(page.locator("#call-cap-value")).to_have_text("1:00:00")
    expect(transcript_items(page).locator(".how")).to_have_text(["typed", "spoken"])
    screenshot(page, "start-mid-conversation")
    mute.click()

    # What the page shows is the server's transcript, in the server's order.
    session = Session.objects.get(public_id=session_id)
    assert (session.model, session.voice) == (
        settings.REALTIME_MODELS[0],
        settings.REALTIME_VOICES[1],
    )
    assert list(session.calls.values_list("call_id", flat=True)) == [call_id]
    assert db_turns(session_id) == [
        ("user", "Hello from the keyboard", "completed"),
        ("assistant", reply("Hello from the keyboard"), "completed"),
        ("user", spoken, "completed"),
        ("assistant", reply(spoken), "completed"),
    ]


# --- Seed diagram 2: renew ---------------------------------------------------------------------


def _profile_store(session_id: str, *, evidence: str) -> None:
    """A profile extracted meanwhile (e.g. from another tab): renew must bring its instructions."""
    from extraction.schema import ExtractedProfile, Fact, profile_to_data

    empty: dict[str, Any] = {
        "name": None,
        "preferred_name": None,
        "language": None,
        "location": None,
        "time_zone": None,
        "goals": [],
        "preferences": [],
        "dislikes": [],
        "facts": [],
        "constraints": [],
        "follow_ups": [],
    }
    profile = ExtractedProfile(**{**empty, "name": Fact(value="Ada", evidence=[evidence])})
    session = Session.objects.get(public_id=session_id)
    Profile.objects.create(
        session=session,
        version=1,
        data=profile_to_data(profile),
        instructions="",
        turn_count=2,
        last_position=None,
    )


def test_renew_registers_a_new_call_moves_the_sideband_and_applies_instructions(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    session_id = start(page)
    first_call = attached_call_of(page)
    say(page, "Before renew")
    expect_transcript(page, ["Before renew", reply("Before renew")])
    first_item = str(transcript_items(page).first.get_attribute("data-item-id"))
    _profile_store(session_id, evidence=first_item)

    page.get_by_role("button", name="Reconnect").click()
    expect(page.locator("body")).not_to_have_attribute("data-call-id", first_call)
    wait_ready(page)
    second_call = call_id_of(page)
    assert re.fullmatch(r"rtc_\w+", second_call)

    # A new call registered on the same session; the sideband moved to it.
    wait_for(lambda: call_attached(second_call), timeout=20, what="the sideband to move")
    calls = list(
        Call.objects.filter(session__public_id=session_id)
        .order_by("generation")
        .values_list("call_id", "generation", "end_reason")
    )
    assert calls == [(first_call, 1, "superseded"), (second_call, 2, "")]
    wait_for(
        lambda: emulator_call(upstream, first_call)["sidebands"] == 0,
        timeout=10,
        what="the old sideband to close",
    )
    new_upstream = emulator_call(upstream, second_call)
    assert "Marker: profile v1" in new_upstream["instructions"]

    # The instructions are applied: the emulator's reply quotes their marker; the transcript
    # continues on the same session.
    say(page, "After renew")
    expect_transcript(
        page,
        [
            "Before renew",
            reply("Before renew"),
            "After renew",
            reply("After renew", "Marker: profile v1"),
        ],
    )
    screenshot(page, "renew")
    assert db_turns(session_id)[2:] == [
        ("user", "After renew", "completed"),
        ("assistant", reply("After renew", "Marker: profile v1"), "completed"),
    ]
    assert (
        TranscriptTurn.objects.filter(session__public_id=session_id, text="After renew")
        .values_list("call__call_id", flat=True)
        .get()
        == second_call
    )


# --- Seed diagram 3: refresh ---------------------------------------------------------------------


def test_refresh_starts_a_new_session_with_an_empty_transcript(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    old_session = start(page)
    say(page, "Remember this")
    expect_transcript(page, ["Remember this", reply("Remember this")])

    page.get_by_role("button", name="Refresh").click()
    dialog = page.get_by_role("dialog", name="Start a new conversation?")
    # Without a profile there is nothing to carry.
    expect(dialog.get_by_label("Carry the profile into the new conversation")).to_be_hidden()
    dialog.get_by_role("button", name="Start new conversation").click()
    expect(page.locator("body")).not_to_have_attribute("data-session-id", old_session)
    wait_ready(page)
    new_session = session_id_of(page)
    expect(transcript_items(page)).to_have_count(0)
    expect(page.get_by_text("No turns yet.")).to_be_visible()
    screenshot(page, "refresh-empty")

    old = Session.objects.get(public_id=old_session)
    new = Session.objects.get(public_id=new_session)
    assert (old.status, new.status, new.replaces_id) == ("closed", "active", old.pk)
    assert db_turns(new_session) == []
    assert db_turns(old_session) == [
        ("user", "Remember this", "completed"),
        ("assistant", reply("Remember this"), "completed"),
    ]

    # The new session's call is captured from scratch.
    attached_call_of(page, what="the new sideband to attach")
    say(page, "Fresh start")
    expect_transcript(page, ["Fresh start", reply("Fresh start")])
    assert db_turns(new_session) == [
        ("user", "Fresh start", "completed"),
        ("assistant", reply("Fresh start"), "completed"),
    ]


def test_refresh_with_memory_shows_what_was_carried(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    first = start(page)
    attached_call_of(page)
    say(page, "My name is Ada")
    expect_transcript(page, ["My name is Ada", reply("My name is Ada")])
    _profile_store(first, evidence=str(db_first_item(first)))

    page.get_by_text("Model and voice").click()  # the options fold away once a session runs
    page.get_by_label("Start from what I said in earlier sessions").check()
    page.get_by_role("button", name="Refresh").click()
    dialog = page.get_by_role("dialog", name="Start a new conversation?")
    dialog.get_by_role("button", name="Start new conversation").click()
    expect(page.locator("body")).not_to_have_attribute("data-session-id", first)
    wait_ready(page)

    # The card shows the carried profile, and the page says what it carried.
    card = page.get_by_role("region", name=re.compile(r"^Profile"))
    expect(card).to_be_visible()
    expect(card.locator("dt:text-is('Name') + dd .fact")).to_have_text(re.compile(r"^Ada"))
    expect(page.locator("#memory-note")).to_have_text(
        "Carried from earlier sessions: this profile and the last 2 turns."
    )
    screenshot(page, "refresh-with-memory")
    # The new call started with it: the assistant quotes the carried version's marker.
    call_id = attached_call_of(page, what="the new sideband to attach")
    assert "Marker: profile v1" in emulator_call(upstream, call_id)["instructions"]
    say(page, "Who am I?")
    expect_transcript(page, ["Who am I?", reply("Who am I?", "Marker: profile v1")])


def db_first_item(session_id: str) -> str | None:
    return (
        TranscriptTurn.objects.filter(session__public_id=session_id)
        .order_by("position")
        .values_list("item_id", flat=True)
        .first()
    )


# --- Extraction and reload -----------------------------------------------------------------------


def test_extract_profile_shows_the_card_with_evidence(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    session_id = start(page)
    call_id = attached_call_of(page)
    say(page, "My name is Ada")
    expect_transcript(page, ["My name is Ada", reply("My name is Ada")])
    say(page, "I live in Lisbon")
    expect_transcript(
        page,
        ["My name is Ada", reply("My name is Ada"), "I live in Lisbon", reply("I live in Lisbon")],
    )

    page.get_by_role("button", name="Extract profile").click()
    card = page.get_by_role("region", name=re.compile(r"^Profile"))
    expect(card).to_be_visible(timeout=EXTRACTION_TIMEOUT_MS)
    profile = wait_for(
        lambda: Profile.objects.filter(session__public_id=session_id).first(),
        timeout=10,
        what="the profile row",
    )
    assert profile is not None
    assert (profile.version, profile.data["name"]["value"], profile.data["location"]["value"]) == (
        1,
        "Ada",
        "Lisbon",
    )
    # One row per non-empty field of the stored profile, in the card's fixed order.
    expect(card.locator("dt")).to_have_text(
        [CARD_LABELS[key] for key in CARD_LABELS if profile.data.get(key)]
    )
    name = card.locator("dt:text-is('Name') + dd .fact")
    expect(name).to_have_text(re.compile(r"^Ada"))
    expect(card.locator("dt:text-is('Location') + dd .fact")).to_have_text(re.compile(r"^Lisbon"))
    # Evidence on hover: the turn it came from, quoted, and highlighted in the transcript.
    name.hover()
    expect(name.get_by_role("tooltip")).to_be_visible()
    expect(name.get_by_role("tooltip")).to_have_text("From turn: “My name is Ada”")
    expect(transcript_items(page).first).to_have_class(re.compile(r"\bhighlight\b"))
    screenshot(page, "extract-profile")

    # The instructions were applied to the live call.
    wait_for(
        lambda: "Marker: profile v1" in (emulator_call(upstream, call_id)["instructions"] or ""),
        timeout=10,
        what="session.update with the profile's instructions",
    )


def test_reload_mid_conversation_keeps_the_transcript_and_reconnects(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page(width=390, height=844)  # a phone-width screen
    session_id = start(page)
    # The message box is on screen after Start (it sticks to the bottom on a phone).
    expect(page.get_by_label("Message")).to_be_in_viewport()
    first_call = attached_call_of(page)
    say(page, "Before reload")
    expect_transcript(page, ["Before reload", reply("Before reload")])

    page.reload()
    expect_transcript(page, ["Before reload", reply("Before reload")])
    wait_ready(page)
    assert session_id_of(page) == session_id
    assert call_id_of(page) != first_call

    attached_call_of(page, what="the sideband to move")
    say(page, "After reload")
    expect_transcript(
        page, ["Before reload", reply("Before reload"), "After reload", reply("After reload")]
    )
    # Nothing overflows the phone's width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "reload-phone")
    assert [text for _, text, _ in db_turns(session_id)] == [
        "Before reload",
        reply("Before reload"),
        "After reload",
        reply("After reload"),
    ]


# --- Secret lifetime and errors ------------------------------------------------------------


def test_key_is_renewed_automatically_shortly_before_it_expires(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page(clock=True)
    session_id = start(page)
    first_call = call_id_of(page)
    expect(page.locator("#countdown-value")).to_have_text(re.compile(r"^(9:[0-5]\d|10:00)$"))

    # 9 minutes later the key has less than the renew margin (60 s of 600 s) left.
    page.clock.fast_forward("09:05")
    expect(page.locator("body")).not_to_have_attribute("data-call-id", first_call)
    wait_ready(page)
    second_call = call_id_of(page)
    expect(page.locator("#countdown-value")).to_have_text(re.compile(r"^(9:[0-5]\d|10:00)$"))
    calls = list(
        Call.objects.filter(session__public_id=session_id)
        .order_by("generation")
        .values_list("call_id", "end_reason")
    )
    assert calls == [(first_call, "superseded"), (second_call, "")]
    expect(page.locator("#event-log")).to_contain_text("auto-renew — key about to expire")
    screenshot(page, "auto-renew")


def test_upstream_down_says_what_to_do_and_retry_recovers(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    upstream.control(
        "POST", "/_emulator/faults", {"endpoint": "client_secrets", "status": 503, "times": 1}
    )
    page = launch_page()
    page.get_by_role("button", name="Start").click()

    alert = page.get_by_role("alert")
    expect(alert.locator("p")).to_have_text(
        "The Realtime API failed; try again shortly. Wait a moment, then press Retry."
    )
    expect(page.get_by_role("status")).to_have_text("Connection failed")
    screenshot(page, "upstream-down")
    assert Session.objects.count() == 0

    page.get_by_role("button", name="Retry").click()
    wait_ready(page)
    expect(alert).to_be_hidden()
    assert Session.objects.filter(public_id=session_id_of(page), status="active").count() == 1


def test_microphone_refused_says_so_and_typing_still_works(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page(microphone_allowed=False)
    session_id = start(page)

    expect(page.get_by_role("alert").locator("p")).to_have_text(
        "Microphone access was refused. Allow the microphone for this site in the browser's "
        "address bar, then press Retry — or type your messages below."
    )
    expect(page.get_by_role("button", name="Mute")).to_be_disabled()
    attached_call_of(page)
    say(page, "Typing instead")
    expect_transcript(page, ["Typing instead", reply("Typing instead")])
    screenshot(page, "microphone-refused")
    assert db_turns(session_id) == [
        ("user", "Typing instead", "completed"),
        ("assistant", reply("Typing instead"), "completed"),
    ]


# --- Transcript details --------------------------------------------------------------------------


def test_partial_text_then_interrupted_and_failed_turns_are_marked(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    session_id = start(page)
    call_id = attached_call_of(page)

    # A slow answer: its partial text shows while it streams, then it is cut off.
    upstream.control("POST", "/_emulator/settings", {"pace_s": 0.3})
    say(page, "Tell me a long story about the sea")
    streaming = transcript_items(page).and_(page.locator('[data-partial="true"]'))
    expect(streaming.locator(".text")).to_have_text(re.compile(r"^You said:"))
    upstream.control("POST", f"/_emulator/calls/{call_id}/interrupt")
    answer = transcript_items(page).nth(1)
    expect(answer).to_have_attribute("data-status", "incomplete")
    expect(answer.locator(".badge")).to_have_text("Interrupted")
    expect(answer).to_have_attribute("data-partial", "false")

    # A spoken turn whose transcription failed.
    upstream.control("POST", "/_emulator/settings", {"pace_s": 0.005, "transcription": "failed"})
    upstream.control("POST", f"/_emulator/calls/{call_id}/user-audio", {"transcript": "Lost"})
    failed = transcript_items(page).nth(2)
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed.locator(".text")).to_have_text("(spoken — no transcript)")
    expect(failed.locator(".badge")).to_have_text("Transcription failed")
    screenshot(page, "interrupted-and-failed")

    roles_statuses = [(role, status) for role, _, status in db_turns(session_id)][:3]
    assert roles_statuses == [
        ("user", "completed"),
        ("assistant", "incomplete"),
        ("user", "failed"),
    ]
    interrupted_text = db_turns(session_id)[1][1]
    assert interrupted_text is not None
    assert reply("Tell me a long story about the sea").startswith(interrupted_text)
    expect(answer.locator(".text")).to_have_text(interrupted_text)


def test_a_lost_live_message_is_recovered_from_the_server(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    dropped: list[dict[str, Any]] = []

    def lossy(ws: WebSocketRoute) -> None:
        """Between the page and the server's socket: loses every user-turn message, as a
        channel layer over capacity would."""
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            payload = json.loads(message)
            if payload.get("type") == "turn" and payload["turn"]["role"] == "user":
                dropped.append(payload)
                return
            ws.send(message)

        server.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws/session/"), lossy)
    session_id = start(page)
    attached_call_of(page)

    say(page, "Do not lose me")
    # The next message's number jumps; the page re-reads the transcript and has the turn.
    expect_transcript(page, ["Do not lose me", reply("Do not lose me")])
    expect(page.locator("#event-log")).to_contain_text("transcript re-read")
    assert [payload["turn"]["text"] for payload in dropped][-1] == "Do not lose me"
    screenshot(page, "lost-message-recovered")
    assert db_turns(session_id)[0] == ("user", "Do not lose me", "completed")


def test_keyboard_alone_starts_and_sends(launch_page: LaunchPage, upstream: EmulatorServer) -> None:
    page = launch_page(color_scheme="dark")
    focus_order = []
    for _ in range(8):
        page.keyboard.press("Tab")
        focus_order.append(
            page.evaluate("document.activeElement.id || document.activeElement.textContent")
        )
    # The skip link (to Start: the message box is disabled before it), then the start form in
    # reading order; disabled controls are skipped.
    assert focus_order == [
        "Skip to Start",
        "Model and voice",
        "api",
        "model",
        "voice",
        "transcription",
        "carry-memory",
        "start",
    ]
    page.keyboard.press("Enter")
    wait_ready(page)
    attached_call_of(page)
    page.get_by_label("Message").focus()
    page.keyboard.type("Typed and entered")
    page.keyboard.press("Enter")
    expect_transcript(page, ["Typed and entered", reply("Typed and entered")])
    # The message box is ready for the next line.
    assert page.evaluate("document.activeElement.id") == "message"
    screenshot(page, "keyboard-dark")
