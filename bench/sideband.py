"""Benchmark: sideband worker processes holding many calls.

    python bench/sideband.py --calls 1000 --workers 2 [--fresh-db] [--duration 60]
        [--turn-interval 4] [--delta-interval 0.2] [--writer-loop own|io]
    python bench/sideband.py --calls 1000 --overload [--capacity 500] [--second-after 20]

Creates the database of DATABASE_URL when missing (--fresh-db: drops it and creates it again,
so a run starts from an empty, never-analysed database), migrates it, starts the emulator and
--workers `celery worker -P threads` processes on a queue of its own, registers N emulator
synthetic calls (a scripted conversation: a turn every --turn-interval seconds, assistant
deltas every --delta-interval seconds, text and spoken turns alternating), and measures over
--duration seconds of steady streaming:

- connections: sockets the workers hold;
- events_per_s: server events the workers read per second;
- p50/p99_commit_ms: from the moment the emulator sent an assistant item's
  `conversation.item.done` (as seen by a bare reader) to the turn's commit in Postgres
  (`completed_at`, stamped in the committing transaction); turns_measured = such items in the
  window, turns_committed = those of them committed (a turn never committed is not in p99);
- p99_push_ms: from the same moment to the turn's `turn` message arriving from the Channels
  layer (what the page's consumer forwards), for the turns of the --push-sessions (100)
  sessions the listener follows (all of them when --calls is smaller);
- rss_per_conn_mb: (workers' RSS with N calls - idle workers' RSS) / N;
- ceiling_events_per_s: the same streams, read in the same run by bare websocket-client
  threads doing nothing else (in a separate process), and ratio = events_per_s / ceiling;
- oldest_unwritten_max_ms: the age of the oldest turn record held in a worker's memory and not
  yet written, at its worst (sampled every second);
- processes: the same per worker process (its own view: frame received -> commit), with its
  event-loop lag at worst and the claims it refused.

--overload: ONE worker with SIDEBAND_MAX_CALLS = --capacity (N/2) is offered N calls; after
--second-after seconds a second worker starts. Reports the first phase (the first worker's
calls only: commit lag, turns measured/committed), how long the second took to hold the rest,
and then the usual window over all N calls.

The last line of output is one JSON object with these figures. Needs DATABASE_URL (Postgres)
and REDIS_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import database_ensure, log, percentile  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used: CPU time is what a noisy machine
    changes least, so the cost per event is compared by it."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def services_cpu_s() -> float:
    """CPU seconds used so far by every Postgres and Redis server process of the machine."""
    used = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                comm = (proc / "comm").read_text().strip()
                if comm.startswith(("postgres", "redis-server")):
                    used += cpu_s(int(proc.name))
            except (OSError, ValueError):  # the process ended
                continue
    return used


def machine_cpu_s(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process, and by Postgres plus Redis."""
    return {**{name: cpu_s(pid) for name, pid in pids.items()}, "postgres+redis": services_cpu_s()}


# --- The bare readers (a subprocess): the ceiling -----------------------------------------------


def readers_main(args: argparse.Namespace) -> None:
    """Read every call's sideband with bare websocket-client threads; count frames, and stamp
    each assistant `conversation.item.done` with its arrival time."""
    import websocket

    # Bare: default interpreter settings, threads that only count (and stamp `.done` arrivals).
    threading.stack_size(256 * 1024)
    call_ids = json.loads(Path(args.calls_file).read_text())
    counts = [0] * len(call_ids)
    done_at: dict[str, tuple[float, str]] = {}
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
                done_at[event["item"]["id"]] = (time.time(), call_id)

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

        from sessions_app.push import session_group

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


def workers_stats(redis_client: Any) -> dict[str, dict[str, Any]]:
    """Each worker process's exported figures (sideband.owner.stats), by owner id."""
    keys = redis_client.keys("sideband:stats:*")
    figures = [json.loads(raw) for raw in redis_client.mget(keys) if raw] if keys else []
    return {f["owner"]: f for f in figures}


