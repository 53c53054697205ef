"""The page's live view of its session: `ws/session/<session_id>/`.

Only the session's owner may listen, by the rule the API's views follow
(sessions_app.auth.identity_of and session_owned): a host app's token (`?access_token=<token>`,
as browsers cannot set headers on a WebSocket, or an `Authorization` header), the host Django
project's user, or the client cookie; anyone else is closed with 4403. The origin is checked
on scheme, host and port (sideband.origin, config/asgi.py). Any other path is refused
(`RouteNotFoundConsumer`). On connect the page gets a snapshot of the transcript, then every
turn change, partial text and call end, each with the session's next sequence number and its
epoch (sessions_app.push): a page that spots a gap, or another epoch, re-reads
`GET /session/{id}/transcript?after=<last position>`.

The page sends two things: `{"type": "items.seen", "callId", "items": [{"id",
"previousItemId"}]}`, the item ids its data channel saw (gap-fill hints, sideband.hints; for a
live call of this session only), and `{"type": "presence"}` (sideband.presence). A refused
report is answered `{"type": "error", "field", "message"}` and changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from config.outages import DATABASE_AWAY, REDIS_AWAY
from sessions_app.auth import identity_of, session_owned
from sessions_app.identity import TokenInvalid
from sessions_app.models import Call, Session
from sessions_app.push import push_position_json, push_seq_current, session_group
from sessions_app.selectors import turn_json, turn_list
from sideband.hints import HintsInvalid, hints_store, items_seen_parse
from sideband.presence import page_seen

logger = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's): the page must not retry a 4403 or a 4404.
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
# Redis or Postgres away: "try again later" (the HTTP 503 of the 4000s; daphne allows no 1013).
# The page reconnects with backoff, as after any close but a 4403 or a 4404.
CLOSE_TRY_AGAIN_LATER = 4503


def _cookie(scope: dict[str, Any], name: str) -> str | None:
    header = _header(scope, b"cookie")
    if header is None:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:
        return None
    return jar[name].value if name in jar else None


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _authorization(scope: dict[str, Any]) -> str | None:
    """The Authorization header, else `?access_token=` as a bearer token."""
    header = _header(scope, b"authorization")
    if header is not None:
        return header
    tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("access_token")
    return f"Bearer {tokens[0]}" if tokens else None


@database_sync_to_async
def _owned_session(public_id: uuid.UUID, scope: dict[str, Any]) -> Session | None:
    """The socket's session when its caller owns it (sessions_app.auth, as for a request)."""
    try:
        identity = identity_of(
            authorization=_authorization(scope),
            user=scope.get("user"),
            cookie=_cookie(scope, settings.CLIENT_COOKIE_NAME),
        )
    except TokenInvalid:
        return None
    return session_owned(public_id=public_id, identity=identity)


@database_sync_to_async
def _snapshot(session: Session) -> dict[str, Any]:
    # Sequence first, then the turns: every push numbered up to `seq` was sent after its
    # change committed, so the turns read next already include it.
    position = push_seq_current(session_public_id=str(session.public_id))
    turns = [turn_json(turn) for turn in turn_list(session=session)]
    return {"type": "snapshot", **push_position_json(position), "turns": turns}


@database_sync_to_async
def _hints_store(session: Session, content: Any) -> dict[str, Any] | None:
    """Store a page's `items.seen` report; the error to answer, or None."""
    try:
        seen = items_seen_parse(content)
    except HintsInvalid as exc:
        return {"type": "error", "field": exc.field, "message": exc.message}
    if not Call.objects.filter(
        call_id=seen.call_id, session=session, ended_at__isnull=True
    ).exists():
        # Not this session's, or over: nothing to fill.
        return {"type": "error", "field": "callId", "message": "callId is not a live call here"}
    hints_store(seen=seen)
    return None


class SessionConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    session: Session | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Redis going away under an open socket (the layer's receive fails) closes it with
        "try again later" and one log line: the page reconnects to a fresh snapshot."""
        try:
            await super().__call__(scope, receive, send)
        except REDIS_AWAY as exc:
            logger.warning("live socket closed, Redis away: %r", exc)
            with contextlib.suppress(Exception):  # the socket may be gone already
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})

    async def connect(self) -> None:
        try:
            await self._join()
        except (*REDIS_AWAY, *DATABASE_AWAY) as exc:
            logger.warning("live socket refused, a backing service is away: %r", exc)
            await self.close(code=CLOSE_TRY_AGAIN_LATER)

    async def _join(self) -> None:
        public_id = self.scope["url_route"]["kwargs"]["session_id"]
        session = await _owned_session(public_id, self.scope)
        if session is None:
            # Not yours and not there look the same.
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.session = session
        self.group = session_group(str(session.public_id))
        # Join before reading the snapshot, so nothing committed after the read is missed.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._seen()
        await self.send_json(await _snapshot(session))

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            # Redis away: nothing to leave (the group expires by itself).
            with contextlib.suppress(*REDIS_AWAY):
                await self.channel_layer.group_discard(self.group, self.channel_name)
            await self._seen()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Item-id hints and presence; anything else is ignored."""
        if self.session is None:
            return
        await self._seen()
        if isinstance(content, dict) and content.get("type") == "items.seen":
            refused = await _hints_store(self.session, content)
            if refused is not None:
                await self.send_json(refused)

    async def _seen(self) -> None:
        if self.session is not None:
            await sync_to_async(page_seen)(session_public_id=str(self.session.public_id))

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        """A frame that is not JSON is ignored (the socket stays open)."""
        try:
            return json.loads(text_data)
        except ValueError:
            return None

    async def session_push(self, event: dict[str, Any]) -> None:
        """One message (`payload`) or a batch of consecutive ones (`payloads`), in order."""
        for payload in event.get("payloads") or [event["payload"]]:
            await self.send_json(payload)


class RouteNotFoundConsumer(AsyncJsonWebsocketConsumer):
    """Every socket path that is not a route: refused at the handshake (the server answers
    403 to it), logged as one line without a traceback."""

    async def connect(self) -> None:
        logger.info("live socket: no route for path length %d", len(self.scope.get("path", "")))
        await self.close(code=CLOSE_NOT_FOUND)
