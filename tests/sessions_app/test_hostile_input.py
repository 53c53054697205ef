"""No body makes a 500: depth, encoding, type, unknown fields and whitespace are 400s naming
the problem, nothing written; the schema documents every error answer (DEBUG's default:
tests/config/test_settings.py)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from django.test import Client

from sessions_app import ratelimit
from sessions_app.models import Session
from tests.factories import SessionFactory
from tests.sessions_app.helpers import post_json
from tests.unchanged import nothing_changes

pytestmark = pytest.mark.django_db

SESSION_ID = "0b0b7c9e-8a52-4d47-9d0e-3c5f4f6a1b2c"
POST_ENDPOINTS = {
    "/session": {"model": "gpt-realtime", "voice": "marin"},
    "/session/call": {"sessionId": SESSION_ID, "callId": "rtc_abc"},
    "/session/renew": {"sessionId": SESSION_ID},
    "/extract-profile": {"sessionId": SESSION_ID},
}


def post_raw(client: Client, path: str, body: bytes | str, content_type: str) -> Any:
    return client.generic("POST", path, body, content_type=content_type)


@pytest.mark.parametrize("path", list(POST_ENDPOINTS))
@pytest.mark.parametrize(
    "body",
    ["[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000, "[" * 8000 + "]" * 8000],
    ids=["1000-deep-array", "1000-deep-object", "8000-deep-array"],
)
def test_every_post_endpoint_answers_400_to_a_deeply_nested_body(
    browser: Client, path: str, body: str
) -> None:
    with nothing_changes():
        response = post_raw(browser, path, body, "application/json")

    assert response.status_code == 400
    assert list(response.json()) == ["body"]
    assert response.json() == {"body": ["The body is nested deeper than 8 levels."]}


@pytest.mark.parametrize("path", list(POST_ENDPOINTS))
@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        ('{"model": "caf\xe9"}'.encode("latin-1"), "application/json", "UTF-8"),
        (b'{"model": "\\ud800"}', "application/json", "UTF-8"),
        (b'{"model": NaN}', "application/json", "JSON"),
        (b'{"model": "x"', "application/json", "JSON"),
        (b'{"model": "x"}', "application/json; charset=latin-1", "charset=latin-1"),
        (b'{"model": "x"}', "application/json; charset=no-such-codec", "charset=no-such-codec"),
        (b"[1, 2]", "application/json", "JSON object"),
        (b'"a string"', "application/json", "JSON object"),
    ],
    ids=[
        "latin1-bytes",
        "lone-surrogate",
        "nan",
        "truncated",
        "latin1-charset",
        "unknown-charset",
        "array",
        "string",
    ],
)
def test_a_body_that_is_not_a_utf8_json_object_is_a_400_naming_the_body(
    browser: Client, path: str, body: bytes, content_type: str, problem: str
) -> None:
    with nothing_changes():
        response = post_raw(browser, path, body, content_type)

    assert response.status_code == 400
    assert list(response.json()) == ["body"]
    assert problem in response.json()["body"][0]


@pytest.mark.parametrize("path", list(POST_ENDPOINTS))
def test_an_unknown_field_is_a_400_naming_it(browser: Client, path: str) -> None:
    body = {**POST_ENDPOINTS[path], "enableTranscripton": False, "zz": 1}

    with nothing_changes():
        response = post_json(browser, path, body)

    assert response.status_code == 400
    assert response.json() == {"enableTranscripton": ["Unknown field."], "zz": ["Unknown field."]}


@pytest.mark.parametrize("path", list(POST_ENDPOINTS))
def test_a_body_of_another_media_type_is_a_415(browser: Client, path: str) -> None:
    form = "application/x-www-form-urlencoded"

    with nothing_changes():
        response = post_raw(browser, path, "model=gpt-realtime", form)

    assert response.status_code == 415
    assert "detail" in response.json()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/session", {"model": " gpt-realtime", "voice": "marin"}, "model"),
        ("/session", {"model": "gpt-realtime", "voice": "marin\n"}, "voice"),
        ("/session", {"model": 5, "voice": "marin"}, "model"),
        ("/session", {"model": "gpt-realtime", "voice": "marin", "reset": "true"}, "reset"),
        ("/session/call", {"sessionId": SESSION_ID, "callId": "rtc_abc\n"}, "callId"),
        ("/session/call", {"sessionId": SESSION_ID, "callId": " rtc_abc"}, "callId"),
        ("/session/call", {"sessionId": f" {SESSION_ID}", "callId": "rtc_abc"}, "sessionId"),
        ("/session/call", {"sessionId": SESSION_ID, "callId": ["rtc_abc"]}, "callId"),
        ("/session/renew", {"sessionId": 12}, "sessionId"),
    ],
)
def test_whitespace_and_wrong_types_are_400s_never_trimmed_or_coerced(
    browser: Client, path: str, body: dict[str, Any], field: str
) -> None:
    with nothing_changes():
        response = post_json(browser, path, body)

    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.parametrize(
    ("query", "field"),
    [("after=100000000000000000000000000000", "after"), ("after=-1", "after"), ("x=1", "x")],
)
def test_a_transcript_query_out_of_range_or_unknown_is_a_400(
    owner: Client, query: str, field: str
) -> None:
    session = cast(Session, SessionFactory())

    response = owner.get(f"/session/{session.public_id}/transcript?{query}")

    assert response.status_code == 400
    assert list(response.json()) == [field]


# --- Invented credentials ---------------------------------------------------------------


def test_invented_credentials_buy_no_fresh_rate_limit_budget(
    upstream: Any, owner: Client, settings: Any
) -> None:
    settings.RATE_LIMIT_CREATE_PER_MINUTE = 1
    SessionFactory()  # the owner's credential is one the server knows
    # The address's budget is spent (by the test directly: no upstream call, so no minute
    # boundary, between this and the requests below).
    ratelimit.rate_limit_hit(scope="create", key="ip:127.0.0.1", limit=1)
    inventor = Client()
    inventor.cookies[settings.CLIENT_COOKIE_NAME] = "invented-" + "x" * 40

    with nothing_changes(upstream):
        refused = post_json(inventor, "/session", POST_ENDPOINTS["/session"])
    known = post_json(owner, "/session", POST_ENDPOINTS["/session"])

    assert refused.status_code == 429
    assert known.status_code == 201
    assert Session.objects.count() == 2


def test_an_invented_credential_owns_only_what_it_creates(upstream: Any, owner: Client) -> None:
    theirs = cast(Session, SessionFactory())  # the owner's
    inventor = Client()
    inventor.cookies["rt_client"] = "invented-" + "y" * 40

    mine = post_json(inventor, "/session", POST_ENDPOINTS["/session"])

    assert mine.status_code == 201
    assert inventor.get(f"/session/{mine.json()['sessionId']}").status_code == 200
    with nothing_changes():
        assert inventor.get(f"/session/{theirs.public_id}").status_code == 404
        assert owner.get(f"/session/{mine.json()['sessionId']}").status_code == 404


# --- The schema -------------------------------------------------------------------------------

# What each operation may answer besides success (the views and the exception handler).
DOCUMENTED_ERRORS = {
    ("/session", "post"): {400, 403, 415, 429, 502, 503, 504},
    ("/session/call", "post"): {400, 403, 404, 409, 415},
    ("/session/renew", "post"): {400, 403, 404, 409, 415, 429, 502, 503, 504},
    ("/session/{session_id}", "get"): {400, 404},
    ("/session/{session_id}/transcript", "get"): {400, 404},
    ("/session/{session_id}/transcript.{kind}", "get"): {400, 404},
    ("/extract-profile", "post"): {400, 403, 404, 409, 415, 502},
    ("/extract-profile/{run_id}", "get"): {400, 404},
    # The server-to-server API (hostapi), with an API key.
    ("/api/v1/users/{subject}", "delete"): {400, 401, 403, 429},
    ("/api/v1/users/{subject}/sessions", "get"): {400, 401, 403, 429},
    ("/api/v1/users/{subject}/export", "get"): {400, 401, 403, 429},
    ("/api/v1/sessions/{session_id}", "get"): {400, 401, 403, 404, 429},
    ("/api/v1/sessions/{session_id}/transcript", "get"): {400, 401, 403, 404, 429},
    ("/api/v1/sessions/{session_id}/profiles", "get"): {400, 401, 403, 404, 429},
    ("/api/v1/sessions/{session_id}/extractions", "get"): {400, 401, 403, 404, 429},
    ("/api/v1/sessions/{session_id}/extractions", "post"): {400, 401, 403, 404, 409, 429},
}


@pytest.fixture
def schema(browser: Client) -> dict[str, Any]:
    response = browser.get("/api/schema/?format=json")
    assert response.status_code == 200
    return dict(json.loads(response.content))


def test_the_schema_documents_every_error_answer_with_its_body(schema: dict[str, Any]) -> None:
    operations = {
        (path, method): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }

    assert set(operations) == set(DOCUMENTED_ERRORS)
    for key, codes in DOCUMENTED_ERRORS.items():
        responses = operations[key]["responses"]
        errors = {int(code) for code in responses if int(code) >= 400}
        assert errors == codes, key
        for code in codes:
            body = responses[str(code)]["content"]["application/json"]["schema"]
            expected = "ValidationError" if code == 400 else "Error"
            assert body == {"$ref": f"#/components/schemas/{expected}"}, (key, code)
            assert responses[str(code)]["description"], (key, code)
    for key in (("/session", "post"), ("/session/renew", "post")):
        assert "Retry-After" in operations[key]["responses"]["429"]["headers"]
    components = schema["components"]["schemas"]
    assert components["Error"]["required"] == ["detail"]
    assert components["ValidationError"]["additionalProperties"]["type"] == "array"


def test_the_schema_states_what_the_server_enforces(schema: dict[str, Any], settings: Any) -> None:
    components = schema["components"]["schemas"]
    paths = schema["paths"]

    def enum(component: str, field: str) -> list[str]:
        return field_enum(schema, component, field)

    # One create body per API, exactly one of which a request matches.
    realtime, live = "SessionCreateRealtimeInput", "SessionCreateLiveInput"
    assert components["SessionCreateInput"] == {
        "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in (realtime, live)]
    }
    assert enum(realtime, "model") == settings.REALTIME_MODELS
    assert enum(realtime, "voice") == settings.REALTIME_VOICES
    assert enum(realtime, "api") == ["realtime"]
    assert enum(live, "model") == settings.LIVE_MODELS
    assert enum(live, "voice") == settings.LIVE_VOICES
    assert enum(live, "api") == ["live"]
    # Live needs the offer, Realtime takes none; `api` may be left out for the default API only.
    assert "sdp" not in components[realtime]["properties"]
    assert set(components[realtime]["required"]) == {"model", "voice"}
    assert set(components[live]["required"]) == {"api", "model", "voice", "sdp"}
    sdp = components[live]["properties"]["sdp"]
    assert sdp["pattern"] == "^v=0\\r?\\n(?:[^\\u0000]*\\n)?m=[^\\u0000]*$"
    assert components["SessionRenewInput"]["properties"]["sdp"]["pattern"] == sdp["pattern"]
    call_id = components["SessionCallInput"]["properties"]["callId"]
    assert call_id["pattern"] == "^rtc_[A-Za-z0-9][A-Za-z0-9_]*$"
    assert call_id["maxLength"] == 64
    # What the server answers may be a Live session's id too.
    renewed = components["SessionRenewOutput"]["properties"]["callId"]
    assert renewed["pattern"] == "^(?:rtc|live)_[A-Za-z0-9][A-Za-z0-9_]*$"
    for name in ("SessionCallInput", "SessionRenewInput", "ExtractProfileInput"):
        assert components[name]["properties"]["sessionId"]["format"] == "uuid"
    for name in (realtime, live, "SessionCallInput", "SessionRenewInput"):
        assert components[name]["additionalProperties"] is False
    for path in ("/session/{session_id}", "/extract-profile/{run_id}"):
        (parameter,) = paths[path]["get"]["parameters"]
        assert parameter["schema"] == {"type": "string", "format": "uuid"}
    parameters = paths["/session/{session_id}/transcript"]["get"]["parameters"]
    after = next(parameter for parameter in parameters if parameter["name"] == "after")
    assert (after["schema"]["minimum"], after["schema"]["maximum"]) == (0, 2**63 - 1)


def test_the_schema_follows_the_settings_of_the_running_server(
    browser: Client, settings: Any
) -> None:
    settings.REALTIME_VOICES = ["marin", "cedar"]

    schema = json.loads(browser.get("/api/schema/?format=json").content)

    assert field_enum(schema, "SessionCreateRealtimeInput", "voice") == ["marin", "cedar"]


def field_enum(schema: dict[str, Any], component: str, field: str) -> list[str]:
    """The values a component's enum field allows (drf-spectacular puts enums in components)."""
    components = schema["components"]["schemas"]
    ref = components[component]["properties"][field]["$ref"]
    return list(components[ref.rsplit("/", 1)[-1]]["enum"])
