"""The extraction task: a run id in, one service call.

Retries only what may pass (429, 5xx, a connection error or timeout) with exponential
backoff; any other upstream refusal, an exhausted retry budget or the time limit fails the run
with a reason, and nothing is stored.
"""

from __future__ import annotations

import logging

import openai
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from extraction.models import ExtractionRun
from extraction.services import extraction_perform, run_fail

logger = logging.getLogger(__name__)

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)
MAX_RETRIES = 5
RETRY_MAX_S = 30.0


def retry_countdown(retries: int) -> float:
    """Exponential backoff: base, 2x base, 4x base... capped at RETRY_MAX_S."""
    base = settings.EXTRACTION_RETRY_BASE_S
    return min(RETRY_MAX_S, base * (2**retries))


@shared_task(
    bind=True,
    name="extraction.tasks.profile_extract",
    max_retries=MAX_RETRIES,
    soft_time_limit=60,
    time_limit=90,
    ignore_result=True,
)
def profile_extract(self: Task, run_id: str) -> None:
    run = ExtractionRun.objects.select_related("session").filter(public_id=run_id).first()
    if run is None:
        logger.info("Extraction run %s vanished; ignored", run_id)
        return
    try:
        extraction_perform(run=run)
    except RETRYABLE as exc:
        if self.request.retries >= MAX_RETRIES:
            run_fail(run=run, error=f"The extraction model is unavailable ({type(exc).__name__}).")
            return
        countdown = retry_countdown(self.request.retries)
        logger.info(
            "Extraction %s: upstream %s, retry %d in %.1fs",
            run_id,
            type(exc).__name__,
            self.request.retries + 1,
            countdown,
        )
        raise self.retry(exc=exc, countdown=countdown) from exc
    except openai.APIStatusError as exc:
        run_fail(run=run, error=f"The extraction model rejected the request ({exc.status_code}).")
    except SoftTimeLimitExceeded:
        run_fail(run=run, error="The extraction took too long.")
