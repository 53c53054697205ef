"""The page's live socket (sideband.consumers, sideband.origin, sideband.routing): who may open
it, the close code each refusal carries, and what the page may send on it.

The close codes are the consumer's promise to the page: 4403 (not yours, or not there: the page
does not retry), 4404 (no such route: nor this), 4503 (Redis or Postgres away: the page retries
with backoff). Each is asserted here through the real ASGI application (origin check, routes,
consumer) against the real channel layer; "away" is a Redis or Postgres address where nothing
answers, or a Redis of the test's own that it kills. A refusal changes nothing: no row, no
presence.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.db import connections

from sessions_app.crypto import sha256_hex
from sessions_app.models import Session
from sideband.consumers import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_TRY_AGAIN_LATER
from sideband.hints import hints_load
from sideband.presence import pages_last_seen
from tests.factories import OWNER_CREDENTIAL, CallFactory
from tests.processes import free_port
from tests.servers import RedisServer, running
from tests.sideband.helpers import (
    ORIGIN,
    cookie_header,
    page_socket,
    session_new,
    socket_to,
)
from tests.unchanged import nothing_changes_async

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("orm_thread_closed")]

STRANGER_CREDENTIAL = "someone-else-" + "x" * 40


def _channel_layer_at(url: str) -> dict[str, Any]:
    """CHANNEL_LAYERS as configured, with Redis at `url`."""
    layers = copy.deepcopy(django_settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["hosts"][0]["address"] = url
    return layers


async def _presence(session: Session) -> dict[str, float]:
    return await sync_to_async(pages_last_seen)(session_public_ids=[str(session.public_id)])


# --- 4403: not the owner's, or not there ------------------------------------------------------


@pytest.mark.parametrize(
    ("whose", "credential"),
    [
        ("mine", STRANGER_CREDENTIAL),  # another browser's cookie
        ("mine", None),  # no credential at all
        ("mine", "too-short"),  # a cookie without a credential's shape
        ("mine", "x" * 129),
        ("no one's", OWNER_CREDENTIAL),  # a session id that does not exist
    ],
    ids=["stranger", "no-credential", "short-credential", "long-credential", "unknown-session"],
)
async def test_a_socket_of_anyone_but_the_owner_is_closed_4403_and_changes_nothing(
    whose: str, credential: str | None
) -> None:
    session = await sync_to_async(session_new)()
    session_id = session.public_id if whose == "mine" else uuid.uuid4()
    headers = [ORIGIN] if credential is None else [ORIGIN, cookie_header(credential)]

    async with nothing_changes_async():
        connected, code = await socket_to(session_id, headers).connect()

    assert (connected, code) == (False, CLOSE_FORBIDDEN)
    assert await _presence(session) == {}


async def test_a_cookie_without_a_credentials_shape_owns_nothing_even_when_its_hash_matches() -> (
    None
):
    """The socket follows the views' rule (sessions_app.auth.identity_of): a malformed cookie
    is no credential, even when its hash is the session's owner hash."""
    malformed = "short"
    session = await sync_to_async(session_new)(owner_hash=sha256_hex(malformed))

    connected, code = await socket_to(
        session.public_id, [ORIGIN, cookie_header(malformed)]
    ).connect()

    assert (connected, code) == (False, CLOSE_FORBIDDEN)


