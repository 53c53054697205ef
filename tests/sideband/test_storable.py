"""Hostile text in the transcript: what Postgres cannot store is replaced at capture, and a
record the database refuses anyway costs only itself, on every write path.

The writer tests run on real Postgres (SQLite would store a NUL and hide the failure).
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from django.core.management import call_command

from sessions_app.models import Call, Session, TranscriptTurn
from sessions_app.storable import REPLACEMENT, text_storable
from sideband.capture import CaptureState, Op, TurnUpsert, capture_frame
from sideband.transcript import (
    Refused,
    batch_run_sync,
)
from tests.sideband.helpers import (
    Worker,
    attached,
    call_start,
    reply,
    session_new,
    synthetic_call,
    turns_settled,
    wait_for,
)
from tests.sideband.test_transcript import live_call, user
from tests.sideband.test_transcript_async import batch_async

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

NUL = "\x00"
SURROGATE = "\ud800"


def frames(item_id: str, user_text: str, answer_id: str, answer_text: str) -> list[str]:
    """A typed user turn and a spoken answer as JSON text frames (json.dumps escapes a NUL as
    \\u0000 and a lone surrogate as \\ud800, as a server would send them)."""
    user_item = {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": user_text}],
    }
    answer = {
        "id": answer_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": answer_text}],
    }
    events = [
        {"type": "conversation.item.added", "previous_item_id": None, "item": user_item},
        {"type": "conversation.item.done", "previous_item_id": None, "item": user_item},
        {"type": "conversation.item.added", "previous_item_id": item_id, "item": answer},
        {"type": "conversation.item.done", "previous_item_id": None, "item": answer},
    ]
    return [json.dumps(event) for event in events]


def captured(lines: list[str]) -> list[Op]:
    state = CaptureState()
    return [op for line in lines for op in capture_frame(state, line)]


def stored(session: Session) -> list[tuple[str, str, str | None]]:
    return list(
        TranscriptTurn.objects.filter(session=session)
        .order_by("position")
        .values_list("item_id", "role", "text")
    )


# --- The rule -------------------------------------------------------------------------------


def test_the_rule_replaces_nul_and_lone_surrogates_and_keeps_everything_else() -> None:
    kept = "tab\t bell\x07 del\x7f emoji \U0001f600 rtl \u202e bom \ufeff"

    assert (
        text_storable(f"a{NUL}b{SURROGATE}c\udfffd")
        == f"a{REPLACEMENT}b{REPLACEMENT}c{REPLACEMENT}d"
    )
    assert text_storable(kept) == kept
    assert text_storable("") == ""


def test_nul_and_surrogates_in_user_text_assistant_text_and_item_id_are_captured_replaced() -> None:
    ops = captured(frames(f"item_u{NUL}1", f"hi{NUL}there", "item_a", f"ok{SURROGATE}!"))

    turns = [(op.item_id, op.role, op.text) for op in ops if isinstance(op, TurnUpsert)]
    assert turns[-1] == ("item_a", "assistant", f"ok{REPLACEMENT}!")
    assert (f"item_u{REPLACEMENT}1", "user", f"hi{REPLACEMENT}there") in turns
    assert all(NUL not in repr(op) and SURROGATE not in repr(op) for op in ops)


def test_a_clean_frame_is_captured_unchanged() -> None:
    odd = "tab\t bell\x07 emoji \U0001f600 escaped \\u0000 literally"

    ops = captured(frames("item_u", odd, "item_a", "fine"))

    assert [op.text for op in ops if isinstance(op, TurnUpsert) and op.role == "user"][-1] == odd


# --- The writer, every path -----------------------------------------------------------------


@pytest.mark.django_db
def test_captured_nul_is_stored_replaced_and_the_neighbour_call_in_the_batch_loses_nothing() -> (
    None
):
    hostile, neighbour = live_call(), live_call()
    hostile_ops = captured(frames(f"item_h{NUL}", f"a{NUL}b", "item_ha", f"c{NUL}d"))
    neighbour_ops = captured(frames("item_n", "clean", "item_na", "answer"))

    outcomes = batch_run_sync(writes=[(hostile, hostile_ops), (neighbour, neighbour_ops)])

    assert [type(outcome).__name__ for outcome in outcomes] == ["list", "list"]
    assert stored(hostile.session) == [
        (f"item_h{REPLACEMENT}", "user", f"a{REPLACEMENT}b"),
        ("item_ha", "assistant", f"c{REPLACEMENT}d"),
    ]
    assert stored(neighbour.session) == [
        ("item_n", "user", "clean"),
        ("item_na", "assistant", "answer"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_an_unstorable_record_that_skipped_the_capture_costs_only_itself(bad: str) -> None:
    # The writer's own guard: records made by hand, not by the capture.
    hostile, neighbour = live_call(), live_call()

    outcomes = batch_run_sync(
        writes=[
            (hostile, [user("item_ok", None, "fine"), user("item_bad", "item_ok", f"x{bad}y")]),
            (neighbour, [user("item_n", None, "clean")]),
        ]
    )

    assert [[t.item_id for t in cast(list, outcome)] for outcome in outcomes] == [
        ["item_ok"],
        ["item_n"],
    ]
    assert stored(hostile.session) == [("item_ok", "user", "fine")]
    assert stored(neighbour.session) == [("item_n", "user", "clean")]


@pytest.mark.django_db
def test_a_call_whose_every_record_is_refused_is_refused_alone() -> None:
    hostile, neighbour = live_call(), live_call()

    outcomes = batch_run_sync(
        writes=[
            (hostile, [user("item_bad", None, f"x{NUL}")]),
            (neighbour, [user("item_n", None, "clean")]),
        ]
    )

    assert isinstance(outcomes[0], Refused)
    assert [t.item_id for t in cast(list, outcomes[1])] == ["item_n"]
    assert not TranscriptTurn.objects.filter(session=hostile.session).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_an_unstorable_record_in_the_async_batch_is_left_to_the_per_call_path(bad: str) -> None:
    hostile, neighbour = live_call(), live_call()
    writes: list[tuple[Call, list[Op]]] = [
        (hostile, [user("item_ok", None, "fine"), user("item_bad", "item_ok", f"x{bad}")]),
        (neighbour, [user("item_n", None, "clean")]),
    ]

    outcomes = batch_async(writes)

    # The batch's transaction is rolled back whole; the worker then writes each call on the
    # ORM thread (what SidebandOwner._turns_write does with a None outcome).
    assert outcomes == [None, None]
    assert not TranscriptTurn.objects.exists()
    per_call = [batch_run_sync(writes=[write])[0] for write in writes]
    assert [[t.item_id for t in cast(list, outcome)] for outcome in per_call] == [
        ["item_ok"],
        ["item_n"],
    ]
    assert stored(neighbour.session) == [("item_n", "user", "clean")]


@pytest.mark.django_db(transaction=True)
def test_the_async_batch_stores_captured_nul_replaced_with_its_neighbour() -> None:
    hostile, neighbour = live_call(), live_call()
    writes: list[tuple[Call, list[Op]]] = [
        (hostile, captured(frames("item_h", f"a{NUL}", "item_ha", f"{NUL}"))),
        (neighbour, captured(frames("item_n", "clean", "item_na", "answer"))),
    ]

    outcomes = batch_async(writes)

    assert [len(cast(list, outcome)) for outcome in outcomes] == [2, 2]
    assert stored(hostile.session) == [
        ("item_h", "user", f"a{REPLACEMENT}"),
        ("item_ha", "assistant", REPLACEMENT),
    ]
    assert [text for _, _, text in stored(neighbour.session)] == ["clean", "answer"]


# --- The worker end to end ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_worker_stores_a_typed_nul_replaced_and_a_concurrent_call_loses_nothing(
    worker: Worker, upstream: EmulatorServer
) -> None:
    hostile_session, neighbour_session = session_new(), session_new()
    hostile = attached(upstream, call_start(hostile_session, synthetic_call(upstream)))
    neighbour = attached(upstream, call_start(neighbour_session, synthetic_call(upstream)))

    for call, text in ((hostile, f"nul{NUL}here"), (neighbour, "clean words")):
        path = f"/_emulator/calls/{call.call_id}/user-text"
        upstream.control("POST", path, {"text": text})

    replaced = f"nul{REPLACEMENT}here"
    assert wait_for(turns_settled(hostile_session, 2)) == [
        ("user", replaced, "completed"),
        ("assistant", reply(replaced), "completed"),
    ]
    assert wait_for(turns_settled(neighbour_session, 2)) == [
        ("user", "clean words", "completed"),
        ("assistant", reply("clean words"), "completed"),
    ]


# --- Replay ---------------------------------------------------------------------------------


def _replay(path: Path) -> tuple[list[dict[str, Any]], str]:
    out, err = StringIO(), StringIO()
    call_command("replay_transcript", str(path), stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


@pytest.mark.django_db
def test_replay_of_a_one_line_file_with_a_nul_stores_it_replaced(tmp_path: Path) -> None:
    log = tmp_path / "nul.jsonl"
    log.write_text(frames(f"item{NUL}", f"a{NUL}b", "item_a", "x")[0] + "\n", encoding="utf-8")

    turns, err = _replay(log)

    assert turns == [
        {
            "role": "user",
            "text": f"a{REPLACEMENT}b",
            "status": "completed",
            "item_id": f"item{REPLACEMENT}",
        }
    ]
    assert "0 refused writes" in err


@pytest.mark.django_db
def test_replay_skips_a_line_that_is_not_utf8_and_keeps_the_others(tmp_path: Path) -> None:
    lines = frames("item_u", "hello", "item_a", "hi")
    log = tmp_path / "latin1.jsonl"
    log.write_bytes(
        b"\n".join(
            [lines[0].encode(), b'{"type": "x", "t": "caf\xe9"}', *map(str.encode, lines[1:])]
        )
    )

    turns, err = _replay(log)

    assert [(t["item_id"], t["text"]) for t in turns] == [("item_u", "hello"), ("item_a", "hi")]
    assert "1 malformed" in err
