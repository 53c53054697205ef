"""The connection owner: one per worker process, holding every sideband socket the process owns.

One process holds many calls; no process, and no thread, per call. Everything hot runs on one
asyncio **I/O loop** thread, so nothing on the hot path contends for the GIL (threads did: each
socket read and each Postgres round trip waited for the GIL again, and the loop fell behind):

- per call a coroutine (`connection.CallConnection`, the `websockets` client) reads frames,
  runs the pure capture (`capture_frame`), pushes transcript deltas to the page, answers
  `ItemMissing` with `conversation.item.retrieve`, and queues turn writes (`jobs`);
- the **pusher** (sideband.push.Pusher) numbering and sending live messages.

A few **writer** coroutines (`writers`, settings.SIDEBAND_WRITERS) run on a **writers' loop**
thread of their own (settings.SIDEBAND_WRITER_LOOP), so a batch's round trips never wait
behind the socket reads; each has its own asyncio Postgres connection, calls are sharded over
them by call id (one call's writes stay in order), and a writer drains its queue in batches,
each one transaction of two pipelined round trips (sideband.transcript.batch_run_async),
whatever the number of calls. Past its capacity or lag threshold (`admission`) the process
claims no new call.

Off the loop: one **ORM thread** (`orm_thread`) for what needs Django's ORM (a recovered item
placed between two turns, call ends, embedded mode's SQLite), and one **lease thread**
(`lease`): every SIDEBAND_POLL_S one query tells which calls the process still owns (a newer
generation, an ended call or a lost lease closes the socket within ~1 s), every
SIDEBAND_HEARTBEAT_S one UPDATE extends every held lease, the garbage collector is paced
(`gc_pacing`), admission is checked and the figures exported (`stats`). It alone switches
the worker's consumption of the queue (`add_consumer` / `cancel_consumer`), re-sent every few
seconds so a lost control message heals.

Recovery never relies on broker redelivery: a dead owner's leases expire and the reconciler
(`sideband.tasks.calls_reconcile`) dispatches the calls again.

Modules, each one concern:

- `spec`: `CallSpec`, what the claiming task loads for a call;
- `connection`: one call's socket (connect, read, capture, reconnect, close);
- `retry`: backoff for reconnects and database retries;
- `jobs`: the records a socket hands its writer (`TurnsJob`, `EndJob`);
- `writers`: the writer coroutines and their asyncio Postgres connections;
- `orm_thread`: Django's ORM off the loop, retried while the database is away;
- `lease`: the lease thread (which calls are still ours, heartbeat);
- `admission`: whether the process may claim another call (health against capacity);
- `upkeep`: what a held call needs beside reading (gap fill from the page's hints, spoken turns
  without a transcript, abandoned calls);
- `stats`, `gc_pacing`: the process's figures and Prometheus metrics; short collector pauses;
- `owner`: `SidebandOwner`, which holds the calls and starts and stops all of the above;
- `process`: the process's one owner (`owner_get`, `owner_current`, `owner_reset`).

Nothing here imports `sideband.tasks`: `SidebandOwner.shutdown` returns the calls it released
and the task module dispatches them again.
"""
