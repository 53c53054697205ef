"""The live push: the snapshot a page gets on connect, then numbered messages in an epoch
(sessions_app.push; the worker's sideband.push.Pusher). Who may open the socket, and how it
is refused: test_consumers.py."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
import redis.asyncio
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings as django_settings

from sessions_app.push import PushPosition, push_route_current, push_seq_current, push_to_session
from sideband.push import Pusher, group_send_many
from tests.factories import TranscriptTurnFactory
from tests.sideband.helpers import page_socket, session_new

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("orm_thread_closed")]


async def test_owner_gets_a_snapshot_on_connect() -> None:
    session = await sync_to_async(session_new)()
    turn = await sync_to_async(TranscriptTurnFactory)(session=session, text="hello")
    communicator = page_socket(session)

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
    communicator = page_socket(session)
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
    communicator = page_socket(session)
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
    communicator = page_socket(session)

    await communicator.connect()
    snapshot = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    assert snapshot["seq"] == 1
    assert isinstance(snapshot["epoch"], int)


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
    communicator = page_socket(session)
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
