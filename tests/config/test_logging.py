"""The log says what matters: routine beat runs only at DEBUG, failures still at ERROR."""

from __future__ import annotations

import logging

import pytest

SUCCEEDED = "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s"


def _succeeded(name: str) -> dict[str, object]:
    return {"name": name, "id": "1", "runtime": 0.01, "return_value": 0}


def test_routine_beat_runs_are_logged_at_debug_and_failures_still_show(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    trace = logging.getLogger("celery.app.trace")

    trace.info(SUCCEEDED, _succeeded("sideband.tasks.calls_reconcile"))
    trace.info(SUCCEEDED, _succeeded("sideband.tasks.call_own"))
    trace.error("Task sideband.tasks.calls_reconcile[2] raised unexpected: OperationalError()")
    logging.getLogger("celery.beat").info(
        "Scheduler: Sending due task sideband-reconcile (sideband.tasks.calls_reconcile)"
    )

    assert [(r.name, r.levelname, r.getMessage()[:40]) for r in caplog.records] == [
        ("celery.app.trace", "INFO", "Task sideband.tasks.call_own[1] succeede"),
        ("celery.app.trace", "ERROR", "Task sideband.tasks.calls_reconcile[2] r"),
    ]


def test_routine_beat_runs_show_when_the_logger_is_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="celery.app.trace")

    logging.getLogger("celery.app.trace").info(
        SUCCEEDED, _succeeded("sideband.tasks.calls_reconcile")
    )

    assert [(r.levelname, r.getMessage()[:45]) for r in caplog.records] == [
        ("DEBUG", "Task sideband.tasks.calls_reconcile[1] succee")
    ]
