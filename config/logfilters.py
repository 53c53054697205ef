"""Logging filters named in settings.LOGGING."""

from __future__ import annotations

import logging
from collections.abc import Iterable


class RoutineTasksAtDebug(logging.Filter):
    """Celery logs each run of each task at INFO (received, succeeded) and beat each dispatch:
    the reconciler beat sends every few seconds was half of `make run`'s output. Records that
    name one of `tasks` are demoted to DEBUG, so they show only when the logger is at DEBUG;
    a failing run still logs at ERROR (its record is not demoted)."""

    def __init__(self, tasks: Iterable[str] = ()) -> None:
        super().__init__()
        self.tasks = tuple(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        if not any(task in message for task in self.tasks):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class OneLineWarning(logging.Filter):
    """A refused request that is the client's doing, not ours (a Host header not served here):
    Django logs it at ERROR with a traceback; it becomes one WARNING line (the message names
    the header), so hostile traffic cannot fill the log with tracebacks or page anyone."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
