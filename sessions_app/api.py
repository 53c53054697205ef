"""The session API: paths and JSON names exactly as the seed's realtime session flow.

Views are thin: parse and validate input, check who may act (sessions_app.auth), call one
service or selector, serialise. Bad input is a 400 naming the field, with nothing written.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from extraction.memory import memory_json
from sessions_app import auth, ratelimit, selectors, services, upstream
from sessions_app.identity import Identity
from sessions_app.models import Session

# OpenAI call ids: `rtc_` then letters, digits and underscores (e.g. `rtc_u1_9c6574da...`).
CALL_ID_RE = re.compile(r"^rtc_[A-Za-z0-9][A-Za-z0-9_]*$")
CALL_ID_MAX = 64


# --- Strict input fields: JSON types are not coerced (5 is not "5", "true" is not true) ----


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class SessionIdField(StrictCharField):
    default_error_messages = {"malformed": "Must be a session id (a UUID)."}

    def to_internal_value(self, data: Any) -> Any:
        raw = super().to_internal_value(data)
        parsed = auth.session_id_parse(raw)
        if parsed is None:
            self.fail("malformed")
        return parsed


# --- Errors -----------------------------------------------------------------------------


def _error(detail: str, *, code: str, status_code: int, retry_after: int | None = None) -> Response:
    response = Response({"detail": detail, "code": code}, status=status_code)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler plus the domain errors of the session API (settings.REST_FRAMEWORK)."""
    if isinstance(exc, upstream.UpstreamError):
        return _error(
            exc.message, code="upstream_error", status_code=exc.status, retry_after=exc.retry_after
        )
    if isinstance(exc, ratelimit.RateLimited):
        return _error(
            f"Too many requests; retry in {exc.retry_after} seconds.",
            code="rate_limited",
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, services.OpenSessionsLimit):
        return _error(
            f"This client already has {settings.MAX_OPEN_SESSIONS_PER_CLIENT} open sessions; "
            "refresh one (reset: true) instead of opening another.",
            code="open_sessions_limit",
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        )
    if isinstance(exc, services.SessionClosed):
        return _error("The session is closed.", code="session_closed", status_code=409)
    if isinstance(exc, services.CallConflict):
        return _error(
            "callId is already registered to another session.",
            code="call_conflict",
            status_code=409,
        )
    if isinstance(exc, exceptions.ParseError):
        # A body that is not JSON: name the field that is wrong, the body itself.
        return Response({"body": [str(exc.detail)]}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


# --- Base view ----------------------------------------------------------------------------


class ClientAPIView(APIView):
    """Caps the body size before anything parses it, and hands out a JSON-object body."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method in ("POST", "PUT", "PATCH"):
            _body_size_check(request._request)

    def body(self, request: Request) -> dict[str, Any]:
        data = request.data
        if not isinstance(data, dict):
            raise exceptions.ValidationError({"body": ["Expected a JSON object."]})
        return dict(data)


def _body_size_check(request: HttpRequest) -> None:
    limit = settings.MAX_REQUEST_BODY_BYTES
    too_big = exceptions.ValidationError({"body": [f"Request body exceeds {limit} bytes."]})
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_big
    if len(request.body) > limit:
        raise too_big


def _no_store(response: Response) -> Response:
    # Responses carrying a client secret must not be cached anywhere.
    response["Cache-Control"] = "no-store"
    return response


# --- Views --------------------------------------------------------------------------------


class MemorySerializer(serializers.Serializer):
    """What a new session started with from the owner's earlier sessions (extraction.memory)."""

    class Meta:
        ref_name = "SessionMemory"

    carried = serializers.BooleanField()
    profile = serializers.DictField(allow_null=True)
    fromSessionId = serializers.UUIDField(allow_null=True)
    recapTurns = serializers.ListField(child=serializers.DictField())


class SessionCreateView(ClientAPIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SessionCreateInput"

        model = StrictCharField()
        voice = StrictCharField()
        enableTranscription = StrictBooleanField(required=False, default=True)
        reset = StrictBooleanField(required=False, default=False)
        carryProfile = StrictBooleanField(required=False, default=False)
        # Start from the owner's memory (extraction.memory); default: yes for a host-app
        # user, no for an anonymous browser.
        carryMemory = StrictBooleanField(required=False)

        def validate_model(self, value: str) -> str:
            if value not in settings.REALTIME_MODELS:
                raise serializers.ValidationError(
                    f"Unknown model; one of: {', '.join(settings.REALTIME_MODELS)}."
                )
            return value

        def validate_voice(self, value: str) -> str:
            if value not in settings.REALTIME_VOICES:
                raise serializers.ValidationError(
                    f"Unknown voice; one of: {', '.join(settings.REALTIME_VOICES)}."
                )
            return value

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SessionCreateOutput"

        sessionId = serializers.UUIDField()
        clientSecret = serializers.CharField()
        expiresAt = serializers.DateTimeField()
        callId = serializers.CharField(allow_null=True)
        memory = MemorySerializer(required=False)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ratelimit.rate_limit_hit(
            scope="create",
            key=auth.client_rate_key(request),
            limit=settings.RATE_LIMIT_CREATE_PER_MINUTE,
        )
        # A caller with no identity (no token, no well-formed cookie) gets a new browser
        # credential with its first session.
        identity = auth.request_identity(request)
        new_credential = None
        if identity is None:
            new_credential = auth.client_credential_new()
            identity = Identity(
                owner_hash=auth.client_hash_of(new_credential), subject="", source="cookie"
            )
        created = services.session_create(
            owner_hash=identity.owner_hash,
            owner_subject=identity.subject,
            model=data["model"],
            voice=data["voice"],
            transcription=data["enableTranscription"],
            reset=data["reset"],
            carry_profile=data["carryProfile"],
            carry_memory=data.get("carryMemory", identity.is_host_user),
        )
        response = Response(
            {
                "sessionId": str(created.session.public_id),
                "clientSecret": created.secret_value,
                "expiresAt": selectors.iso(created.secret.expires_at),
                "callId": None,
            },
            status=status.HTTP_201_CREATED,
        )
        if created.memory is not None:
            # Only a session that asked for memory says what it carried: the seed's shape stays.
            response.data["memory"] = memory_json(created.memory)
        if new_credential is not None:
            auth.client_cookie_set(response, credential=new_credential)
        return _no_store(response)


class SessionCallView(ClientAPIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SessionCallInput"

        sessionId = SessionIdField()
        callId = StrictCharField(max_length=CALL_ID_MAX)

        def validate_callId(self, value: str) -> str:
            if not CALL_ID_RE.fullmatch(value):
                raise serializers.ValidationError("Must be a Realtime call id (rtc_...).")
            return value

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SessionCallOutput"

        sessionId = serializers.UUIDField()
        callId = serializers.CharField()
        generation = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        session = auth.owned_session_or_404(request, serializer.validated_data["sessionId"])
        call, _created = services.call_register(
            session=session, call_id=serializer.validated_data["callId"]
        )
        return Response(
            {
                "sessionId": str(session.public_id),
                "callId": call.call_id,
                "generation": call.generation,
            }
        )


class SessionRenewView(ClientAPIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SessionRenewInput"

        sessionId = SessionIdField()

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SessionRenewOutput"

        clientSecret = serializers.CharField()
        expiresAt = serializers.DateTimeField()
        instructions = serializers.CharField()
        callId = serializers.CharField(allow_null=True)

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        session = auth.owned_session_or_404(request, serializer.validated_data["sessionId"])
        ratelimit.rate_limit_hit(
            scope="renew",
            key=auth.client_rate_key(request),
            limit=settings.RATE_LIMIT_RENEW_PER_MINUTE,
        )
        renewed = services.session_renew(session=session)
        return _no_store(
            Response(
                {
                    "clientSecret": renewed.secret_value,
                    "expiresAt": selectors.iso(renewed.secret.expires_at),
                    "instructions": renewed.instructions,
                    "callId": renewed.call.call_id if renewed.call is not None else None,
                }
            )
        )


def _session_from_path(request: Request, session_id: str) -> Session:
    if auth.session_id_parse(session_id) is None:
        raise exceptions.ValidationError({"sessionId": ["Must be a session id (a UUID)."]})
    return auth.owned_session_or_404(request, session_id)


_CALLS_SCHEMA = inline_serializer(
    "Call",
    many=True,
    fields={
        "callId": serializers.CharField(),
        "generation": serializers.IntegerField(),
        "registeredAt": serializers.DateTimeField(),
        "attachedAt": serializers.DateTimeField(allow_null=True),
        "endedAt": serializers.DateTimeField(allow_null=True),
        "endReason": serializers.CharField(allow_null=True),
    },
)


class SessionDetailView(ClientAPIView):
    @extend_schema(
        responses={
            200: inline_serializer(
                "SessionState",
                {
                    "sessionId": serializers.UUIDField(),
                    "status": serializers.ChoiceField(choices=Session.Status.choices),
                    "model": serializers.CharField(),
                    "voice": serializers.CharField(),
                    "enableTranscription": serializers.BooleanField(),
                    "createdAt": serializers.DateTimeField(),
                    "closedAt": serializers.DateTimeField(allow_null=True),
                    "closeReason": serializers.CharField(allow_null=True),
                    "replaces": serializers.UUIDField(allow_null=True),
                    "replacedBy": serializers.UUIDField(allow_null=True),
                    "generation": serializers.IntegerField(),
                    "callId": serializers.CharField(allow_null=True),
                    "expiresAt": serializers.DateTimeField(allow_null=True),
                    "calls": _CALLS_SCHEMA,
                    "turnCount": serializers.IntegerField(),
                },
            )
        }
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = _session_from_path(request, session_id)
        return Response(selectors.session_json(session=session))


class SessionTranscriptView(ClientAPIView):
    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "SessionTranscriptQuery"

        after = serializers.IntegerField(required=False)

    @extend_schema(
        parameters=[QuerySerializer],
        responses={
            200: inline_serializer(
                "Transcript",
                {
                    "sessionId": serializers.UUIDField(),
                    "seq": serializers.IntegerField(),
                    "turns": serializers.ListField(child=serializers.DictField()),
                },
            )
        },
    )
    def get(self, request: Request, session_id: str) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        session = _session_from_path(request, session_id)
        return Response(
            selectors.transcript_json(session=session, after=query.validated_data.get("after"))
        )
