"""The ceilings under the sideband worker, each measured alone (no sockets, no worker):

    python bench/ceilings.py [--calls 500] [--seconds 15] [--writers 2] [--fresh-db]

- write: the batch statement (`sideband.transcript.batch_run_async`, what the writers run) on
  --writers asyncio Postgres connections, each writing batches of its share of --calls calls
  (one finished turn per call per batch) back to back for --seconds: batches/s, turns/s and
  ms per batch. The most turns per second this Postgres commits with the worker's statement.
- push: the worker's pusher (`sideband.push.Pusher`) sending `turn` messages to --calls
  sessions' groups (one channel each) through Redis, as fast as they are queued: messages/s
  and group sends/s.

Needs DATABASE_URL (Postgres; created when missing) and REDIS_URL. The last line of output is
one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import database_ensure, log, percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--fresh-db", action="store_true")
    args = parser.parse_args()
    database_ensure(os.environ.get("DATABASE_URL", ""), fresh=args.fresh_db)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # The benchmark's own process is a development tool (the workers it starts run DEBUG=0).
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    figures = {"calls": args.calls, "seconds": args.seconds, "writers": args.writers}
    figures.update(write_ceiling(args))
    figures.update(push_ceiling(args))
    print(json.dumps(figures), flush=True)


def write_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    from sessions_app.models import Call, Session
    from sideband.capture import TurnUpsert
    from sideband.transcript import batch_run_async, connect_async, connect_params

    sessions = Session.objects.bulk_create(
        [
            Session(model="gpt-realtime", voice="marin", owner_hash="ceiling")
            for _ in range(args.calls)
        ]
    )
    calls = Call.objects.bulk_create(
        [Call(call_id=f"rtc_ceiling_{uuid.uuid4().hex}", session=s, generation=1) for s in sessions]
    )
    params = connect_params()
    batch_ms: list[float] = []
    turns = [0]

    async def writer(share: list[Call]) -> None:
        aconn = await connect_async(params)
        previous: dict[int, str | None] = {c.pk: None for c in share}
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            writes = []
            for call in share:
                item = f"item_{uuid.uuid4().hex[:20]}"
                op = TurnUpsert(
                    item_id=item,
                    role="assistant",
                    previous_item_id=previous[call.pk],
                    text="A finished answer of a typical length, some forty words long. " * 3,
                    status="completed",
                )
                previous[call.pk] = item
                writes.append((call, [op]))
            started = time.monotonic()
            await batch_run_async(aconn, writes=writes)
            batch_ms.append((time.monotonic() - started) * 1000)
            turns[0] += len(writes)
        await aconn.close()

    async def run() -> None:
        shares = [calls[i :: args.writers] for i in range(args.writers)]
        await asyncio.gather(*(writer(share) for share in shares))

    log(f"write ceiling: {args.writers} writers, {args.calls} calls, {args.seconds} s")
    started = time.monotonic()
    asyncio.run(run())
    span = time.monotonic() - started
    return {
        "write_batches_per_s": round(len(batch_ms) / span, 1),
        "write_turns_per_s": round(turns[0] / span, 1),
        "write_calls_per_batch": args.calls // args.writers,
        "write_p50_batch_ms": percentile(batch_ms, 50),
        "write_p99_batch_ms": percentile(batch_ms, 99),
    }


def push_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from sessions_app.push import session_group
    from sideband.push import Pusher

    layer = get_channel_layer()
    assert layer is not None
    session_ids = [str(uuid.uuid4()) for _ in range(args.calls)]
    for session_id in session_ids:
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(session_group(session_id), channel)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    pusher = Pusher(loop=loop)
    pusher.start()
    log(f"push ceiling: {args.calls} sessions, {args.seconds} s")
    pushed = 0
    started = time.monotonic()
    deadline = started + args.seconds
    while time.monotonic() < deadline:
        # Keep at most a few thousand messages queued: the rate sent, not a backlog.
        if pushed - pusher.sent - pusher.failed > 5000:
            time.sleep(0.005)
            continue
        for session_id in session_ids:
            pusher.push(session_id, {"type": "turn", "turn": {"itemId": "i", "text": "x" * 200}})
        pushed += len(session_ids)
    pusher.stop(timeout=30)
    span = time.monotonic() - started
    loop.call_soon_threadsafe(loop.stop)
    return {
        "push_messages_per_s": round(pusher.sent / span, 1),
        "push_group_sends_per_s": round(pusher.group_sends / span, 1),
        "push_failed": pusher.failed,
        "push_p99_queue_to_send_ms": percentile(list(pusher.latency_ms), 99),
    }


if __name__ == "__main__":
    main()
