"""How many calls one emulator process sustains on this machine.

Starts the emulator (a subprocess on 127.0.0.1), then ramps up in bounded steps:

1. synthetic calls, each with a sideband, each playing a scripted 3-turn conversation (mixed
   text and spoken turns, a turn every 3 s, transcript deltas every 50 ms);
2. WebRTC calls (aiortc peers in this process, microphone sending silence, a sideband each),
   a typed turn every 3 s driven through the control API, deltas every 50 ms.

"Sustains" = every expected response arrives, and the p99 lateness of paced events (each
transcript delta against its schedule from `response.created`, each scripted turn start against
the script's schedule) stays under THRESHOLD_MS, as the sidebands see it; for WebRTC also every
peer receives >= 90 % of the assistant's audio frames (50 per second). The bench client shares
the machine's cores with the emulator (and with whatever else runs there: the load averages
are reported), so the figures are conservative; a step that misses gets one more attempt.

Prints one line per step, then one JSON object on the last line. The whole run is bounded
(< 3 minutes). Usage: `python bench/emulator.py [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime_emulator.browser_peer import BrowserPeer
from realtime_emulator.testing import EmulatorServer

THRESHOLD_MS = 100.0
DELTA_INTERVAL_S = 0.05
TURN_INTERVAL_S = 3.0
TURNS = 3
SYNTHETIC_STEPS = [100, 250, 500, 750, 1000, 1500, 2000]
WEBRTC_STEPS = [4, 8, 12, 16, 24, 32]
PHASE_BUDGET_S = 75.0
MIN_AUDIO_RATIO = 0.9


@dataclass
class Watch:
    """One sideband's view: lateness samples of paced events.

    Cheap on purpose (the client shares the machine with the emulator): an event's type is read
    from the start of its JSON text, which the emulator writes first; only user items are
    parsed. Responses of one call do not overlap in these scripts, so deltas are timed against
    the last `response.created`.
    """

    turns_expected: int
    lateness_ms: list[float] = field(default_factory=list)
    responses_done: int = 0
    errors: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _response_start: float = 0.0
    _delta_index: int = 0
    _first_turn: float | None = None
    _turns: int = 0

    def see(self, raw: str, now: float) -> None:
        kind = raw[10 : raw.index('"', 10)]  # {"type": "<kind>", ...
        if kind == "response.created":  # deltas are scheduled from here
            self._response_start, self._delta_index = now, 0
        elif kind == "response.output_audio_transcript.delta":
            expected = self._response_start + (self._delta_index + 2) * DELTA_INTERVAL_S
            self.lateness_ms.append((now - expected) * 1000)
            self._delta_index += 1
        elif kind == "input_audio_buffer.speech_started":
            self._turn_started(now)
        elif kind == "conversation.item.added":
            item = json.loads(raw)["item"]
            if item.get("role") == "user" and item["content"][0]["type"] == "input_text":
                self._turn_started(now)
        elif kind == "response.done":
            self.responses_done += 1
            if self.responses_done >= self.turns_expected:
                self.done.set()
        elif kind == "error":
            self.errors += 1

    def _turn_started(self, now: float) -> None:
        self._turns += 1
        if self._first_turn is None:
            self._first_turn = now
        else:
            expected = self._first_turn + (self._turns - 1) * TURN_INTERVAL_S
            self.lateness_ms.append((now - expected) * 1000)


async def watch_sideband(
    http: aiohttp.ClientSession, ws_base: str, call_id: str, key: str, watch: Watch
) -> None:
    loop = asyncio.get_running_loop()
    async with http.ws_connect(
        f"{ws_base}/realtime?call_id={call_id}",
        headers={"Authorization": f"Bearer {key}"},
        max_msg_size=0,
    ) as ws:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                watch.see(message.data, loop.time())


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(max(0.0, v) for v in values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


class ProcessStats:
    """CPU seconds and resident memory of the emulator process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return math.nan


