"""The emulator over real sockets: one process for this package's tests, knobs reset per test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from realtime_emulator.testing import EmulatorServer

PACE_S = 0.005
TRANSCRIPTION_DELAY_S = 0.03
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "realtime-corpus"


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(
        extra_args=["--pace", str(PACE_S), "--transcription-delay", str(TRANSCRIPTION_DELAY_S)]
    ) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(emulator: EmulatorServer) -> None:
    emulator.control("POST", "/_emulator/reset")


class Sideband:
    """A raw sideband socket: every event it receives is kept, in order, in `events`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                event = json.loads(message.data)
                self.events.append(event)
                self._queue.put_nowait(event)
        self._queue.put_nowait(None)

    async def next(self, within: float = 20) -> dict[str, Any] | None:
        """The next event, or None once the socket has closed."""
        return await asyncio.wait_for(self._queue.get(), within)

    async def until(self, type_: str, within: float = 20) -> list[dict[str, Any]]:
        """Events up to and including the first of `type_` (fails if the socket closes first)."""
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(within):
            while True:
                event = await self._queue.get()
                assert event is not None, (
                    f"socket closed before {type_}; saw {[e['type'] for e in seen]}"
                )
                seen.append(event)
                if event["type"] == type_:
                    return seen

    async def until_all(self, types: set[str], within: float = 20) -> list[dict[str, Any]]:
        """Events up to the moment every type in `types` has been seen at least once."""
        seen: list[dict[str, Any]] = []
        missing = set(types)
        async with asyncio.timeout(within):
            while missing:
                event = await self._queue.get()
                assert event is not None, f"socket closed while waiting for {missing}"
                seen.append(event)
                missing.discard(event["type"])
        return seen

    async def closed(self, within: float = 20) -> int | None:
        """Wait for the close; the close code."""
        await asyncio.wait_for(asyncio.shield(self._reader), within)
        return self.ws.close_code

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def connect_sideband(
    emulator: EmulatorServer, http: aiohttp.ClientSession
) -> AsyncIterator[Any]:
    opened: list[Sideband] = []

    async def connect(call_id: str, key: str | None = None) -> Sideband:
        ws = await http.ws_connect(
            f"{emulator.ws_base}/realtime?call_id={call_id}",
            headers={"Authorization": f"Bearer {key or emulator.api_key}"},
        )
        sideband = Sideband(ws)
        opened.append(sideband)
        return sideband

    yield connect
    for sideband in opened:
        await sideband.close()


def idle_call(emulator: EmulatorServer, **options: Any) -> dict[str, Any]:
    """A synthetic call with no script: driven by the test (user-text, user-audio, sideband)."""
    body = {"count": 1, "turns": 0, **options}
    call: dict[str, Any] = emulator.control("POST", "/_emulator/synthetic-calls", body)["calls"][0]
    return call


def corpus_events(name: str) -> list[dict[str, Any]] | None:
    path = CORPUS / name
    if not path.exists():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
