"""Fixtures of the extraction tests.

The real worker processes are the sideband tests' kind (tests.sideband.helpers.Workers: queues
sideband and default, thread pool), so the extraction task and the sideband run as in
production. The pool is this package's own and stops when the package's tests end, so it never
competes with the sideband tests' workers for their calls. The helpers write transcript rows the
way the sideband's writer does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest
from django.conf import settings
from django.test import Client

from sessions_app.models import Call, Session, TranscriptTurn
from tests.factories import OWNER_CREDENTIAL, CallFactory, SessionFactory
from tests.sideband.helpers import Worker, Workers, workers_running

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer


@pytest.fixture(scope="package")
def extraction_workers(
    django_db_setup: Any,
    django_db_blocker: Any,
    emulator_server: EmulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Workers]:
    with workers_running(
        emulator_server=emulator_server, log_dir=tmp_path_factory.mktemp("extraction-workers")
    ) as pool:
        yield pool


@pytest.fixture
def worker(extraction_workers: Workers, upstream: EmulatorServer) -> Worker:
    """A running worker process (sideband + default queues) against the test DB and emulator."""
    return extraction_workers.any()


def session_new(**fields: Any) -> Session:
    """A session owned by tests.factories.OWNER_HASH (typed: factory_boy's stubs are not)."""
    return cast(Session, SessionFactory(**fields))


def call_new(**fields: Any) -> Call:
    return cast(Call, CallFactory(**fields))


def conversation_write(
    session: Session,
    lines: list[tuple[str, str]],
    *,
    call: Call | None = None,
    start: int = 1,
    prefix: str = "item",
) -> list[TranscriptTurn]:
    """Completed turns `(role, text)` appended after the session's last turn."""
    last = session.turns.order_by("-position").values_list("position", flat=True).first() or 0
    turns = []
    for offset, (role, text) in enumerate(lines):
        number = start + offset
        turns.append(
            TranscriptTurn.objects.create(
                session=session,
                call=call,
                item_id=f"{prefix}_{number:04d}",
                role=role,
                text=text,
                status=TranscriptTurn.Status.COMPLETED,
                position=last + 1024 * (offset + 1),
            )
        )
    return turns


def owner_client() -> Client:
    """A browser holding the cookie of the factories' owner (tests.factories.OWNER_HASH)."""
    client = Client()
    client.cookies[settings.CLIENT_COOKIE_NAME] = OWNER_CREDENTIAL
    return client


@pytest.fixture
def session() -> Session:
    return session_new()


@pytest.fixture
def browser() -> Client:
    return owner_client()
