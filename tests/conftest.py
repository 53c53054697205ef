"""Fixtures shared by the whole suite.

The upstream in tests is the project's emulator (realtime_emulator/) running as a real
process on a free port; nothing in the upstream path is patched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsWrapper

    from realtime_emulator.testing import EmulatorServer
    from tests.peers import Peers


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """One emulator process for the whole run; tests reset its knobs (see `upstream`)."""
    from realtime_emulator.testing import EmulatorServer

    with EmulatorServer(extra_args=["--pace", "0.005", "--transcription-delay", "0.02"]) as server:
        yield server


@pytest.fixture
def upstream(emulator_server: EmulatorServer, settings: SettingsWrapper) -> EmulatorServer:
    """Point the app at the emulator, with its fault knobs cleared."""
    emulator_server.control("POST", "/_emulator/reset")
    settings.OPENAI_BASE_URL = emulator_server.api_base
    settings.OPENAI_BROWSER_BASE_URL = emulator_server.api_base
    settings.UPSTREAM_API_KEY = emulator_server.api_key
    return emulator_server


@pytest.fixture
async def orm_thread_closed() -> AsyncIterator[None]:
    """For async tests: the ORM ran in asgiref's sync thread; its connection is closed after
    the test, so the test database can be flushed and dropped."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def host_tokens(settings: SettingsWrapper) -> None:
    """The server trusts the host backend's tokens of tests.host_users (`host_token`)."""
    from tests.host_users import host_tokens_trusted

    host_tokens_trusted(settings)


@pytest.fixture
def peers() -> Iterator[Peers]:
    """Browser peers (aiortc) for real WebRTC calls with a minted client secret."""
    from realtime_emulator.webrtc import include_loopback_candidates
    from tests.peers import Peers

    include_loopback_candidates()
    pool = Peers()
    yield pool
    pool.close()
