"""Tasks of the host side: ids in, one service call; each safe to run twice."""

from __future__ import annotations

from celery import shared_task

from config.outages import periodic_tick
from hostapi.retention import retention_purge as _retention_purge
from hostapi.webhooks import webhook_attempt
from hostapi.webhooks import webhooks_scan as _webhooks_scan


@shared_task(
    name="hostapi.tasks.webhook_deliver", ignore_result=True, soft_time_limit=60, time_limit=90
)
def webhook_deliver(delivery_id: int, attempt: int) -> None:
    """Attempt `attempt` of a delivery; a vanished, done or already claimed one is a no-op
    (retries are scheduled by the service, with backoff, not by Celery's redelivery)."""
    webhook_attempt(delivery_id=delivery_id, attempt=attempt)


@shared_task(name="hostapi.tasks.webhooks_scan", ignore_result=True, time_limit=120)
def webhooks_scan() -> None:
    with periodic_tick("webhooks scan"):
        _webhooks_scan()


@shared_task(name="hostapi.tasks.retention_purge", ignore_result=True, time_limit=3000)
def retention_purge() -> None:
    with periodic_tick("retention purge"):
        _retention_purge()