# --- 4404: no such route ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/ws/session/not-a-uuid/", "/ws/session/%00/", "/ws/nothing/here/", "/", "/ws/session/"],
)
async def test_an_unknown_route_or_a_non_uuid_id_is_closed_4404_without_a_traceback(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    communicator = socket_to(None, [ORIGIN, cookie_header()], path=path)

    connected, code = await communicator.connect()

    assert (connected, code) == (False, CLOSE_NOT_FOUND)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


# --- 4503: a backing service away -------------------------------------------------------------


async def test_redis_away_at_connect_closes_4503_in_one_line(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    session = await sync_to_async(session_new)()
    settings.CHANNEL_LAYERS = _channel_layer_at(f"redis://127.0.0.1:{free_port()}/0")

    connected, code = await page_socket(session).connect(timeout=10)

    assert (connected, code) == (False, CLOSE_TRY_AGAIN_LATER)
    # One line (refused at the join, or closed as the layer's receive fails: whichever first).
    assert [r.levelname for r in caplog.records if r.name == "sideband.consumers"] == ["WARNING"]
    assert not [r for r in caplog.records if r.exc_info]


async def test_postgres_away_at_connect_closes_4503(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    session = await sync_to_async(session_new)()
    # The database settings point where nothing answers and no connection stays open (the
    # ORM's thread closes its own), so the consumer's next query is refused as when Postgres
    # is down.
    monkeypatch.setitem(connections["default"].settings_dict, "PORT", free_port())
    await sync_to_async(connections.close_all)()

    connected, code = await page_socket(session).connect(timeout=10)

    assert (connected, code) == (False, CLOSE_TRY_AGAIN_LATER)
    assert not [r for r in caplog.records if r.exc_info]


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with running(RedisServer()) as server:
        yield server


async def test_redis_going_away_under_an_open_socket_closes_it_4503(
    own_redis: RedisServer, settings: Any
) -> None:
    session = await sync_to_async(session_new)()
    settings.CHANNEL_LAYERS = _channel_layer_at(own_redis.url)
    communicator = page_socket(session)
    assert (await communicator.connect())[0] is True
    assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"

    own_redis.kill()

    assert await communicator.receive_output(timeout=10) == {
        "type": "websocket.close",
        "code": CLOSE_TRY_AGAIN_LATER,
    }


# --- The origin -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        b"http://evil.example",
        b"http://testserver:9999",  # another port
        b"https://testserver",  # another scheme (the socket is ws://)
        b"http://testserver.evil.example",
        b"null",
        b"http://[not-a-host",
    ],
)
async def test_an_origin_differing_in_scheme_host_or_port_is_refused(origin: bytes) -> None:
    session = await sync_to_async(session_new)()
    communicator = socket_to(session.public_id, [(b"origin", origin), cookie_header()])

    async with nothing_changes_async():
        connected, _ = await communicator.connect()

    assert connected is False
    assert await _presence(session) == {}


async def test_the_exact_own_origin_with_its_port_is_accepted() -> None:
    session = await sync_to_async(session_new)()
    communicator = socket_to(
        session.public_id,
        [(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8000"), cookie_header()],
    )

    connected, _ = await communicator.connect()
    # The snapshot first: a disconnect racing the consumer's first read of the channel layer
    # leaves that layer's lock bound to this test's event loop.
    snapshot = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    assert connected is True
    assert snapshot["type"] == "snapshot"


async def test_a_trusted_origin_is_accepted_whatever_the_socket_scheme(settings: Any) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com"]
    session = await sync_to_async(session_new)()
    communicator = socket_to(
        session.public_id, [(b"origin", b"https://app.example.com"), cookie_header()]
    )

    connected, _ = await communicator.connect()
    # The snapshot first: a disconnect racing the consumer's first read of the channel layer
    # leaves that layer's lock bound to this test's event loop.
    snapshot = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    assert connected is True
    assert snapshot["type"] == "snapshot"


# --- What the page sends: item-id reports -----------------------------------------------------


async def _report(session: Session, message: Any) -> dict[str, Any]:
    communicator = page_socket(session)
    assert (await communicator.connect())[0] is True
    await communicator.receive_json_from(timeout=5)
    await communicator.send_json_to(message)
    answer: dict[str, Any] = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    return answer


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([], "items"),
        ([{"id": "item_1", "previousItemId": None}] * 101, "items"),
        (["item_1"], "items[0]"),
        ([{"id": "item_1", "text": "words"}], "items[0]"),
        ([{"id": "x" * 65, "previousItemId": None}], "items[0].id"),
        ([{"id": "item_2", "previousItemId": "a b"}], "items[0].previousItemId"),
    ],
)
async def test_a_malformed_items_report_is_refused_naming_the_field(
    items: list[Any], field: str
) -> None:
    session = await sync_to_async(session_new)()
    call = await sync_to_async(CallFactory)(session=session)

    answer = await _report(
        session, {"type": "items.seen", "callId": str(call.call_id), "items": items}
    )

    assert (answer["type"], answer["field"]) == ("error", field)
    assert await sync_to_async(hints_load)(call_id=str(call.call_id)) == {}


async def test_items_of_another_sessions_call_are_refused_and_nothing_is_kept() -> None:
    session = await sync_to_async(session_new)()
    theirs = await sync_to_async(CallFactory)()

    answer = await _report(
        session,
        {
            "type": "items.seen",
            "callId": str(theirs.call_id),
            "items": [{"id": "item_1", "previousItemId": None}],
        },
    )

    assert (answer["type"], answer["field"]) == ("error", "callId")
    assert await sync_to_async(hints_load)(call_id=str(theirs.call_id)) == {}