def client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary(
    calls: int,
    watches: list[Watch],
    cpu_s: float,
    wall_s: float,
    rss_mb: float,
    client_s: float,
    **extra: Any,
) -> dict[str, Any]:
    lateness = [v for w in watches for v in w.lateness_ms]
    complete = sum(1 for w in watches if w.done.is_set())
    p99 = percentile(lateness, 99)
    ok = complete == len(watches) and p99 <= THRESHOLD_MS and not any(w.errors for w in watches)
    return {
        "calls": calls,
        "complete": complete,
        "samples": len(lateness),
        "p50_ms": round(percentile(lateness, 50), 1),
        "p99_ms": round(p99, 1),
        "max_ms": round(max(lateness, default=math.nan), 1),
        "server_cpu_pct": round(100 * cpu_s / wall_s, 1),
        "server_rss_mb": round(rss_mb, 1),
        "bench_client_cpu_pct": round(100 * client_s / wall_s, 1),
        **extra,
        "ok": ok and all(extra.get(k, True) for k in ("audio_ok",)),
    }


async def server_lag(http: aiohttp.ClientSession, base: str, window_s: float) -> Any:
    async with http.get(f"{base}/_emulator/stats", params={"window_s": str(window_s)}) as response:
        return (await response.json())["loop_lag_ms"].get("p99")


async def hang_up(http: aiohttp.ClientSession, base: str, call_ids: list[str]) -> None:
    gate = asyncio.Semaphore(50)

    async def one(call_id: str) -> None:
        async with gate, http.post(f"{base}/_emulator/calls/{call_id}/hangup") as response:
            await response.read()

    await asyncio.gather(*(one(c) for c in call_ids))


async def synthetic_step(
    server: EmulatorServer, http: aiohttp.ClientSession, stats: ProcessStats, count: int
) -> dict[str, Any]:
    async with http.post(
        f"{server.base_url}/_emulator/synthetic-calls",
        json={
            "count": count,
            "turns": TURNS,
            "turn_interval_s": TURN_INTERVAL_S,
            "delta_interval_s": DELTA_INTERVAL_S,
            "mode": "mixed",
        },
    ) as response:
        calls = (await response.json())["calls"]
    watches = [Watch(TURNS) for _ in calls]
    cpu0, t0, client0 = stats.cpu_s(), time.monotonic(), client_cpu_s()
    readers = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    # Calls start (their sideband joins, which starts the script) spread over one turn
    # interval, as independent conversations would: the load is steady, not in lockstep.
    for index, (call, watch) in enumerate(zip(calls, watches, strict=True)):
        await asyncio.sleep(max(0.0, start + index * TURN_INTERVAL_S / count - loop.time()))
        readers.append(
            asyncio.create_task(
                watch_sideband(http, server.ws_base, call["call_id"], call["client_secret"], watch)
            )
        )
    budget = TURNS * TURN_INTERVAL_S + 10
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(budget):
            await asyncio.gather(*(w.done.wait() for w in watches))
    result = summary(
        count,
        watches,
        stats.cpu_s() - cpu0,
        time.monotonic() - t0,
        stats.rss_mb(),
        client_cpu_s() - client0,
        server_loop_lag_p99_ms=await server_lag(http, server.base_url, time.monotonic() - t0),
    )
    await hang_up(http, server.base_url, [c["call_id"] for c in calls])
    await asyncio.gather(*readers, return_exceptions=True)
    return result


