"""Benchmark: one sideband worker process holding many calls.

    python bench/sideband.py --calls 1000 [--duration 60] [--turn-interval 4] [--delta-interval 0.2]

Starts the emulator and ONE `celery worker -P threads` process, registers N emulator synthetic
calls (a scripted conversation: a turn every --turn-interval seconds, assistant deltas every
--delta-interval seconds, text and spoken turns alternating), and measures over --duration
seconds of steady streaming:

- connections: sockets the worker holds;
- events_per_s: server events the worker read per second;
- p50/p99_commit_ms: from the moment the emulator sent an assistant item's
  `conversation.item.done` (as seen by a bare reader) to the turn's commit in Postgres
  (`completed_at`, stamped in the committing transaction);
- p99_push_ms: from the same moment to the turn's `turn` message arriving from the Channels
  layer (what the page's consumer forwards), for the turns of the --push-sessions (100)
  sessions the listener follows (all of them when --calls is smaller);
- rss_per_conn_mb: (worker RSS with N calls - idle worker RSS) / N;
- ceiling_events_per_s: the same streams, read in the same run by bare websocket-client
  threads doing nothing else (in a separate process), and ratio = events_per_s / ceiling.

The last line of output is one JSON object with these figures. Needs DATABASE_URL (Postgres)
and REDIS_URL; it migrates the database and uses a queue of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))], 1)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# --- The bare readers (a subprocess): the ceiling -----------------------------------------------


def readers_main(args: argparse.Namespace) -> None:
    """Read every call's sideband with bare websocket-client threads; count frames, and stamp
    each assistant `conversation.item.done` with its arrival time."""
    import websocket

    # Bare: default interpreter settings, threads that only count (and stamp `.done` arrivals).
    threading.stack_size(256 * 1024)
    call_ids = json.loads(Path(args.calls_file).read_text())
    counts = [0] * len(call_ids)
    done_at: dict[str, float] = {}
    stop = threading.Event()
    connected = [0]
    lock = threading.Lock()

    def read(index: int, call_id: str) -> None:
        ws = websocket.create_connection(
            f"{args.ws_base}/realtime?call_id={call_id}",
            header=[f"Authorization: Bearer {args.api_key}"],
            timeout=30,
            skip_utf8_validation=True,
        )
        ws.settimeout(1.0)
        with lock:
            connected[0] += 1
        while not stop.is_set():
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:
                return
            counts[index] += 1
            if '"conversation.item.done"' in frame and '"assistant"' in frame:
                event = json.loads(frame)
                done_at[event["item"]["id"]] = time.time()

    threads = [
        threading.Thread(target=read, args=(i, c), daemon=True) for i, c in enumerate(call_ids)
    ]
    for thread in threads:
        thread.start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    status = Path(args.status_file)
    while not stop.is_set():
        # Write-then-rename: the orchestrator never reads a half-written file.
        scratch = status.with_suffix(".tmp")
        scratch.write_text(
            json.dumps({"t": time.time(), "events": sum(counts), "up": connected[0]})
        )
        scratch.replace(status)
        stop.wait(0.25)
    Path(args.out_file).write_text(json.dumps({"done_at": done_at, "events": sum(counts)}))


# --- The orchestrator -----------------------------------------------------------------------------


class PushListener:
    """Receives the session groups' messages from the Channels layer (as page consumers do)."""

    def __init__(self, session_ids: list[str], *, channels: int = 25) -> None:
        self.session_ids = session_ids
        self.channels = channels
        self.turn_at: dict[str, float] = {}
        self.messages = 0
        self.errors = 0
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self._stop = False

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(120)

    def stop(self) -> None:
        self._stop = True

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from channels.layers import get_channel_layer

        from sideband.push import session_group

        layer = get_channel_layer()
        assert layer is not None
        names = [await layer.new_channel() for _ in range(self.channels)]
        for i, session_id in enumerate(self.session_ids):
            await layer.group_add(session_group(session_id), names[i % self.channels])
        self.ready.set()
        await asyncio.gather(*(self._receive(layer, name) for name in names))

    async def _receive(self, layer: Any, name: str) -> None:
        # No timeout around receive(): cancelling it mid-read breaks the layer's connection.
        while not self._stop:
            try:
                message = await layer.receive(name)
            except Exception as exc:  # e.g. a Redis read timeout under load: keep listening
                self.errors += 1
                log(f"push listener: {type(exc).__name__}")
                continue
            now = time.time()
            self.messages += 1
            for payload in message.get("payloads") or [message.get("payload", {})]:
                if payload.get("type") == "turn":
                    turn = payload["turn"]
                    if turn["role"] == "assistant" and turn["status"] == "completed":
                        self.turn_at.setdefault(turn["itemId"], now)


