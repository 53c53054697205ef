"""The live push: `ws/session/<id>/` (owner only, origin checked), snapshot, numbered messages."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

import pytest
import redis.asyncio
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import connections

from config.asgi import application
from sessions_app.crypto import sha256_hex
from sessions_app.models import Session
from sessions_app.push import PushPosition, push_route_current, push_seq_current, push_to_session
from sideband.hints import hints_load
from sideband.push import Pusher, group_send_many
from tests.factories import OWNER_CREDENTIAL, CallFactory, TranscriptTurnFactory
from tests.sideband.helpers import session_new

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


@pytest.fixture(autouse=True)
async def _close_db_in_sync_thread() -> Any:
    """The ORM ran in asgiref's sync thread: close its connection so the test DB can drop."""
    yield
    await sync_to_async(connections.close_all)()


def _cookie(credential: str) -> tuple[bytes, bytes]:
    return (b"cookie", f"{django_settings.CLIENT_COOKIE_NAME}={credential}".encode())


def page(
    session_id: Any, headers: list[tuple[bytes, bytes]], *, path: str = ""
) -> WebsocketCommunicator:
    """The page's socket to `ws/session/<session_id>/` (or `path`) on host testserver."""
    return WebsocketCommunicator(
        application,
        path or f"/ws/session/{session_id}/",
        headers=[(b"host", b"testserver"), *headers],
    )


async def test_owner_gets_a_snapshot_on_connect() -> None:
    session = await sync_to_async(session_new)()
    turn = await sync_to_async(TranscriptTurnFactory)(session=session, text="hello")
    communicator = page(session.public_id, [ORIGIN, _cookie(OWNER_CREDENTIAL)])

    connected, _ = await communicator.connect()
    snapshot = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    assert connected is True
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == 0
    assert isinstance(snapshot["epoch"], int)
    assert [(t["itemId"], t["text"], t["role"]) for t in snapshot["turns"]] == [
        (turn.item_id, "hello", "user")
    ]


async def test_pushes_reach_the_page_numbered_in_order() -> None:
    session = await sync_to_async(session_new)()
    communicator = page(session.public_id, [ORIGIN, _cookie(OWNER_CREDENTIAL)])
    await communicator.connect()
    await communicator.receive_json_from(timeout=5)

    positions = [
        await sync_to_async(push_to_session)(session=session, payload={"type": "profile", "n": n})
        for n in range(3)
    ]
    received = [await communicator.receive_json_from(timeout=5) for _ in range(3)]
    await communicator.disconnect()

    assert positions[0] is not None
    epoch = positions[0].epoch
    assert positions == [PushPosition(epoch=epoch, seq=n) for n in (1, 2, 3)]
    assert received == [{"type": "profile", "n": n, "seq": n + 1, "epoch": epoch} for n in range(3)]
    assert await sync_to_async(push_seq_current)(
        session_public_id=str(session.public_id)
    ) == PushPosition(epoch=epoch, seq=3)


async def test_a_vanished_counter_starts_a_new_epoch_the_page_can_tell_apart() -> None:
    """Redis restarted without its data (or the key expired): numbering starts again at 1, in
    a new epoch, so a page that saw higher numbers knows these are new."""
    session = await sync_to_async(session_new)()
    public_id = str(session.public_id)
    for _ in range(5):
        await sync_to_async(push_to_session)(session=session, payload={"type": "profile"})
    before = await sync_to_async(push_seq_current)(session_public_id=public_id)
    communicator = page(session.public_id, [ORIGIN, _cookie(OWNER_CREDENTIAL)])
    await communicator.connect()
    await communicator.receive_json_from(timeout=5)

    await redis.asyncio.Redis.from_url(django_settings.REDIS_URL).delete(
        f"sideband:push:{public_id}"
    )
    after = await sync_to_async(push_to_session)(session=session, payload={"type": "profile"})
    message = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    assert before is not None
    assert before.seq == 5
    assert after is not None
    assert after.seq == 1
    assert after.epoch > before.epoch
    assert message == {"type": "profile", "seq": 1, "epoch": after.epoch}


async def test_snapshot_carries_the_current_sequence_number() -> None:
    session = await sync_to_async(session_new)()
    await sync_to_async(push_to_session)(session=session, payload={"type": "profile"})
    communicator = page(session.public_id, [ORIGIN, _cookie(OWNER_CREDENTIAL)])

    await communicator.connect()
    snapshot = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    assert snapshot["seq"] == 1
    assert isinstance(snapshot["epoch"], int)


async def test_a_stranger_is_refused_and_hears_nothing() -> None:
    session = await sync_to_async(session_new)()
    communicator = page(session.public_id, [ORIGIN, _cookie("someone-else-" + "x" * 40)])

    connected, _ = await communicator.connect()

    assert connected is False
    assert await sync_to_async(Session.objects.filter(pk=session.pk).count)() == 1


async def test_a_cookie_without_a_credentials_shape_owns_nothing_on_the_socket_either() -> None:
    """The socket follows the views' rule (sessions_app.auth.identity_of): a malformed cookie
    is no credential, even when its hash is a session's owner hash."""
    malformed = "short"
    session = await sync_to_async(session_new)(owner_hash=sha256_hex(malformed))
    communicator = page(session.public_id, [ORIGIN, _cookie(malformed)])

    connected, code = await communicator.connect()

    assert (connected, code) == (False, 4403)


