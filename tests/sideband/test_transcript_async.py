"""The worker's set-based batch write on its asyncio connection, against real Postgres.

The writer's connection is its own (not the test's), so these tests commit (transaction=True).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest
from django.utils import timezone

from sessions_app.models import Call, TranscriptTurn
from sideband.capture import Op
from sideband.transcript import (
    POSITION_STEP,
    Fenced,
    PlanOutcome,
    batch_plan,
    batch_run_async,
    batch_run_sync,
    connect_async,
    connect_params,
    turns_write,
)
from tests.sideband.test_transcript import live_call, new_generation, positions, user

pytestmark = pytest.mark.django_db(transaction=True)


def batch_async(writes: Sequence[tuple[Call, Sequence[Op]]]) -> list[PlanOutcome]:
    params = connect_params()

    async def write() -> list[PlanOutcome]:
        aconn = await connect_async(params)
        try:
            return await batch_run_async(aconn, writes=writes)
        finally:
            await aconn.close()

    return asyncio.run(write())


def test_the_batch_is_two_rounds_of_statements_whatever_the_number_of_calls() -> None:
    calls = [live_call() for _ in range(5)]
    steps = batch_plan(
        writes=[(c, [user(f"item_{i}", None)]) for i, c in enumerate(calls)], now=timezone.now()
    )

    first = next(steps)
    # The fence and the two reads go together; their rows come back together.
    assert len(first) == 3
    second = steps.send([[(c.pk,) for c in calls], [], [(c.session_id, None) for c in calls]])
    assert len(second) == 1
    assert "INSERT INTO" in second[0].sql
    assert second[0].refusable


def test_the_async_batch_writes_every_call_and_returns_the_turns_with_their_ids() -> None:
    first, second = live_call(), live_call()
    turns_write(call=first, ops=[user("item_a", None)])

    outcomes = batch_async(
        [
            (first, [user("item_b", "item_a"), user("item_a", None, text="edited")]),
            (second, [user("item_x", None)]),
        ]
    )

    assert [[(t.item_id, t.text) for t in cast(list, o)] for o in outcomes] == [
        [("item_b", "hi"), ("item_a", "edited")],
        [("item_x", "hi")],
    ]
    stored = dict(TranscriptTurn.objects.values_list("item_id", "pk"))
    assert {t.item_id: t.pk for o in outcomes for t in cast(list, o)} == {
        "item_a": stored["item_a"],
        "item_b": stored["item_b"],
        "item_x": stored["item_x"],
    }
    assert positions(first.session) == [("item_a", POSITION_STEP), ("item_b", 2 * POSITION_STEP)]
    assert positions(second.session) == [("item_x", POSITION_STEP)]
    # An existing turn comes back with its call's public id (the live push shows it).
    edited = next(t for t in cast(list, outcomes[0]) if t.item_id == "item_a")
    assert edited.call is not None
    assert edited.call.call_id == first.call_id


def test_a_fenced_call_in_the_async_batch_writes_nothing_and_the_others_do() -> None:
    superseded, live = live_call(), live_call()
    new_generation(superseded.session)

    outcomes = batch_async([(superseded, [user("item_s", None)]), (live, [user("item_l", None)])])

    assert isinstance(outcomes[0], Fenced)
    assert [t.item_id for t in cast(list, outcomes[1])] == ["item_l"]
    assert list(TranscriptTurn.objects.values_list("item_id", flat=True)) == ["item_l"]


def test_a_refused_async_batch_writes_nothing_and_leaves_each_call_to_the_turn_by_turn_path() -> (
    None
):
    bad, good = live_call(), live_call()
    # A failed turn must say why (turn_failed_has_reason): the database refuses this record.
    writes: list[tuple[Call, list[Op]]] = [
        (bad, [user("item_x", None), user("item_y", "item_x", status="failed")]),
        (good, [user("item_a", None)]),
    ]

    outcomes = batch_async(writes)

    assert outcomes == [None, None]
    assert not TranscriptTurn.objects.exists()
    # What the worker then does for each: the others' writes stand.
    # a refused record costs only itself.
    partly, written = batch_run_sync(writes=writes)
    assert [t.item_id for t in cast(list, partly)] == ["item_x"]
    assert [t.item_id for t in cast(list, written)] == ["item_a"]


def test_a_recovered_item_is_left_to_the_turn_by_turn_path_and_the_others_are_written() -> None:
    recovering, other = live_call(), live_call()
    turns_write(call=recovering, ops=[user("item_a", None), user("item_d", "item_a")])
    # item_a is not the last turn: placing item_c after it needs a position query.
    between: list[Any] = [user("item_c", "item_a", next_item_id="item_d")]

    outcomes = batch_async([(recovering, between), (other, [user("item_x", None)])])

    assert outcomes[0] is None
    assert [t.item_id for t in cast(list, outcomes[1])] == ["item_x"]
    assert positions(recovering.session) == [
        ("item_a", POSITION_STEP),
        ("item_d", 2 * POSITION_STEP),
    ]