def control(base: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def worker_stats(redis_client: Any) -> dict[str, Any]:
    keys = redis_client.keys("sideband:stats:*")
    figures = [json.loads(raw) for raw in redis_client.mget(keys)] if keys else []
    return figures[0] if figures else {}


def wait(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--turn-interval", type=float, default=4.0)
    parser.add_argument("--delta-interval", type=float, default=0.2)
    parser.add_argument("--writers", type=int, default=None, help="default: SIDEBAND_WRITERS")
    parser.add_argument(
        "--push-sessions", type=int, default=100, help="sessions the push listener follows"
    )
    parser.add_argument("--readers-for", dest="calls_file")
    parser.add_argument("--ws-base")
    parser.add_argument("--api-key")
    parser.add_argument("--status-file")
    parser.add_argument("--out-file")
    args = parser.parse_args()
    if args.calls_file:
        readers_main(args)
        return

    queue = f"sideband-bench-{uuid.uuid4().hex[:8]}"
    os.environ["SIDEBAND_QUEUE"] = queue
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from realtime_emulator.testing import EmulatorServer
    from sessions_app.crypto import secret_encrypt, sha256_hex
    from sessions_app.models import ClientSecret, Session, TranscriptTurn
    from sessions_app.services import call_register

    assert settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), "needs Postgres"
    assert settings.REDIS_URL, "needs REDIS_URL"
    call_command("migrate", verbosity=0)
    redis_client = redis.Redis.from_url(settings.REDIS_URL)
    for key in redis_client.keys("sideband:stats:*"):
        redis_client.delete(key)
    n = args.calls
    turns_per_call = int((args.duration + 2 * args.turn_interval) / args.turn_interval) + 2
    tmp = Path(f"/tmp/bench-sideband-{uuid.uuid4().hex[:6]}")  # noqa: S108 - scratch files
    tmp.mkdir()

    with EmulatorServer(extra_args=["--log-level", "WARNING"]) as emulator:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": emulator.api_base,
            "OPENAI_API_KEY": emulator.api_key,
            "SIDEBAND_QUEUE": queue,
            "SIDEBAND_WRITERS": str(args.writers or settings.SIDEBAND_WRITERS),
            # DEBUG off needs a real key; secrets decrypt with the keys passed next.
            "SECRET_KEY": f"bench-{uuid.uuid4().hex}{uuid.uuid4().hex}",
            "SECRET_ENCRYPTION_KEYS": ",".join(settings.SECRET_ENCRYPTION_KEYS),
            "LOG_LEVEL": "WARNING",
            # As in production: no per-query debug bookkeeping.
            "DEBUG": "0",
        }
        worker_log = (tmp / "worker.log").open("wb")
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue,
                "-P", "threads", "-c", "8", "-n", f"bench-{queue}@%h", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "-l", "INFO",
            ],
            cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        readers: subprocess.Popen[bytes] | None = None
        listener: PushListener | None = None
        try:
            time.sleep(0.5)
            wait(lambda: worker.poll() is None and rss_mb(worker.pid) > 40, 60, "worker start")
            wait(
                lambda: b"ready" in (tmp / "worker.log").read_bytes() or worker.poll() is not None,
                60,
                "worker ready",
            )
            log(f"worker pid {worker.pid} ready; creating {n} synthetic calls")
            calls = control(
                emulator.base_url,
                "POST",
                "/_emulator/synthetic-calls",
                {
                    "count": n,
                    "turns": turns_per_call,
                    "turn_interval_s": args.turn_interval,
                    "delta_interval_s": args.delta_interval,
                    "mode": "mixed",
                    "start": "manual",
                },
            )["calls"]
            sessions = Session.objects.bulk_create(
                [Session(model="gpt-realtime", voice="marin", owner_hash="bench") for _ in calls]
            )
            ClientSecret.objects.bulk_create(
                [
                    ClientSecret(
                        session=session,
                        kind="create",
                        value_encrypted=secret_encrypt(c["client_secret"]),
                        value_hash=sha256_hex(c["client_secret"]),
                        expires_at=timezone.now() + dt.timedelta(hours=1),
                    )
                    for session, c in zip(sessions, calls, strict=True)
                ]
            )
            session_ids = [str(s.public_id) for s in sessions]
            # The page side is sampled: one listener process receiving every session's deltas
            # would cost this shared machine more CPU than the worker it measures.
            listener = PushListener(session_ids[: args.push_sessions])
            listener.start()
            idle_rss = rss_mb(worker.pid)
            t_register = time.monotonic()
            for session, c in zip(sessions, calls, strict=True):
                call_register(session=session, call_id=c["call_id"])
            log(f"registered {n} calls in {time.monotonic() - t_register:.1f} s")
            call_ids = [c["call_id"] for c in calls]
            (tmp / "calls.json").write_text(json.dumps(call_ids))
            readers = subprocess.Popen(
                [
                    sys.executable, __file__, "--readers-for", str(tmp / "calls.json"),
                    "--ws-base", emulator.ws_base, "--api-key", emulator.api_key,
                    "--status-file", str(tmp / "readers.json"),
                    "--out-file", str(tmp / "readers-out.json"),
                ],
                cwd=ROOT,
            )  # fmt: skip

            def readers_status() -> dict[str, Any]:
                try:
                    return dict(json.loads((tmp / "readers.json").read_text()))
                except (OSError, ValueError):
                    return {}

            wait(lambda: worker_stats(redis_client).get("connections") == n, 180, "worker sockets")
            wait(lambda: readers_status().get("up") == n, 120, "bare readers")
            log(f"all attached after {time.monotonic() - t_register:.1f} s")
            attached_rss = rss_mb(worker.pid)
            # Start the scripts spread over one turn interval, so the load is even.
            t_start = time.monotonic()
            for i, call_id in enumerate(call_ids):
                delay = t_start + i * args.turn_interval / n - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                control(emulator.base_url, "POST", f"/_emulator/calls/{call_id}/start", {})
            time.sleep(max(0.0, t_start + args.turn_interval - time.monotonic()))
            log("all scripts started; measuring")
            s0, r0, t0 = worker_stats(redis_client), readers_status(), time.time()
            time.sleep(args.duration)
            s1, r1, t1 = worker_stats(redis_client), readers_status(), time.time()
            window_start, window_end = t0, t1
            peak_rss = rss_mb(worker.pid)
            # Let the last turns of the window commit and push.
            time.sleep(3)
            readers.send_signal(signal.SIGTERM)
            readers.wait(60)
            out = json.loads((tmp / "readers-out.json").read_text())
            listener.stop()
        finally:
            if readers is not None and readers.poll() is None:
                readers.kill()
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()

    done_at = {k: v for k, v in out["done_at"].items() if window_start <= v <= window_end}
    rows = TranscriptTurn.objects.filter(item_id__in=list(done_at)).values_list(
        "item_id", "completed_at", "session__public_id"
    )
    completed = {item: at for item, at, _session in rows}
    listened = set(listener.session_ids)
    sampled = {item for item, _at, session in rows if str(session) in listened}
    commit_ms = []
    for item, t in done_at.items():
        at = completed.get(item)
        if at is not None:
            commit_ms.append((at.timestamp() - t) * 1000)
    push_ms = [
        (listener.turn_at[item] - t) * 1000
        for item, t in done_at.items()
        if item in listener.turn_at and item in sampled
    ]
    worker_events = (s1.get("events", 0) - s0.get("events", 0)) / (t1 - t0)
    ceiling = (r1.get("events", 0) - r0.get("events", 0)) / (r1.get("t", t1) - r0.get("t", t0))
    figures = {
        "calls": n,
        "connections": s1.get("connections"),
        "duration_s": round(t1 - t0, 1),
        "events_per_s": round(worker_events, 1),
        "p50_commit_ms": percentile(commit_ms, 50),
        "p99_commit_ms": percentile(commit_ms, 99),
        "p99_push_ms": percentile(push_ms, 99),
        "rss_per_conn_mb": round((attached_rss - idle_rss) / n, 3),
        "ceiling_events_per_s": round(ceiling, 1),
        "ratio": round(worker_events / ceiling, 3) if ceiling else None,
        "turns_measured": len(done_at),
        "turns_committed": len(commit_ms),
        "push_sessions": len(listened),
        "turns_push_sampled": len(sampled),
        "turns_pushed": len(push_ms),
        "worker_rss_mb": round(peak_rss, 1),
        "worker_p99_recv_to_commit_ms": s1.get("p99_commit_ms"),
        "worker_p99_push_send_ms": s1.get("p99_push_send_ms"),
        "reconnects": s1.get("reconnects"),
        "write_batches": s1.get("batches", 0) - s0.get("batches", 0),
        "write_batch_calls": s1.get("batch_calls", 0) - s0.get("batch_calls", 0),
        "write_busy_s": round(s1.get("write_s", 0) - s0.get("write_s", 0), 1),
        "group_sends": s1.get("group_sends", 0) - s0.get("group_sends", 0),
        "pushed": s1.get("pushed", 0) - s0.get("pushed", 0),
        "push_failed": s1.get("push_failed"),
        "listener_errors": listener.errors,
    }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
