"""The capture as a whole: session.created/.updated, error (a terminal one ends the call) and
what every frame goes through (parsing, unknown and repeated events, a seeded state); the
capture imports nothing from Django or the network.

Pure: hand-written events (tests/sideband/capture_events.py), no I/O, no database.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sideband.capture import CallEnded, CaptureState, TurnUpsert, capture_frame
from tests.sideband.capture_events import (
    added,
    answer,
    assistant,
    done,
    ev,
    run,
    texts,
    upserts,
    user_audio,
    user_text,
)

# --- Session ------------------------------------------------------------------------------


def test_user_audio_is_completed_without_text_when_the_session_does_not_transcribe() -> None:
    state = CaptureState()

    run(
        state,
        [
            ev(
                "session.updated",
                session={"type": "realtime", "audio": {"input": {"transcription": None}}},
            ),
            added(user_audio("item_u"), None),
        ],
    )

    assert state.transcription_expected is False
    assert texts(state) == [("item_u", "user", None, "completed")]


# --- Errors and call end ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "message"),
    [
        (
            "session_expired",
            "session_expired",
            "Your session hit the maximum duration of 60 minutes.",
        ),
        ("invalid_api_key", "secret_expired", "Incorrect API key provided: ek_6***abcd."),
    ],
)
def test_a_terminal_error_ends_the_call(code: str, reason: str, message: str) -> None:
    state = CaptureState()
    error = {
        "type": "invalid_request_error",
        "code": code,
        "message": message,
        "param": None,
        "event_id": None,
    }

    ops = run(state, [ev("error", error=error)])

    assert ops == [CallEnded(reason=reason, message=message)]


def test_a_non_terminal_error_is_not_a_call_end() -> None:
    state = CaptureState()

    ops = run(
        state,
        [
            ev(
                "error",
                error={
                    "type": "invalid_request_error",
                    "code": "item_not_found",
                    "message": "x",
                    "param": None,
                },
            )
        ],
    )

    assert ops == []
    assert state.unknown_event_counts == {}


# --- Frames and state ---------------------------------------------------------------------


def test_unknown_events_are_counted_and_ignored() -> None:
    state = CaptureState()
    run(state, [added(user_text("item_u", "Hi"), None)])

    ops = run(
        state,
        [
            ev("response.brand_new_thing", x=1),
            ev("response.brand_new_thing"),
            ev("mcp.list_tools.in_progress"),
        ],
    )

    assert ops == []
    assert state.unknown_event_counts == {
        "response.brand_new_thing": 2,
        "mcp.list_tools.in_progress": 1,
    }
    assert [t.item_id for t in state.turns()] == ["item_u"]


def test_malformed_frames_are_logged_without_content_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = CaptureState()
    secret_text = "my card number is 4111"
    frames: list[str | bytes] = [
        '{"type": "conversation.item.added", "item": {"id": "x", "content": "' + secret_text,  # cut
        json.dumps([secret_text]),
        json.dumps({"no_type": secret_text}),
        json.dumps(
            {"type": "conversation.item.added", "previous_item_id": None, "item": secret_text}
        ),
        json.dumps(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": 7,
                "transcript": secret_text,
            }
        ),
        b"\xff\xfe not utf-8",
        "[" * 100_000,  # nesting deeper than the parser's recursion limit
        json.dumps(added(user_text("item_" + "x" * 60, secret_text), None)),  # id too long to store
    ]

    with caplog.at_level(logging.WARNING, logger="sideband.capture"):
        results = [capture_frame(state, frame) for frame in frames]
        after = capture_frame(state, json.dumps(added(user_text("item_u", "still here"), None)))

    assert results == [[]] * 8
    assert state.malformed_frames == 8
    assert secret_text not in caplog.text
    assert len(caplog.records) == 8
    assert [op.item_id for op in upserts(after)] == ["item_u"]


def test_a_frame_only_the_stdlib_json_parser_accepts_is_still_captured() -> None:
    # orjson refuses NaN and lone surrogates; such a frame falls back to json.loads.
    state = CaptureState()
    ops = capture_frame(state, '{"type": "rate_limits.updated", "x": NaN, "y": "\\ud800"}')
    assert ops == []
    assert state.events == 1
    assert state.malformed_frames == 0
    assert state.unknown_event_counts == {}


def test_repeated_events_emit_nothing_new() -> None:
    state = CaptureState()
    events = [added(user_text("item_u", "Hi"), None), *answer("item_a", "item_u", "Hello.")]
    run(state, events)

    again = run(state, [e for e in events if not e["type"].endswith(".delta")])

    assert again == []


def test_a_seeded_state_emits_only_what_changed() -> None:
    seeded = [
        TurnUpsert(
            item_id="item_u", role="user", previous_item_id=None, text=None, status="in_progress"
        ),
        TurnUpsert(
            item_id="item_a",
            role="assistant",
            previous_item_id="item_u",
            text="Hi!",
            status="completed",
        ),
    ]
    state = CaptureState.seeded(seeded)

    repeated = run(state, [done(assistant("item_a", "Hi!"), prev="item_u")])
    ops = run(
        state,
        [
            ev(
                "conversation.item.input_audio_transcription.completed",
                item_id="item_u",
                content_index=0,
                transcript="Hello",
            )
        ],
    )

    assert repeated == []
    assert upserts(ops) == [
        TurnUpsert(
            item_id="item_u", role="user", previous_item_id=None, text="Hello", status="completed"
        )
    ]


def test_the_capture_imports_nothing_from_django_or_the_network() -> None:
    root = Path(__file__).resolve().parents[2]
    probe = (
        "import sys, sideband.capture; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'django', 'socket', 'websocket', 'psycopg', 'redis', 'openai'}))"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    assert result.stdout.strip() == "[]"
