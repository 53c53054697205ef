"""Fixtures of the sideband tests: the pool of real worker processes and a running worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis
from django.conf import settings as django_settings

from tests.processes import process_env
from tests.sideband.helpers import WORKER_ENV, Worker, Workers

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
    env = process_env(emulator_server=emulator_server, SIDEBAND_AUTH="client_secret", **WORKER_ENV)
    # Stale tasks of an earlier run must not reach this run's workers.
    redis.Redis.from_url(django_settings.REDIS_URL).flushdb()
    pool = Workers(env=env, log_dir=tmp_path_factory.mktemp("workers"))
    yield pool
    pool.stop_all()


@pytest.fixture
def worker(workers: Workers, upstream: EmulatorServer) -> Worker:
    """A running sideband worker (shared between tests; restarted if a test killed it)."""
    return workers.any()