async def webrtc_step(
    server: EmulatorServer, http: aiohttp.ClientSession, stats: ProcessStats, count: int
) -> dict[str, Any]:
    peers: list[BrowserPeer] = []
    readers = []
    watches = [Watch(TURNS) for _ in range(count)]
    gate = asyncio.Semaphore(4)
    headers = {"Authorization": f"Bearer {server.api_key}"}

    async def open_call(watch: Watch) -> str:
        async with gate:
            async with http.post(
                f"{server.api_base}/realtime/client_secrets",
                json={"session": {"type": "realtime"}},
                headers=headers,
            ) as response:
                secret = (await response.json())["value"]
            peer = BrowserPeer()
            peers.append(peer)
            await peer.connect(server.api_base, secret)
            assert peer.call_id is not None
            readers.append(
                asyncio.create_task(
                    watch_sideband(http, server.ws_base, peer.call_id, secret, watch)
                )
            )
            return peer.call_id

    try:
        call_ids = await asyncio.gather(*(open_call(w) for w in watches))
        await asyncio.sleep(0.5)  # sidebands joined, media flowing
        frames0 = [p.received_audio_frames for p in peers]
        cpu0, t0, client0 = stats.cpu_s(), time.monotonic(), client_cpu_s()
        loop = asyncio.get_running_loop()
        start = loop.time()
        for turn in range(TURNS):
            # each call types a turn every TURN_INTERVAL_S, the calls spread over the interval
            for index, call_id in enumerate(call_ids):
                offset = turn * TURN_INTERVAL_S + index * TURN_INTERVAL_S / count
                await asyncio.sleep(max(0.0, start + offset - loop.time()))
                async with http.post(
                    f"{server.base_url}/_emulator/calls/{call_id}/user-text",
                    json={"text": f"Bench turn {turn + 1} of call {call_id}"},
                ) as response:
                    await response.read()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(*(w.done.wait() for w in watches))
        wall = time.monotonic() - t0
        received = [p.received_audio_frames - f for p, f in zip(peers, frames0, strict=True)]
        ratio = min(received) / (wall * 50) if received else 0.0
        return summary(
            count,
            watches,
            stats.cpu_s() - cpu0,
            wall,
            stats.rss_mb(),
            client_cpu_s() - client0,
            server_loop_lag_p99_ms=await server_lag(http, server.base_url, wall),
            audio_frames_ratio_min=round(ratio, 2),
            audio_ok=ratio >= MIN_AUDIO_RATIO,
        )
    finally:
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def ramp(
    name: str,
    steps: list[int],
    step_fn: Any,
    server: EmulatorServer,
    http: aiohttp.ClientSession,
    stats: ProcessStats,
) -> dict[str, Any]:
    results = []
    sustained = 0
    phase_start = time.monotonic()
    for count in steps:
        passed = False
        for attempt in (1, 2):  # the machine is shared: a step gets a second chance
            if time.monotonic() - phase_start > PHASE_BUDGET_S:
                break
            result = {**await step_fn(server, http, stats, count), "attempt": attempt}
            results.append(result)
            print(f"{name}: {json.dumps(result)}", flush=True)
            await asyncio.sleep(1.0)  # let closed calls drain before the next run
            if result["ok"]:
                passed = True
                break
        if not passed:
            break
        sustained = count
    return {"max_sustained_calls": sustained, "steps": results}


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(quick: bool) -> dict[str, Any]:
    raise_fd_limit()
    started = time.monotonic()
    # Other processes on the machine take CPU from both the emulator and this client.
    load_before = [round(x, 2) for x in os.getloadavg()]
    synthetic_steps = SYNTHETIC_STEPS[:2] if quick else SYNTHETIC_STEPS
    webrtc_steps = WEBRTC_STEPS[:2] if quick else WEBRTC_STEPS
    with EmulatorServer(extra_args=["--pace", str(DELTA_INTERVAL_S)]) as server:
        assert server.process is not None
        stats = ProcessStats(server.process.pid)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            synthetic = await ramp(
                "synthetic", synthetic_steps, synthetic_step, server, http, stats
            )
            webrtc = await ramp("webrtc", webrtc_steps, webrtc_step, server, http, stats)
    return {
        "machine_cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "threshold_p99_ms": THRESHOLD_MS,
        "delta_interval_s": DELTA_INTERVAL_S,
        "turn_interval_s": TURN_INTERVAL_S,
        "synthetic_calls_with_sideband": synthetic,
        "webrtc_calls_with_sideband": webrtc,
        "duration_s": round(time.monotonic() - started, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two steps per phase (smoke run)")
    arguments = parser.parse_args()
    report = asyncio.run(main(arguments.quick))
    print(json.dumps(report))
