"""One call's sideband socket: connect, read, capture, reconnect, close."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidStatus,
    WebSocketException,
)

from sessions_app.seed_items import is_seed_item
from sideband import end_reasons
from sideband.capture import CallEnded, ItemMissing, TurnDelta, TurnUpsert
from sideband.owner.retry import backoff_s
from sideband.owner.spec import CallSpec
from sideband.owner.upkeep import CallUpkeep, after_frame, retrieve_events

if TYPE_CHECKING:
    from sideband.owner.owner import SidebandOwner

logger = logging.getLogger(__name__)


class CallConnection:
    """One call's sideband socket: a coroutine on the owner's I/O loop."""

    def __init__(self, owner: SidebandOwner, spec: CallSpec) -> None:
        self.owner = owner
        self.spec = spec
        self.events = 0
        self.connects = 0
        self.done = threading.Event()
        self._stopping = False
        self._ws: ClientConnection | None = None
        self._wake = asyncio.Event()
        self.upkeep = CallUpkeep()
        realtime = spec.realtime_state
        if realtime is not None:
            self.upkeep.seeded(
                (i for i, rec in realtime.items.items() if rec.awaiting_transcript),
                time.monotonic(),
            )

    # -- control (any thread) ------------------------------------------------------------------

    @property
    def call_id(self) -> str:
        return self.spec.call_id

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Close the socket cleanly (close frame 1000, 1 s for the peer's answer), no reconnect."""
        if self._stopping:
            return
        self._stopping = True
        self.owner.io.call_soon_threadsafe(self._stop_in_loop)

    def _stop_in_loop(self) -> None:
        self._wake.set()
        if self._ws is not None:
            self.owner.spawn(self._ws.close(code=1000))

    # -- on the I/O loop -------------------------------------------------------------------------

    async def run(self) -> None:
        attempt = 0
        try:
            while not self._stopping:
                if time.monotonic() > self.spec.deadline:
                    self.owner.end(self, end_reasons.SESSION_EXPIRED, "session cap reached")
                    return
                try:
                    ws = await self._connect()
                except InvalidStatus as exc:
                    reason = end_reasons.handshake_end(
                        exc.response.status_code, server_key=_server_key()
                    )
                    if reason is not None:
                        msg = f"sideband refused: {exc.response.status_code}"
                        self.owner.end(self, reason, msg)
                        return
                    attempt = await self._backoff(attempt)
                    continue
                except (OSError, TimeoutError, WebSocketException):
                    attempt = await self._backoff(attempt)
                    continue
                attempt = 0
                try:
                    ended = await self._read(ws)
                finally:
                    self._ws = None
                    await ws.close()
                if ended:
                    return
                if not self._stopping:
                    self.owner.stats.reconnects += 1
                    logger.info("sideband dropped, reconnecting call=%s", self.call_id)
                    attempt = await self._backoff(attempt)
        except Exception:
            logger.exception("sideband connection failed call=%s", self.call_id)
        finally:
            self.owner.forget(self)
            self.done.set()

    async def send_events(self, events: list[dict[str, Any]]) -> None:
        """Send client events on the socket (on the loop); dropped while it is down."""
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            for event in events:
                await ws.send(json.dumps(event))

    async def _backoff(self, attempt: int) -> int:
        """Wait `backoff_s(attempt)`; stop() cuts it short."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), backoff_s(attempt))
        return attempt + 1

    async def _connect(self) -> ClientConnection:
        ws = await connect(
            self.spec.url,
            additional_headers=self.spec.headers,
            open_timeout=settings.SIDEBAND_CONNECT_TIMEOUT_S,
            ping_interval=settings.SIDEBAND_PING_S,
            ping_timeout=settings.SIDEBAND_PING_S,
            close_timeout=1.0,
            max_size=16 * 1024 * 1024,
            compression=None,
            proxy=None,
        )
        self._ws = ws
        if self._stopping:
            await ws.close()
            raise ConnectionClosedOK(None, None)
        if self.connects == 0:
            # Rehydration: the seed goes first, before anything else on the socket.
            for event in self.spec.seed_events:
                await ws.send(json.dumps(event))
        self.connects += 1
        if self.connects > 1:
            self.upkeep.reconnected(time.monotonic())
        return ws

    async def _read(self, ws: ClientConnection) -> bool:
        """Read until the socket closes; True when the call ended (no reconnect)."""
        try:
            async for raw in ws:
                try:
                    replies = self._frame(raw, time.monotonic())
                except Exception:
                    # One bad frame must not cost the call its socket (content is not logged).
                    logger.exception("sideband frame failed call=%s", self.call_id)
                    continue
                for event in replies:
                    await ws.send(json.dumps(event))
        except ConnectionClosed:
            pass
        if self._stopping:
            return True
        received = ws.protocol.close_rcvd
        reason = received.reason if received is not None else ""
        end = end_reasons.close_frame_end(reason, server_key=_server_key())
        if end is not None:
            self.owner.end(self, end, f"sideband closed: {reason}")
            return True
        return False

    def _frame(self, raw: bytes | str, t_recv: float) -> list[dict[str, Any]]:
        """Capture one frame; returns the client events to send back (item retrievals)."""
        self.events += 1
        ops = self.spec.capture(self.spec.state, raw)
        upserts: list[TurnUpsert] = []
        missing: list[ItemMissing] = []
        ended: CallEnded | None = None
        for op in ops:
            if isinstance(op, TurnDelta):
                if not is_seed_item(op.item_id):
                    self.owner.pusher.push(
                        self.spec.session_public_id,
                        {
                            "type": "delta",
                            "itemId": op.item_id,
                            "role": op.role,
                            "delta": op.delta,
                            "text": op.text,
                        },
                    )
            elif isinstance(op, TurnUpsert):
                if not is_seed_item(op.item_id):
                    upserts.append(op)
            elif isinstance(op, ItemMissing):
                if not is_seed_item(op.item_id):
                    missing.append(op)
            elif isinstance(op, CallEnded):
                ended = op
        if upserts:
            self.owner.write(self, upserts, t_recv)
        after_frame(self, upserts, t_recv)
        if ended is not None:
            end = end_reasons.upstream_end(ended.reason, server_key=_server_key())
            self.owner.end(self, end, ended.message)
        return retrieve_events(missing)


def _server_key() -> bool:
    """Whether the sideband authenticates with the server's key (not the call's client secret):
    then a refused credential is our misconfiguration, not an expired secret."""
    return settings.SIDEBAND_AUTH == "api_key"
