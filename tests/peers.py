"""Browser peers (aiortc) for tests that open a real WebRTC call with a minted client secret."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from realtime_emulator.browser_peer import BrowserPeer

T = TypeVar("T")


class Peers:
    """Browser peers (aiortc) on an event loop of their own, kept open for the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.open: list[BrowserPeer] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def connect(self, api_base: str, client_secret: str) -> str:
        async def connect() -> str:
            peer = BrowserPeer()
            self.open.append(peer)
            response = await peer.connect(api_base, client_secret)
            assert response.status == 201, await response.text()
            assert peer.call_id is not None
            return peer.call_id

        return self.run(connect())

    def close(self) -> None:
        for peer in self.open:
            self.run(peer.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()