def total(stats: dict[str, dict[str, Any]], key: str) -> float:
    return sum(float(f.get(key) or 0) for f in stats.values())


def wait(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


class WorkerProcess:
    """One `celery worker -P threads` process consuming the benchmark's queue."""

    def __init__(self, *, index: int, queue: str, env: dict[str, str], tmp: Path) -> None:
        self.log_path = tmp / f"worker-{index}.log"
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue,
                    "-P", "threads", "-c", "8", "-n", f"bench{index}-{queue}@%h",
                    "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO",
                ],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.idle_rss = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self) -> None:
        wait(
            lambda: b" ready." in self.log_path.read_bytes() or self.proc.poll() is not None,
            60,
            "worker ready",
        )
        if self.proc.poll() is not None:
            raise RuntimeError(self.log_path.read_text(errors="replace"))
        self.idle_rss = rss_mb(self.pid)

    def stats(self, all_stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return next((f for f in all_stats.values() if f.get("pid") == self.pid), {})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Sampler:
    """Samples every worker's exported figures each second during a window: the oldest
    in-memory (unwritten) record age and the event-loop lag, at their worst."""

    def __init__(self, redis_client: Any) -> None:
        self.redis = redis_client
        self.oldest_unwritten_ms: dict[int, float] = {}
        self.loop_lag_ms: dict[int, float] = {}
        self.loop_lag_series: dict[int, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for f in workers_stats(self.redis).values():
                pid = int(f.get("pid") or 0)
                for sink, key in (
                    (self.oldest_unwritten_ms, "oldest_unwritten_ms"),
                    (self.loop_lag_ms, "loop_lag_ms"),
                ):
                    sink[pid] = max(sink.get(pid, 0.0), float(f.get(key) or 0))
                self.loop_lag_series.setdefault(pid, []).append(float(f.get("loop_lag_ms") or 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--turn-interval", type=float, default=4.0)
    parser.add_argument("--delta-interval", type=float, default=0.2)
    parser.add_argument("--writers", type=int, default=None, help="default: SIDEBAND_WRITERS")
    parser.add_argument(
        "--writer-loop", choices=("own", "io"), default=None, help="SIDEBAND_WRITER_LOOP"
    )
    parser.add_argument(
        "--push-sessions", type=int, default=100, help="sessions the push listener follows"
    )
    parser.add_argument(
        "--fresh-db", action="store_true", help="drop and create the database first"
    )
    parser.add_argument(
        "--overload",
        action="store_true",
        help="one worker with --capacity calls, a second one --second-after seconds later",
    )
    parser.add_argument("--capacity", type=int, default=None, help="default: calls // 2")
    parser.add_argument("--second-after", type=float, default=20.0)
    parser.add_argument("--takeover-timeout", type=float, default=60.0)
    parser.add_argument("--readers-for", dest="calls_file")
    parser.add_argument("--ws-base")
    parser.add_argument("--api-key")
    parser.add_argument("--status-file")
    parser.add_argument("--out-file")
    args = parser.parse_args()
    if args.calls_file:
        readers_main(args)
        return

    database_url = os.environ.get("DATABASE_URL", "")
    assert database_url.startswith("postgres"), "needs DATABASE_URL (Postgres)"
    database_ensure(database_url, fresh=args.fresh_db)
    queue = f"sideband-bench-{uuid.uuid4().hex[:8]}"
    os.environ["SIDEBAND_QUEUE"] = queue
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # The benchmark's own process is a development tool (the workers it starts run DEBUG=0).
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from realtime_emulator.testing import EmulatorServer
    from sessions_app.calls import call_register
    from sessions_app.crypto import secret_encrypt, sha256_hex
    from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn

    assert settings.REDIS_URL, "needs REDIS_URL"
    call_command("migrate", verbosity=0)
    redis_client = redis.Redis.from_url(settings.REDIS_URL)
    for key in redis_client.keys("sideband:stats:*"):
        redis_client.delete(key)
    n = args.calls
    capacity = args.capacity or n // 2
    phase_s = args.duration + (args.second_after if args.overload else 0.0)
    turns_per_call = int((phase_s + 40 + 2 * args.turn_interval) / args.turn_interval) + 2
    tmp = Path(f"/tmp/bench-sideband-{uuid.uuid4().hex[:6]}")  # noqa: S108 - scratch files
    tmp.mkdir()

    with EmulatorServer(extra_args=["--log-level", "WARNING"]) as emulator:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": emulator.api_base,
            "OPENAI_API_KEY": emulator.api_key,
            "SIDEBAND_QUEUE": queue,
            "SIDEBAND_WRITERS": str(args.writers or settings.SIDEBAND_WRITERS),
            "SIDEBAND_WRITER_LOOP": args.writer_loop or settings.SIDEBAND_WRITER_LOOP,
            # DEBUG off needs a real key; secrets decrypt with the keys passed next.
            "SECRET_KEY": f"bench-{uuid.uuid4().hex}{uuid.uuid4().hex}",
            "SECRET_ENCRYPTION_KEYS": ",".join(settings.SECRET_ENCRYPTION_KEYS),
            "LOG_LEVEL": "WARNING",
            # As in production: no per-query debug bookkeeping.
            "DEBUG": "0",
        }
        if args.overload:
            env["SIDEBAND_MAX_CALLS"] = str(capacity)
        else:
            env.setdefault("SIDEBAND_MAX_CALLS", str(n))  # capacity is not what is measured
        count = 1 if args.overload else args.workers
        workers = [WorkerProcess(index=i, queue=queue, env=env, tmp=tmp) for i in range(count)]
        readers: subprocess.Popen[bytes] | None = None
        listener: PushListener | None = None
        overload: dict[str, Any] = {}
        try:
            for worker in workers:
                worker.wait_ready()
            log(f"{count} worker(s) ready ({[w.pid for w in workers]}); creating {n} calls")
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
            t_register = time.monotonic()
            # As pages do: many at once (each registration is a transaction and a dispatch).
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda pair: call_register(session=pair[0], call_id=pair[1]["call_id"]),
                        zip(sessions, calls, strict=True),
                    )
                )
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

            held = min(n, capacity) if args.overload else n
            try:
                wait(
                    lambda: total(workers_stats(redis_client), "connections") == held,
                    180,
                    "worker sockets",
                )
            except TimeoutError:
                # Workers refusing calls (their lag past SIDEBAND_MAX_LAG_S) is a result too:
                # measured with what they hold, `connections` says how many.
                held = int(total(workers_stats(redis_client), "connections"))
                log(f"only {held} of {n} calls held after 180 s; measuring those")
            wait(lambda: readers_status().get("up") == n, 120, "bare readers")
            log(f"{held} attached after {time.monotonic() - t_register:.1f} s")
            attached_rss = sum(rss_mb(w.pid) for w in workers)
            idle_rss = sum(w.idle_rss for w in workers)
            # Start the scripts spread over one turn interval, so the load is even.
            t_start = time.monotonic()

            def script_start(index: int, call_id: str) -> None:
                delay = t_start + index * args.turn_interval / n - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                control(emulator.base_url, "POST", f"/_emulator/calls/{call_id}/start", {})

            # Several at once: one request at a time fell behind the schedule on a busy machine.
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(script_start, range(n), call_ids))
            time.sleep(max(0.0, t_start + args.turn_interval - time.monotonic()))
            if args.overload:
                # Phase 1: one worker at capacity, the rest of the calls refused (queued).
                first_calls = set(
                    Call.objects.filter(lease_owner__contains=f":{workers[0].pid}:").values_list(
                        "call_id", flat=True
                    )
                )
                log(
                    f"overload: first worker holds {len(first_calls)};"
                    f" the second starts in {args.second_after} s"
                )
                p0 = time.time()
                with Sampler(redis_client) as phase1_sampler:
                    time.sleep(args.second_after)
                p1 = time.time()
                second = WorkerProcess(index=1, queue=queue, env=env, tmp=tmp)
                workers.append(second)
                t_second = time.monotonic()
                second.wait_ready()
                try:
                    wait(
                        lambda: total(workers_stats(redis_client), "connections") == n,
                        args.takeover_timeout,
                        "the second worker to take the refused calls",
                        interval=0.2,
                    )
                except TimeoutError:
                    # Reported, not fatal: the second worker refusing calls (too busy) is a
                    # result too.
                    log(f"overload: not all {n} calls held after {args.takeover_timeout} s")
                overload = {
                    "capacity": capacity,
                    "phase1_window": (p0, p1),
                    "phase1_calls": first_calls,
                    "phase1_oldest_unwritten_ms": phase1_sampler.oldest_unwritten_ms,
                    "takeover_s": round(time.monotonic() - t_second, 1),
                    "held_after_takeover": total(workers_stats(redis_client), "connections"),
                }
                log(f"overload: all {n} held {overload['takeover_s']} s after the second started")
                time.sleep(2 * args.turn_interval)  # the taken-over calls' turns under way
            log("measuring")
            s0, r0, t0 = workers_stats(redis_client), readers_status(), time.time()
            cpu0 = {w.pid: cpu_s(w.pid) for w in workers}
            assert emulator.process is not None
            others = {
                "emulator": emulator.process.pid,
                "bare_readers": readers.pid,
                "bench (listener)": os.getpid(),
            }
            machine0 = machine_cpu_s(others)
            with Sampler(redis_client) as sampler:
                time.sleep(args.duration)
            s1, r1, t1 = workers_stats(redis_client), readers_status(), time.time()
            cpu1 = {w.pid: cpu_s(w.pid) for w in workers}
            machine1 = machine_cpu_s(others)
            window_start, window_end = t0, t1
            peak_rss = {w.pid: rss_mb(w.pid) for w in workers}
            # Let the last turns of the window commit and push.
            time.sleep(3)
            readers.send_signal(signal.SIGTERM)
            readers.wait(60)
            out = json.loads((tmp / "readers-out.json").read_text())
            listener.stop()
        finally:
            if readers is not None and readers.poll() is None:
                readers.kill()
            for worker in workers:
                worker.stop()

    def commit_figures(start: float, end: float, only: set[str] | None = None) -> dict[str, Any]:
        """Commit lag of the assistant turns whose `.done` a bare reader saw in [start, end]
        (of the calls in `only`, if given): from that moment to the turn's `completed_at`."""
        done_at = {
            item: t
            for item, (t, call_id) in out["done_at"].items()
            if start <= t <= end and (only is None or call_id in only)
        }
        completed = dict(
            TranscriptTurn.objects.filter(item_id__in=list(done_at)).values_list(
                "item_id", "completed_at"
            )
        )
        commit_ms = [
            (at.timestamp() - t) * 1000
            for item, t in done_at.items()
            if (at := completed.get(item)) is not None
        ]
        return {
            "p50_commit_ms": percentile(commit_ms, 50),
            "p99_commit_ms": percentile(commit_ms, 99),
            "turns_measured": len(done_at),
            "turns_committed": len(commit_ms),
        }

    window = commit_figures(window_start, window_end)
    done_items = [
        item for item, (t, _c) in out["done_at"].items() if window_start <= t <= window_end
    ]
    rows = TranscriptTurn.objects.filter(item_id__in=done_items).values_list(
        "item_id", "session__public_id"
    )
    listened = set(listener.session_ids)
    sampled = {item for item, session in rows if str(session) in listened}
    push_ms = [
        (listener.turn_at[item] - out["done_at"][item][0]) * 1000
        for item in sampled
        if item in listener.turn_at
    ]
    span = t1 - t0
    worker_events = (total(s1, "events") - total(s0, "events")) / span
    ceiling = (r1.get("events", 0) - r0.get("events", 0)) / (r1.get("t", t1) - r0.get("t", t0))
    processes = []
    for worker in workers:
        a, b = worker.stats(s0), worker.stats(s1)
        events = (b.get("events") or 0) - (a.get("events") or 0)
        cpu = cpu1[worker.pid] - cpu0[worker.pid]
        lags = sampler.loop_lag_series.get(worker.pid, [])
        processes.append(
            {
                "pid": worker.pid,
                "connections": b.get("connections"),
                "events_per_s": round(((b.get("events") or 0) - (a.get("events") or 0)) / span, 1),
                "p99_recv_to_commit_ms": b.get("p99_commit_ms"),
                "p99_push_send_ms": b.get("p99_push_send_ms"),
                "oldest_unwritten_max_ms": sampler.oldest_unwritten_ms.get(worker.pid),
                "loop_lag_max_ms": sampler.loop_lag_ms.get(worker.pid),
                "loop_lag_p50_ms": percentile(lags, 50) if lags else None,
                "cpu_s": round(cpu, 1),
                "cpu_ms_per_1k_events": round(cpu * 1e6 / events, 1) if events else None,
                "refused": b.get("refused"),
                "write_batches": (b.get("batches") or 0) - (a.get("batches") or 0),
                "write_busy_s": round((b.get("write_s") or 0) - (a.get("write_s") or 0), 1),
                "orm_fallbacks": (b.get("orm_fallbacks") or 0) - (a.get("orm_fallbacks") or 0),
                "orm_fallback_s": round(
                    (b.get("orm_fallback_s") or 0) - (a.get("orm_fallback_s") or 0), 1
                ),
                "rss_mb": round(peak_rss[worker.pid], 1),
                "reconnects": b.get("reconnects"),
            }
        )
    figures: dict[str, Any] = {
        "calls": n,
        "workers": len(workers),
        "connections": total(s1, "connections"),
        "duration_s": round(span, 1),
        "events_per_s": round(worker_events, 1),
        **window,
        "p99_push_ms": percentile(push_ms, 99),
        "rss_per_conn_mb": round((attached_rss - idle_rss) / held, 3),
        "ceiling_events_per_s": round(ceiling, 1),
        "ratio": round(worker_events / ceiling, 3) if ceiling else None,
        "oldest_unwritten_max_ms": max(sampler.oldest_unwritten_ms.values(), default=None),
        "push_sessions": len(listened),
        "turns_push_sampled": len(sampled),
        "turns_pushed": len(push_ms),
        "group_sends": total(s1, "group_sends") - total(s0, "group_sends"),
        "push_failed": total(s1, "push_failed"),
        "listener_errors": listener.errors,
        "processes": processes,
        # Cores used by each part of the run over the window (the workers: `processes`).
        "cores_used": {
            name: round((machine1[name] - machine0[name]) / span, 2) for name in machine0
        },
    }
    if overload:
        p0, p1 = overload["phase1_window"]
        phase1 = commit_figures(p0, p1, only=overload["phase1_calls"])
        figures["overload"] = {
            "capacity": overload["capacity"],
            "first_worker_held": len(overload["phase1_calls"]),
            "first_worker_refused": processes[0]["refused"],
            "phase1": {
                **phase1,
                "oldest_unwritten_max_ms": max(
                    overload["phase1_oldest_unwritten_ms"].values(), default=None
                ),
            },
            "second_worker_took_rest_s": overload["takeover_s"],
            "held_after_takeover": overload["held_after_takeover"],
            "turns_lost_after_takeover": window["turns_measured"] - window["turns_committed"],
        }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
