"""The answers to a backing service being away: the web's 503 while Postgres is away, and
beat's one line per tick while the broker is away (config/outages.py, config/beat.py). The
fault tests (tests/faults/) do the same against real restarts; these pin the contract."""

from __future__ import annotations

import json
import logging
from typing import Any

import kombu.exceptions
import pytest
from celery.beat import ScheduleEntry, SchedulingError
from django.db import OperationalError
from django.http import HttpResponse
from django.test import RequestFactory

from config.beat import BrokerAwareScheduler
from config.celery import app
from config.outages import DatabaseAwayMiddleware


def test_a_view_meeting_the_database_away_answers_503_with_retry_after(caplog: Any) -> None:
    middleware = DatabaseAwayMiddleware(lambda request: HttpResponse())
    request = RequestFactory().post("/session")

    with caplog.at_level(logging.WARNING, logger="config.outages"):
        response = middleware.process_exception(
            request, OperationalError("connection refused\nIs the server running?")
        )

    assert response is not None
    assert (response.status_code, response["Retry-After"]) == (503, "5")
    assert json.loads(response.content) == {
        "detail": "The database is unavailable; retry shortly.",
        "code": "database_away",
    }
    assert [r.getMessage() for r in caplog.records] == [
        "database away: POST /session answered 503: connection refused"
    ]


def test_other_errors_are_left_to_django() -> None:
    middleware = DatabaseAwayMiddleware(lambda request: HttpResponse())

    assert middleware.process_exception(RequestFactory().get("/"), ValueError("bug")) is None


class _Unreachable(BrokerAwareScheduler):
    """The stock scheduler's send, failing as it does with the broker away."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **_: Any) -> Any:
        try:
            raise self.error
        except Exception as exc:
            raise SchedulingError(f"Couldn't apply scheduled task {entry.name}: {exc}") from exc


@pytest.mark.parametrize(
    ("error", "level", "traceback"),
    [
        (kombu.exceptions.OperationalError("Error 111 connecting"), logging.WARNING, False),
        (ValueError("a bug"), logging.ERROR, True),
    ],
)
def test_beat_logs_one_line_per_tick_while_the_broker_is_away(
    caplog: Any, error: Exception, level: int, traceback: bool
) -> None:
    entry = ScheduleEntry(name="sideband-reconcile", task="sideband.tasks.calls_reconcile", app=app)

    with caplog.at_level(logging.INFO, logger="config.beat"):
        _Unreachable(error).apply_entry(entry)

    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == level
    assert (record.exc_info is not None) is traceback
