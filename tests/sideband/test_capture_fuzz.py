"""Property tests of the capture over mutated real event logs (../shared/realtime-corpus/).

Each example takes a recorded session and mutates it the way a hostile or broken upstream
(or a flaky socket) would: lines dropped, duplicated, swapped or truncated, fields given the
wrong JSON type, strings replaced by huge or odd ones (NUL, lone surrogates, control and
bidi characters). Whatever comes in, the capture must not crash, must never emit two turns
for one item, must give the same answer twice, and must only emit text Postgres can store;
a sample of the mutated logs is also written to Postgres, where no record may be refused.

Derandomized (a fixed sequence of examples, so the suite stays deterministic) and bounded.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions_app.models import TranscriptTurn
from sideband.capture import CaptureState, Op, capture_frame
from sideband.transcript import turns_write
from tests.sideband.test_transcript import live_call

CORPUS = Path(__file__).parents[2].parent / "shared" / "realtime-corpus"
LOGS = {
    path.name: [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for path in sorted(CORPUS.glob("*.jsonl"))
}
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Fields whose strings end up in a turn (text, ids, tool fields, error messages).
TEXT_KEYS = frozenset(
    {"text", "transcript", "delta", "id", "item_id", "previous_item_id", "call_id"}
    | {"name", "arguments", "output", "message"}
)
ODD_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["\x00", "a\x00b", "\ud800", "x\udfffy", "\u202e\u200b\ufeff", "\x07\x1b[2J", "😀" * 50]
    ),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "\x00", "é"]), st.integers(1, 200_000)),
)
WRONG_TYPE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    ODD_TEXT,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a parsed event a value can be put (dict keys, list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _get(event: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        event = event[step]
    return event


def _put(event: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        event = event[step]
    event[path[-1]] = value


@st.composite
def mutated_logs(draw: st.DrawFn) -> list[str]:
    """A recorded log with a few mutations applied, as the lines a socket would deliver."""
    lines = list(LOGS[draw(st.sampled_from(sorted(LOGS)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["drop", "dup", "swap", "truncate", "retype", "odd"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "drop" and len(lines) > 1:
            del lines[i]
        elif kind == "dup":
            lines.insert(draw(st.integers(0, len(lines))), lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, max(0, len(lines[i]) - 1)))]
        elif kind in ("retype", "odd"):
            try:
                event = json.loads(lines[i])
            except ValueError:
                continue  # truncated before: stays malformed
            places = _paths(event)
            if kind == "odd":  # a string of the event, preferably one that becomes turn text
                strings = [p for p in places if isinstance(_get(event, p), str)]
                places = [p for p in strings if p[-1] in TEXT_KEYS] or strings
            if not places:
                continue
            place = draw(st.sampled_from(places))
            _put(event, place, draw(WRONG_TYPE if kind == "retype" else ODD_TEXT))
            lines[i] = json.dumps(event)
    return lines


def capture_all(lines: list[str]) -> tuple[list[Op], CaptureState]:
    state = CaptureState()
    ops: list[Op] = []
    for line in lines:
        ops.extend(capture_frame(state, line))
    return ops, state


def _storable(value: object) -> bool:
    return not isinstance(value, str) or not any(
        c == "\x00" or "\ud800" <= c <= "\udfff" for c in value
    )


def test_the_corpus_is_there_to_mutate() -> None:
    assert len(LOGS) >= 6, f"reference corpus missing at {CORPUS}"


@FUZZ
@given(mutated_logs())
def test_a_mutated_log_never_crashes_duplicates_a_turn_or_answers_twice_differently(
    lines: list[str],
) -> None:
    ops, state = capture_all(lines)
    again, state_again = capture_all(lines)

    # No duplicate turn: one record per item, in one place of the conversation.
    assert len(state.order) == len(set(state.order)) == len(state.items)
    assert set(state.order) == set(state.items)
    # Deterministic: the same log gives the same operations and the same transcript.
    assert again == ops
    assert state_again.turns() == state.turns()
    # Only storable text leaves the capture.
    for op in ops:
        assert all(_storable(getattr(op, f.name)) for f in fields(op)), type(op).__name__


@FUZZ
@given(st.sampled_from(sorted(LOGS)))
def test_every_event_delivered_twice_gives_the_same_transcript(name: str) -> None:
    lines = LOGS[name]

    _, once = capture_all(lines)
    _, twice = capture_all([line for line in lines for _ in range(2)])

    assert twice.turns() == once.turns()


@pytest.mark.django_db
@settings(FUZZ, max_examples=25, suppress_health_check=list(HealthCheck))
@given(mutated_logs())
def test_a_mutated_log_is_stored_on_postgres_without_a_refused_record(lines: list[str]) -> None:
    ops, state = capture_all(lines)

    with transaction.atomic():
        call = live_call()
        turns_write(call=call, ops=ops)
        stored = list(
            TranscriptTurn.objects.filter(session=call.session_id)
            .order_by("position")
            .values_list("item_id", flat=True)
        )
        transaction.set_rollback(True)

    assert sorted(stored) == sorted(op.item_id for op in state.turns())
    assert len(stored) == len(set(stored))
