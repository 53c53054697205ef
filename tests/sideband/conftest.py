"""Fixtures of the sideband tests: the pool of real worker processes and a running worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.sideband.helpers import Worker, Workers, workers_running

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer


@pytest.fixture(scope="session")
def workers(
    django_db_setup: Any,
    django_db_blocker: Any,
    emulator_server: EmulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Workers]:
    """The pool of worker processes of this test run (stopped before the test DB is dropped)."""
    with workers_running(
        emulator_server=emulator_server, log_dir=tmp_path_factory.mktemp("workers")
    ) as pool:
        yield pool


@pytest.fixture
def worker(workers: Workers, upstream: EmulatorServer) -> Worker:
    """A running sideband worker (shared between tests; restarted if a test killed it)."""
    return workers.any()
