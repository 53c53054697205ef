"""Fixtures of the sideband tests: the pool of real worker processes and a running worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

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
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    redis_url = django_settings.REDIS_URL
    assert redis_url, "the sideband tests need REDIS_URL (a db number of their own)"
    # Stale tasks of an earlier run must not reach this run's workers.
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "OPENAI_BASE_URL": emulator_server.api_base,
        "OPENAI_API_KEY": emulator_server.api_key,
        "SECRET_KEY": django_settings.SECRET_KEY,
        "SECRET_ENCRYPTION_KEYS": ",".join(django_settings.SECRET_ENCRYPTION_KEYS),
        "SIDEBAND_AUTH": "client_secret",
        **WORKER_ENV,
    }
    pool = Workers(env=env, log_dir=tmp_path_factory.mktemp("workers"))
    yield pool
    pool.stop_all()


@pytest.fixture
def worker(workers: Workers, upstream: EmulatorServer) -> Worker:
    """A running sideband worker (shared between tests; restarted if a test killed it)."""
    return workers.any()
