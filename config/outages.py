"""What a backing service being away looks like, in one place, and the web's answer to it.

- Redis away (down, restarting, unreachable): `REDIS_AWAY` errors. Whoever meets them degrades
  (rate limits fail open, live push resyncs the page later) and logs one line, never a 500.
- Postgres away: `DATABASE_AWAY` errors. Nothing the web can answer without it, so every
  request that meets one is a 503 with `Retry-After` (`DatabaseAwayMiddleware`); a request
  after Postgres is back opens a new connection (`conn_max_age=0`) and succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import kombu.exceptions
import redis
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

REDIS_AWAY: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)
# Celery's broker (Redis here) refusing a task: kombu wraps the transport's errors.
BROKER_AWAY: tuple[type[Exception], ...] = (kombu.exceptions.OperationalError, *REDIS_AWAY)
# psycopg's "connection refused", "terminating connection due to administrator command",
# "the connection is closed" all arrive as one of these (Django wraps the driver's errors).
DATABASE_AWAY: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
# How long a client is told to wait while the database is away: a restart takes seconds.
DATABASE_RETRY_AFTER_S = 5


def outage_line(exc: BaseException) -> str:
    """The first line of an outage's error, for a one-line log (driver errors span several)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextmanager
def periodic_tick(what: str) -> Iterator[None]:
    """A beat task's run: Postgres away is one line (the next tick tries again), never a
    traceback; the thread keeps no connection between runs either way."""
    try:
        yield
    except DATABASE_AWAY as exc:
        logger.warning("%s skipped, database away: %s", what, outage_line(exc))
    finally:
        connection.close()


class DatabaseAwayMiddleware:
    """A view that meets Postgres away answers 503 + Retry-After (JSON), not a 500 page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_AWAY):
            return None
        logger.warning(
            "database away: %s %s answered 503: %s",
            request.method,
            request.path,
            outage_line(exception),
        )
        response = JsonResponse(
            {"detail": "The database is unavailable; retry shortly.", "code": "database_away"},
            status=503,
        )
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