async def test_no_cookie_is_refused() -> None:
    session = await sync_to_async(session_new)()
    communicator = page(session.public_id, [ORIGIN])

    connected, _ = await communicator.connect()

    assert connected is False


async def test_a_foreign_origin_is_refused() -> None:
    session = await sync_to_async(session_new)()
    headers = [(b"origin", b"http://evil.example"), _cookie(OWNER_CREDENTIAL)]
    communicator = page(session.public_id, headers)

    connected, _ = await communicator.connect()

    assert connected is False


async def test_an_unknown_session_is_refused() -> None:
    communicator = page(uuid.uuid4(), [ORIGIN, _cookie(OWNER_CREDENTIAL)])

    connected, _ = await communicator.connect()

    assert connected is False


async def test_a_batched_group_send_reaches_every_member_of_every_group() -> None:
    layer = get_channel_layer()
    assert layer is not None
    first, second, third = [await layer.new_channel() for _ in range(3)]
    suffix = uuid.uuid4().hex
    await layer.group_add(f"batch_a_{suffix}", first)
    await layer.group_add(f"batch_a_{suffix}", second)
    await layer.group_add(f"batch_b_{suffix}", third)

    await group_send_many(
        layer,
        [
            (f"batch_a_{suffix}", {"type": "session.push", "payloads": [{"seq": 1}]}),
            (f"batch_nobody_{suffix}", {"type": "session.push", "payloads": [{"seq": 9}]}),
            (f"batch_b_{suffix}", {"type": "session.push", "payloads": [{"seq": 2}]}),
        ],
    )

    received = [await asyncio.wait_for(layer.receive(name), 5) for name in (first, second, third)]
    assert received == [
        {"type": "session.push", "payloads": [{"seq": 1}]},
        {"type": "session.push", "payloads": [{"seq": 1}]},
        {"type": "session.push", "payloads": [{"seq": 2}]},
    ]


async def test_while_a_pusher_runs_every_push_of_the_process_goes_through_it_in_order() -> None:
    """In the worker a call's end is pushed from the ORM thread, its turns by the writers:
    one route (the Pusher) numbers and sends them in the order they were made."""
    session = await sync_to_async(session_new)()
    public_id = str(session.public_id)
    communicator = page(session.public_id, [ORIGIN, _cookie(OWNER_CREDENTIAL)])
    assert (await communicator.connect())[0] is True
    await communicator.receive_json_from(timeout=5)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    pusher = Pusher(loop=loop)
    pusher.start()
    try:
        pusher.push(public_id, {"type": "turn", "n": 1})
        position = await sync_to_async(push_to_session)(
            session=session, payload={"type": "call.ended"}
        )
        received = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    finally:
        await sync_to_async(pusher.stop)()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        await communicator.disconnect()

    assert position is None  # numbered when its batch went out
    epoch = received[0]["epoch"]
    assert received == [
        {"type": "turn", "n": 1, "seq": 1, "epoch": epoch},
        {"type": "call.ended", "seq": 2, "epoch": epoch},
    ]
    assert pusher.sent == 2
    assert push_route_current() is None  # stopped: pushes go out at once again


async def _report(session: Session, message: Any) -> dict[str, Any]:
    communicator = page(session.public_id, [ORIGIN, _cookie(OWNER_CREDENTIAL)])
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


@pytest.mark.parametrize(
    "origin",
    [
        b"http://testserver:9999",  # another port
        b"https://testserver",  # another scheme (the socket is ws://)
        b"http://testserver.evil.example",
        b"null",
        b"http://[not-a-host",
    ],
)
async def test_an_origin_differing_in_scheme_host_or_port_is_refused(origin: bytes) -> None:
    session = await sync_to_async(session_new)()
    communicator = page(session.public_id, [(b"origin", origin), _cookie(OWNER_CREDENTIAL)])

    connected, _ = await communicator.connect()

    assert connected is False


async def test_the_exact_own_origin_with_its_port_is_accepted() -> None:
    session = await sync_to_async(session_new)()
    communicator = WebsocketCommunicator(
        application,
        f"/ws/session/{session.public_id}/",
        headers=[
            (b"host", b"localhost:8000"),
            (b"origin", b"http://localhost:8000"),
            _cookie(OWNER_CREDENTIAL),
        ],
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
    communicator = page(
        session.public_id, [(b"origin", b"https://app.example.com"), _cookie(OWNER_CREDENTIAL)]
    )

    connected, _ = await communicator.connect()
    # The snapshot first: a disconnect racing the consumer's first read of the channel layer
    # leaves that layer's lock bound to this test's event loop.
    snapshot = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    assert connected is True
    assert snapshot["type"] == "snapshot"


@pytest.mark.parametrize(
    "path",
    ["/ws/session/not-a-uuid/", "/ws/session/%00/", "/ws/nothing/here/", "/", "/ws/session/"],
)
async def test_an_unknown_route_or_a_non_uuid_id_is_closed_without_a_traceback(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    communicator = page(None, [ORIGIN, _cookie(OWNER_CREDENTIAL)], path=path)

    connected, code = await communicator.connect()

    assert (connected, code) == (False, 4404)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
