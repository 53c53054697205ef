"""`POST /extract-profile` and its status URL, with a real worker and the emulator."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from extraction.models import ExtractionRun, Profile
from tests.extraction.conftest import conversation_write, owner_client, session_new
from tests.processes import wait_for
from tests.unchanged import nothing_changes

INTRO = [
    ("user", "Hello. My name is Ada."),
    ("assistant", 'You said: "Hello. My name is Ada.".'),
    ("user", "I live in Lyon."),
    ("assistant", 'You said: "I live in Lyon.".'),
    ("user", "I want to learn Italian."),
    ("assistant", 'You said: "I want to learn Italian.".'),
]


def _extract(client: Client, session_id: Any) -> Any:
    return client.post(
        "/extract-profile", {"sessionId": str(session_id)}, content_type="application/json"
    )


# --- Input and ownership (no worker needed) ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "sessionId"),
        ({"sessionId": "not-a-uuid"}, "sessionId"),
        ({"sessionId": 5}, "sessionId"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(upstream, browser, body, field):
    with nothing_changes(upstream):
        response = browser.post("/extract-profile", body, content_type="application/json")

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.django_db
def test_another_clients_session_is_a_404_and_nothing_is_queued(upstream, session):
    conversation_write(session, INTRO)
    stranger = Client()
    stranger.cookies[settings.CLIENT_COOKIE_NAME] = "another-credential-0123456789abcdefghijklm"

    with nothing_changes(upstream):
        response = _extract(stranger, session.public_id)

    assert response.status_code == 404


@pytest.mark.django_db
def test_a_session_without_spoken_turns_is_a_409(upstream, browser, session):
    with nothing_changes(upstream):
        response = _extract(browser, session.public_id)

    assert response.status_code == 409
    assert response.json()["code"] == "nothing_to_extract"


@pytest.mark.django_db
def test_the_status_url_of_another_clients_run_is_a_404(session):
    run = ExtractionRun.objects.create(session=session)
    stranger = Client()
    stranger.cookies[settings.CLIENT_COOKIE_NAME] = "another-credential-0123456789abcdefghijklm"

    with nothing_changes():
        response = stranger.get(f"/extract-profile/{run.public_id}")

    assert response.status_code == 404


@pytest.mark.django_db
def test_an_unknown_or_malformed_status_url_is_a_404_or_a_400(browser):
    assert browser.get("/extract-profile/6f1c56a4-2c1e-4bb5-9a35-6d5f0c7d1a11").status_code == 404
    malformed = browser.get("/extract-profile/nope")
    assert malformed.status_code == 400
    assert "runId" in malformed.json()


# --- With a real worker ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_extract_answers_the_profile_with_evidence_and_instructions(upstream, worker, browser):
    session = session_new()
    turns = conversation_write(session, INTRO)

    response = _extract(browser, session.public_id)

    assert response.status_code == 200
    body = response.json()
    assert sorted(body) == ["instructions", "profile", "version"]
    assert body["version"] == 1
    assert body["profile"]["name"] == {"value": "Ada", "evidence": [turns[0].item_id]}
    assert body["profile"]["location"] == {"value": "Lyon", "evidence": [turns[2].item_id]}
    assert body["profile"]["goals"] == [{"value": "learn Italian", "evidence": [turns[4].item_id]}]
    assert "Marker: profile v1" in body["instructions"].splitlines()
    assert body["instructions"] == Profile.objects.get(session=session).instructions


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_requests_make_one_version(upstream, worker):
    session = session_new()
    conversation_write(session, INTRO)
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def ask() -> None:
        try:
            client = owner_client()
            barrier.wait(timeout=5)
            answers.append(_extract(client, session.public_id))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [answer.status_code for answer in answers] == [200, 200]
    assert [answer.json()["version"] for answer in answers] == [1, 1]
    assert list(Profile.objects.filter(session=session).values_list("version", flat=True)) == [1]
    assert ExtractionRun.objects.filter(session=session).count() == 1


@pytest.mark.django_db(transaction=True)
def test_asking_again_without_new_turns_returns_the_same_version(upstream, worker, browser):
    session = session_new()
    conversation_write(session, INTRO)
    first = _extract(browser, session.public_id).json()

    again = _extract(browser, session.public_id)

    assert again.status_code == 200
    assert again.json() == first
    assert ExtractionRun.objects.filter(session=session).count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_upstream_429_is_retried_and_then_succeeds(upstream, worker, browser):
    session = session_new()
    conversation_write(session, INTRO)
    upstream.control(
        "POST", "/_emulator/faults", {"endpoint": "responses", "status": 429, "times": 1}
    )

    response = _extract(browser, session.public_id)

    assert response.status_code == 200
    assert response.json()["version"] == 1
    run = ExtractionRun.objects.get(session=session)
    assert run.status == ExtractionRun.Status.SUCCEEDED
    assert run.attempts == 2


@pytest.mark.django_db(transaction=True)
def test_past_the_wait_bound_the_answer_is_202_and_the_status_url_gives_the_profile(
    upstream, worker, browser, settings
):
    settings.EXTRACTION_WAIT_S = 0.0
    session = session_new()
    conversation_write(session, INTRO)

    response = _extract(browser, session.public_id)

    assert response.status_code == 202
    run = ExtractionRun.objects.get(session=session)
    assert response.json() == {
        "status": "pending",
        "statusUrl": f"/extract-profile/{run.public_id}",
    }

    def finished() -> dict[str, Any] | None:
        status = browser.get(response.json()["statusUrl"]).json()
        return status if status["status"] != "pending" else None

    status = wait_for(finished, timeout=10, what="the extraction run to finish")
    assert status["status"] == "succeeded"
    assert status["version"] == 1
    assert status["profile"]["name"]["value"] == "Ada"


@pytest.mark.django_db(transaction=True)
def test_an_invalid_model_output_is_a_502_that_stores_nothing(upstream, worker, browser):
    session = session_new()
    ramble = "I want to " + " ".join(["travel around the whole world slowly"] * 8) + "."
    conversation_write(session, [("user", "My name is Ada."), ("user", ramble)])

    response = _extract(browser, session.public_id)

    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "extraction_failed"
    assert body["status"] == "failed"
    assert body["error"] == (
        "Invalid model output: output does not match the profile schema: "
        "goals.0.value: string_too_long"
    )
    assert not Profile.objects.filter(session=session).exists()
    status = browser.get(body["statusUrl"]).json()
    assert status["status"] == "failed"
    assert status["error"] == body["error"]
