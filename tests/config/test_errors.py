"""Requests Django refuses before any view runs are answered in the API's JSON shape."""

from __future__ import annotations

import logging

import pytest
from django.test import Client, override_settings

from sessions_app.models import Session


@pytest.mark.django_db
@override_settings(DEBUG=False, ALLOWED_HOSTS=["127.0.0.1"])
def test_a_host_not_served_is_a_json_400_naming_the_header_and_creates_nothing() -> None:
    response = Client().post("/session", data={}, content_type="application/json", HTTP_HOST="2&I")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"Host": ["This host is not served here."]}
    assert not Session.objects.exists()


@pytest.mark.django_db
@override_settings(DEBUG=False, ALLOWED_HOSTS=["127.0.0.1"])
def test_a_host_not_served_is_logged_as_one_warning_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="django.security.DisallowedHost"):
        Client().get("/session/00000000-0000-0000-0000-000000000000", HTTP_HOST="2&I")
    (record,) = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert record.levelname == "WARNING"
    assert record.exc_info is None
    assert "2&I" in record.getMessage()
