"""The sideband: `GET /v1/realtime?call_id=…` upgraded to a WebSocket on an existing call.

A sideband receives the call's server events from the moment it joins (no replay, no
`session.created`) and may send client events. Auth: the API key, or the unexpired client
secret the call was made with; anything else gets an `error` event (`invalid_api_key`) and
close code 3000 after the upgrade, as OpenAI does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from .errors import ApiError, bearer_token, invalid_api_key
from .http_api import registry
from .ids import new_id

log = logging.getLogger(__name__)

CLOSE_AUTH_FAILED = 3000
CLOSE_POLICY = 1008


_MAX_BUFFERED = 16 * 1024 * 1024  # a reader this far behind is dropped, as a slow consumer
_cache: list[Any] = [None, b""]  # the last payload and its frame: fan-out encodes once


def _text_frame(payload: str) -> bytes:
    """An unmasked, uncompressed WebSocket text frame (server to client, RFC 6455)."""
    if _cache[0] is payload:
        frame: bytes = _cache[1]
        return frame
    data = payload.encode()
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    frame = header + data
    _cache[0], _cache[1] = payload, frame
    return frame


class SidebandSubscriber:
    """Writes events to the socket's transport as whole frames, in emission order.

    Frames emitted in one turn of the event loop go out in one write (a response's closing
    events come in a burst), flushed before the loop's next turn. Whole frames written
    synchronously cannot interleave with those aiohttp writes itself (pongs, the close frame),
    and no task per socket is needed.
    """

    kind = "sideband"

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        self.ws = ws
        self.transport = transport
        self.aborted = False
        self.closing: asyncio.Task[Any] | None = None
        self._pending: list[bytes] = []

    def deliver(self, payload: str) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.closing is not None:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(_text_frame(payload))

    def _flush(self) -> None:
        frames, self._pending = self._pending, []
        transport = self.transport
        if not frames or transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > _MAX_BUFFERED:
            log.warning("sideband reader too slow: dropping it")
            self.abort()
            return
        transport.write(b"".join(frames))

    def close(self, code: int, reason: str) -> None:
        self._flush()  # queued events go out before the close frame
        if self.closing is None:
            self.closing = asyncio.get_running_loop().create_task(
                self.ws.close(code=code, message=reason.encode())
            )

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.aborted = True
        if self.transport is not None:
            self.transport.abort()


def sidebands_blocked_error(what: str) -> ApiError:
    """A blocked sideband upgrade (the emulator's knob): 503 before the upgrade."""
    return ApiError(
        f"Sideband connections to this {what} are temporarily refused (emulator knob).",
        status=503,
        type="server_error",
        code="service_unavailable",
    )


async def _refuse(ws: web.WebSocketResponse, error: ApiError, code: int) -> web.WebSocketResponse:
    event = {"type": "error", "event_id": new_id("event"), "error": error.event_payload()}
    await ws.send_str(json.dumps(event))
    await ws.close(code=code, message=(error.code or "error").encode())
    return ws


async def sideband_connect(request: web.Request) -> web.StreamResponse:
    reg = registry(request)
    call_id = request.query.get("call_id")
    call = reg.calls.get(call_id) if call_id else None
    if call is not None and call.sidebands_blocked:
        raise sidebands_blocked_error("call")
    transport = request.transport
    # No permessage-deflate: events are written as plain frames (see SidebandSubscriber).
    ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024, compress=False)
    await ws.prepare(request)
    key = bearer_token(request)
    secret = reg.secrets.get(key) if key is not None else None
    live_secret = secret is not None and not secret.expired
    # The API key, or the unexpired secret this call was made with (an unknown call gets
    # `call_not_found` below when the secret itself is valid).
    authorised = reg.is_api_key(key) or (live_secret and (call is None or key == call.secret))
    if not authorised:
        return await _refuse(ws, invalid_api_key(key), CLOSE_AUTH_FAILED)
    if call is None or call.status == "ended":
        if not call_id:
            error = ApiError(
                "The emulator serves sideband connections only: pass ?call_id=rtc_….",
                param="call_id",
                code="missing_required_parameter",
            )
        else:
            error = ApiError(
                f"Call '{call_id}' not found or already ended.",
                param="call_id",
                code="call_not_found",
            )
        return await _refuse(ws, error, CLOSE_POLICY)
    subscriber = SidebandSubscriber(ws, transport)
    call.subscribe(subscriber)
    await sideband_serve(ws, subscriber, receive=call.handle_client_message, leave=call.unsubscribe)
    return ws


async def sideband_serve(
    ws: web.WebSocketResponse,
    subscriber: SidebandSubscriber,
    *,
    receive: Callable[[str | bytes, SidebandSubscriber], None],
    leave: Callable[[SidebandSubscriber], None],
) -> None:
    """Hand the socket's client events to `receive` until it closes, then `leave`."""
    try:
        async for message in ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                receive(message.data, subscriber)
    finally:
        leave(subscriber)
        if subscriber.closing is not None:
            # The session closed us: the close handshake finishes in its own task.
            await asyncio.wait({subscriber.closing}, timeout=5)


def drop_sidebands(call: Any) -> int:
    """Abort every sideband socket of `call` (no close frame); the count dropped."""
    dropped = [s for s in call.subscribers if isinstance(s, SidebandSubscriber)]
    for subscriber in dropped:
        call.unsubscribe(subscriber)
        subscriber.abort()
    return len(dropped)
