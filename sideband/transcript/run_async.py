"""The asynchronous driver: `batch_plan` on the worker's asyncio connection
(sideband.transcript.connect), each round pipelined: one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from django.utils import timezone

from sessions_app.models import Call
from sideband.capture import Op
from sideband.transcript.outcomes import REFUSED, PlanOutcome
from sideband.transcript.plan import batch_plan


async def batch_run_async(
    aconn: psycopg.AsyncConnection[Any], *, writes: Sequence[tuple[Call, Sequence[Op]]]
) -> list[PlanOutcome]:
    """`batch_plan` on an asyncio connection (`connect_async`), in one transaction of its
    own, each round pipelined (one round trip): the worker's I/O loop writes without a
    thread, so without contending for the GIL, and a batch waits for the loop only twice.
    Calls whose outcome is None are left to `batch_run_sync` (Django's connection), which
    takes the turn-by-turn path for them.
    """
    plan = batch_plan(writes=writes, now=timezone.now())
    try:
        statements = next(plan)
    except StopIteration as stop:  # nothing to write
        return stop.value
    try:
        async with aconn.pipeline(), aconn.transaction():
            while True:
                cursors = [aconn.cursor() for _ in statements]
                for cursor, statement in zip(cursors, statements, strict=True):
                    await cursor.execute(statement.sql, statement.params)
                rows = [await cursor.fetchall() for cursor in cursors]
                try:
                    statements = plan.send(rows)
                except StopIteration as stop:
                    outcomes = stop.value
                    break
    except REFUSED as exc:
        # The transaction is rolled back: nothing of the batch is written.
        try:
            plan.throw(exc)
        except StopIteration as stop:
            return stop.value
        raise
    return outcomes
