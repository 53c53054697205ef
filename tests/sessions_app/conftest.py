"""Fixtures of the session API tests: browsers (Django test clients with their own cookies)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery.signals import before_task_publish
from django.conf import settings as django_settings
from django.test import Client

from tests.factories import OWNER_CREDENTIAL


@pytest.fixture(autouse=True)
def _own_rate_limit_counters(settings: Any) -> None:
    """Each test counts in fresh keys of the real cache, without flushing anyone's Redis db."""
    if django_settings.REDIS_URL:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": django_settings.REDIS_URL,
                "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
            }
        }
    else:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": uuid.uuid4().hex,
            }
        }


@pytest.fixture
def browser() -> Client:
    """A browser with no credential yet (POST /session gives it one)."""
    return Client()


@pytest.fixture
def owner() -> Client:
    """A browser holding tests.factories.OWNER_CREDENTIAL: it owns SessionFactory's sessions."""
    client = Client()
    client.cookies[django_settings.CLIENT_COOKIE_NAME] = OWNER_CREDENTIAL
    return client


@pytest.fixture
def stranger() -> Client:
    client = Client()
    client.cookies[django_settings.CLIENT_COOKIE_NAME] = (
        "another-browser-credential-0123456789abcdef"
    )
    return client


@pytest.fixture
def published() -> Iterator[list[dict[str, Any]]]:
    """Celery messages published by this process (task name, args, routing key)."""
    messages: list[dict[str, Any]] = []

    def record(sender: str, body: Any, headers: dict[str, Any], routing_key: str, **_: Any) -> None:
        # Celery's message protocol 2: the body is (args, kwargs, embed).
        messages.append({"task": sender, "args": list(body[0]), "queue": routing_key})

    before_task_publish.connect(record, weak=False)
    yield messages
    before_task_publish.disconnect(record)
