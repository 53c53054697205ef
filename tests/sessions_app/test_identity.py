"""Sessions owned by the host app's users: a bearer token the host signs, or request.user of a
host Django project; ownership, the open-session cap and rate limits key on that user."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from config.asgi import application
from sessions_app.identity import subject_owner_hash
from sessions_app.models import Session
from tests.factories import OWNER_CREDENTIAL, OWNER_HASH
from tests.host_users import AUDIENCE, HOST_SECRET, a_session, host_token, user_client
from tests.sessions_app.helpers import post_json, session_create
from tests.unchanged import nothing_changes

pytestmark = pytest.mark.usefixtures("host_tokens")


def _owner_browser() -> Client:
    client = Client()
    client.cookies[django_settings.CLIENT_COOKIE_NAME] = OWNER_CREDENTIAL
    return client


def _reads(client: Client, session_id: str) -> list[int]:
    """The status of every read and write a caller could try on the session."""
    return [
        client.get(f"/session/{session_id}").status_code,
        client.get(f"/session/{session_id}/transcript").status_code,
        post_json(client, "/session/renew", {"sessionId": session_id}).status_code,
        post_json(
            client, "/session/call", {"sessionId": session_id, "callId": "rtc_stranger_1"}
        ).status_code,
        post_json(client, "/extract-profile", {"sessionId": session_id}).status_code,
    ]


@pytest.mark.django_db
def test_a_token_owned_session_is_invisible_to_another_token_and_to_a_cookie(upstream):
    alice = user_client("42")

    created = session_create(alice)
    session = Session.objects.get(public_id=created["sessionId"])

    assert (session.owner_subject, session.owner_hash) == ("42", subject_owner_hash("42"))
    assert alice.cookies.get(django_settings.CLIENT_COOKIE_NAME) is None  # no cookie minted
    with nothing_changes(upstream):
        for stranger in (user_client("43"), _owner_browser(), Client()):
            assert _reads(stranger, created["sessionId"]) == [404, 404, 404, 404, 404]
    assert alice.get(f"/session/{created['sessionId']}").status_code == 200
    # A new token of the same user (another tab, tomorrow) is the same owner.
    assert user_client("42").get(f"/session/{created['sessionId']}").status_code == 200


@pytest.mark.django_db
def test_a_cookie_owned_session_is_invisible_to_a_token(upstream):
    session = a_session()

    with nothing_changes(upstream):
        assert _reads(user_client("42"), str(session.public_id)) == [404, 404, 404, 404, 404]
    assert _owner_browser().get(f"/session/{session.public_id}").status_code == 200


def _signed(claims: dict[str, Any], key: str = HOST_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: host_token("42", ttl=-60), "expired"),
        (lambda: host_token("42", aud="another-service"), "InvalidAudienceError"),
        (lambda: host_token("42", key="not-the-host-secret-0123456789abcdef"), "Signature"),
        (lambda: host_token("42", ttl=7 * 24 * 3600), "longer"),
        (lambda: _signed({"aud": AUDIENCE, "exp": int(time.time()) + 60}), "MissingRequiredClaim"),
        (lambda: _signed({"sub": "42", "aud": AUDIENCE}), "MissingRequiredClaim"),
        (lambda: _signed({"sub": "4\n2", "aud": AUDIENCE, "exp": int(time.time()) + 60}), "sub"),
        (lambda: "not.a.token", "DecodeError"),
    ],
)
@pytest.mark.django_db
def test_a_bad_token_is_a_401_even_with_an_owner_cookie(upstream, token, reason):
    session = a_session()
    browser = _owner_browser()
    browser.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token()}"

    with nothing_changes(upstream):
        created = post_json(browser, "/session", {"model": "gpt-realtime", "voice": "marin"})
        read = browser.get(f"/session/{session.public_id}")

    assert created.status_code == 401, created.content
    assert reason in created.json()["detail"]
    assert created["WWW-Authenticate"] == 'Bearer realm="sessions"'
    assert read.status_code == 401


@pytest.mark.django_db
def test_tokens_are_refused_when_the_server_has_no_key(upstream, settings):
    settings.HOST_TOKEN_SECRET = ""
    body = {"model": "gpt-realtime", "voice": "marin"}

    with nothing_changes(upstream):
        response = post_json(user_client("42"), "/session", body)

    assert response.status_code == 401
    assert response.json()["detail"] == "Bearer tokens are not enabled on this server."


@pytest.mark.django_db
def test_an_asymmetric_token_names_the_user(upstream, settings):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    settings.HOST_TOKEN_PUBLIC_KEY = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    token = jwt.encode(
        {"sub": "user-7", "aud": AUDIENCE, "exp": int(time.time()) + 60}, private, "ES256"
    )

    created = session_create(Client(HTTP_AUTHORIZATION=f"Bearer {token}"))

    assert Session.objects.get(public_id=created["sessionId"]).owner_subject == "user-7"


@pytest.mark.parametrize(
    ("setting", "code"),
    [
        ("MAX_OPEN_SESSIONS_PER_CLIENT", "open_sessions_limit"),
        ("RATE_LIMIT_CREATE_PER_MINUTE", "rate_limited"),
    ],
)
@pytest.mark.django_db
def test_the_open_session_cap_and_the_rate_limit_count_the_user_on_every_device(
    upstream, settings, setting, code
):
    setattr(settings, setting, 2)
    laptop, phone = user_client("42"), user_client("42")
    session_create(laptop)
    session_create(phone)

    third = post_json(laptop, "/session", {"model": "gpt-realtime", "voice": "marin"})

    assert third.status_code == 429
    assert third.json()["code"] == code
    assert Session.objects.filter(owner_subject="42").count() == 2
    session_create(user_client("43"))  # another user counts apart


@pytest.mark.django_db
def test_request_user_of_a_host_django_project_owns_the_sessions_of_its_id(upstream, settings):
    settings.HOST_DJANGO_USERS = True
    user = get_user_model().objects.create_user(username="ada", password="x")
    page = Client(enforce_csrf_checks=True)
    page.force_login(user)
    page.get("/")  # the csrftoken cookie
    body = {"model": "gpt-realtime", "voice": "marin"}

    with nothing_changes(upstream):
        without_csrf = post_json(page, "/session", body)
    created = post_json(page, "/session", body, HTTP_X_CSRFTOKEN=page.cookies["csrftoken"].value)

    # The Django login is ambient authority: CSRF applies to it as to the cookie.
    assert without_csrf.status_code == 403
    assert created.status_code == 201, created.content
    session = Session.objects.get(public_id=created.json()["sessionId"])
    assert session.owner_subject == str(user.pk)
    # The host's token for the same user id reaches the same session; nobody else does.
    assert user_client(str(user.pk)).get(f"/session/{session.public_id}").status_code == 200
    with nothing_changes():
        assert user_client("someone-else").get(f"/session/{session.public_id}").status_code == 404


@pytest.mark.django_db
def test_request_user_is_ignored_unless_the_server_runs_inside_the_host(upstream, settings):
    settings.HOST_DJANGO_USERS = False
    user = get_user_model().objects.create_user(username="ada", password="x")
    page = Client()
    page.force_login(user)

    created = session_create(page)

    session = Session.objects.get(public_id=created["sessionId"])
    assert session.owner_subject == ""
    assert session.owner_hash != subject_owner_hash(str(user.pk))


# --- The live socket ---------------------------------------------------------------------------

ORIGIN = (b"origin", b"http://testserver")


async def _connect(session_id: str, *, query: str = "", headers: Any = ()) -> tuple[bool, Any]:
    communicator = WebsocketCommunicator(
        application,
        f"/ws/session/{session_id}/{query}",
        headers=[(b"host", b"testserver"), ORIGIN, *headers],
    )
    connected, code = await communicator.connect()
    if connected:
        snapshot = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return True, snapshot["type"]
    return False, code


@pytest.mark.django_db(transaction=True)
async def test_the_live_socket_lets_only_the_token_owner_listen():
    session = await sync_to_async(a_session)(
        owner_hash=subject_owner_hash("42"), owner_subject="42"
    )
    sid = str(session.public_id)
    cookie = (b"cookie", f"{django_settings.CLIENT_COOKIE_NAME}={OWNER_CREDENTIAL}".encode())
    try:
        assert await _connect(sid, query=f"?access_token={host_token('42')}") == (True, "snapshot")
        assert await _connect(
            sid, headers=[(b"authorization", f"Bearer {host_token('42')}".encode())]
        ) == (True, "snapshot")
        assert await _connect(sid, query=f"?access_token={host_token('43')}") == (False, 4403)
        assert await _connect(sid, query="?access_token=forged") == (False, 4403)
        assert await _connect(sid, headers=[cookie]) == (False, 4403)
        # The cookie's own session stays the cookie's.
        own = await sync_to_async(a_session)(owner_hash=OWNER_HASH)
        assert await _connect(str(own.public_id), headers=[cookie]) == (True, "snapshot")
        assert await _connect(
            str(own.public_id), query=f"?access_token={host_token('42')}", headers=[cookie]
        ) == (False, 4403)
    finally:
        await sync_to_async(connections.close_all)()
