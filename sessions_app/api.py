"""The session API: paths and JSON names exactly as the seed's realtime session flow.

Views are thin: parse and validate input, check who may act (sessions_app.auth), call one
service or selector, serialise. Bad input is a 400 naming the field, with nothing written.

Input is strict: JSON types are not coerced, strings are not trimmed (`" marin"` and
`"rtc_abc\n"` are 400s, never stored trimmed), and a field the endpoint does not know is a 400
naming it. The OpenAPI schema says all of it (sessions_app.schema).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.http import Http404, HttpRequest, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from extraction.memory import memory_json
from sessions_app import auth, export, ratelimit, selectors, services, upstream
from sessions_app.identity import Identity
from sessions_app.models import Call, Session, TranscriptTurn
from sessions_app.schema import BODY_ERRORS, RETRY_AFTER, UPSTREAM_ERRORS, errors, uuid_path
from sessions_app.voice import OfferMismatch

# OpenAI call ids: `rtc_` then letters, digits and underscores (e.g. `rtc_u1_9c6574da...`).
CALL_ID_RE = re.compile(r"^rtc_[A-Za-z0-9][A-Za-z0-9_]*$")
CALL_ID_MAX = 64
# The call ids this server records: a Realtime call's (`rtc_...`) or a Live session's
# (`live_...`, e.g. `live_u1_...`), which plays the call's role on Live.
ANY_CALL_ID_RE = re.compile(r"^(?:rtc|live)_[A-Za-z0-9][A-Za-z0-9_]*$")
# A browser's SDP offer (Live): a few KB; the request body cap bounds it anyway. `v=0` first,
# a media section (`m=`) at the start of a later line, no NUL anywhere.
SDP_MAX = 12_000
SDP_RE = re.compile(r"^v=0\r?\n(?:[^\x00]*\n)?m=[^\x00]*$")


# --- Strict input fields: JSON types are not coerced (5 is not "5", "true" is not true) ----


class StrictCharField(serializers.CharField):
    """A JSON string, taken as sent: never trimmed (surrounding whitespace then fails the
    field's pattern or choices, so it is a 400, not a silently different value)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class SettingChoiceField(StrictCharField):
    """One of the values of a list setting (read per request, so the environment rules); the
    schema shows them as an enum (sessions_app.schema.SettingChoiceFieldExtension)."""

    def __init__(self, *, setting: str, what: str, **kwargs: Any) -> None:
        self.setting = setting
        self.what = what
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        allowed = getattr(settings, self.setting)
        if value not in allowed:
            raise serializers.ValidationError(f"Unknown {self.what}; one of: {', '.join(allowed)}.")
        return value


class FullMatchValidator(RegexValidator):
    """A RegexValidator that matches the whole value: `$` alone lets a trailing newline
    through (`"rtc_abc\n"`). The schema shows the pattern (drf-spectacular reads `regex`)."""

    def __call__(self, value: Any) -> None:
        if not re.compile(self.regex).fullmatch(str(value)):
            raise DjangoValidationError(self.message, code=self.code, params={"value": value})


class CallIdField(StrictCharField):
    """A Realtime call id; the schema shows its pattern and length."""

    pattern = CALL_ID_RE
    message = "Must be a Realtime call id (rtc_...)."

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", CALL_ID_MAX)
        kwargs.setdefault("validators", [FullMatchValidator(self.pattern, self.message)])
        super().__init__(**kwargs)


class AnyCallIdField(CallIdField):
    """A recorded call's id on either API: Realtime `rtc_...` or Live `live_...`."""

    pattern = ANY_CALL_ID_RE
    message = "Must be a call id (rtc_... or live_...)."


@extend_schema_field(OpenApiTypes.UUID)
class SessionIdField(StrictCharField):
    default_error_messages = {"malformed": "Must be a session id (a UUID)."}

    def to_internal_value(self, data: Any) -> Any:
        raw = super().to_internal_value(data)
        parsed = auth.session_id_parse(raw)
        if parsed is None:
            self.fail("malformed")
        return parsed


# The input of an endpoint: a field it does not know is a 400 naming it (a misspelt
# `enableTranscripton` must not silently mean the default). A comment, not a docstring: the
# schema would show a docstring as every input's description.
class StrictInputSerializer(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in data if name not in self.fields)
            if unknown:
                raise exceptions.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


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
    if isinstance(exc, OfferMismatch):
        return Response({"sdp": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
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
    try:
        body = request.body
    except RequestDataTooBig:  # a body without a Content-Length past Django's own cap
        raise too_big from None
    if len(body) > limit:
        raise too_big


def _no_store(response: Response) -> Response:
    # Responses carrying a client secret must not be cached anywhere.
    response["Cache-Control"] = "no-store"
    return response


# --- Views --------------------------------------------------------------------------------


class SdpField(StrictCharField):
    """A browser's SDP offer (Live): `v=0`, then at least one media line (`m=`), no NUL; the
    schema shows the same pattern. Whether it can be negotiated is the upstream's to say (a
    400 naming `sdp` when it cannot)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", SDP_MAX)
        validator = FullMatchValidator(SDP_RE, "Must be an SDP offer (v=0 ... m=...).")
        kwargs.setdefault("validators", [validator])
        super().__init__(**kwargs)


class ApiField(StrictCharField):
    """The `api` of a create body whose variant is `api` (the schema's oneOf): documented as
    that one value; any other value is refused naming both APIs."""

    def __init__(self, *, api: str, **kwargs: Any) -> None:
        self.api = api
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value != self.api:
            raise serializers.ValidationError(
                f"Unknown api; one of: {', '.join(Session.Api.values)}."
            )
        return value


def _offer_check(api: str, sdp: str | None) -> None:
    """Live needs the browser's offer; Realtime takes none (the browser calls OpenAI)."""
    if api == Session.Api.LIVE and sdp is None:
        raise exceptions.ValidationError({"sdp": ["Required for a Live session."]})
    if api == Session.Api.REALTIME and sdp is not None:
        raise exceptions.ValidationError(
            {"sdp": ["Only for a Live session: a Realtime page sends its offer to OpenAI."]}
        )


class MemorySerializer(serializers.Serializer):
    """What a new session started with from the owner's earlier sessions (extraction.memory)."""

    class Meta:
        ref_name = "SessionMemory"

    carried = serializers.BooleanField()
    profile = serializers.DictField(allow_null=True)
    fromSessionId = serializers.UUIDField(allow_null=True)
    recapTurns = serializers.ListField(child=serializers.DictField())


class SessionCreateInput(StrictInputSerializer):
    """What both APIs' create bodies share. `api` may be left out of the body of the server's
    default API (settings.VOICE_API) only: the schema says which."""

    API: ClassVar[str]

    enableTranscription = StrictBooleanField(required=False, default=True)
    reset = StrictBooleanField(required=False, default=False)
    carryProfile = StrictBooleanField(required=False, default=False)
    # Start from the owner's memory (extraction.memory); default: yes for a host-app
    # user, no for an anonymous browser.
    carryMemory = StrictBooleanField(required=False)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["api"].required = settings.VOICE_API != self.API
        return fields


class SessionCreateView(ClientAPIView):
    """Create a session: a client secret for the browser's Realtime call. `reset: true` closes
    the caller's newest open session first (its transcript kept) and, with `carryProfile`,
    carries its profile over. A browser without a client cookie gets one."""

    class InputSerializer(SessionCreateInput):
        """Realtime: the server mints a client secret, the browser calls OpenAI itself."""

        API = Session.Api.REALTIME

        class Meta:
            ref_name = "SessionCreateRealtimeInput"

        api = ApiField(api=Session.Api.REALTIME, required=False)
        model = SettingChoiceField(setting="REALTIME_MODELS", what="model")
        voice = SettingChoiceField(setting="REALTIME_VOICES", what="voice")

    class LiveInputSerializer(SessionCreateInput):
        """Live: the browser's SDP offer comes here; the answer goes back to it."""

        API = Session.Api.LIVE

        class Meta:
            ref_name = "SessionCreateLiveInput"

        api = ApiField(api=Session.Api.LIVE, required=False)
        model = SettingChoiceField(setting="LIVE_MODELS", what="model")
        voice = SettingChoiceField(setting="LIVE_VOICES", what="voice")
        sdp = SdpField(error_messages={"required": "Required for a Live session."})

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SessionCreateOutput"

        sessionId = serializers.UUIDField()
        clientSecret = serializers.CharField(allow_null=True)
        expiresAt = serializers.DateTimeField()
        callId = AnyCallIdField(allow_null=True)
        api = serializers.ChoiceField(choices=Session.Api.values, required=False)
        sdp = serializers.CharField(required=False)
        memory = MemorySerializer(required=False)

    @extend_schema(
        # One body per API (exactly one matches): `api` picks it, the server's VOICE_API when
        # left out; Live's carries the SDP offer, Realtime's has none.
        request=PolymorphicProxySerializer(
            component_name="SessionCreateInput",
            serializers=[InputSerializer, LiveInputSerializer],
            resource_type_field_name=None,
        ),
        responses={201: OutputSerializer, **errors(*BODY_ERRORS, 429, *UPSTREAM_ERRORS)},
        parameters=[RETRY_AFTER],
    )
    def post(self, request: Request) -> Response:
        raw = self.body(request)
        variant: type[SessionCreateInput] = (
            self.LiveInputSerializer
            if raw.get("api", settings.VOICE_API) == Session.Api.LIVE
            else self.InputSerializer
        )
        serializer = variant(data=raw)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        for key in auth.client_create_rate_keys(request):
            ratelimit.rate_limit_hit(
                scope="create", key=key, limit=settings.RATE_LIMIT_CREATE_PER_MINUTE
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
            api=variant.API,
            offer_sdp=data.get("sdp"),
        )
        body: dict[str, Any] = {
            "sessionId": str(created.session.public_id),
            "clientSecret": created.secret_value,
            "expiresAt": selectors.iso(created.expires_at),
            "callId": created.call.call_id if created.call is not None else None,
        }
        if created.session.api == Session.Api.LIVE:
            # Live: the call is the upstream session, already registered; the page applies
            # the SDP answer. Realtime answers keep the seed's shape exactly.
            body.update(api=created.session.api, sdp=created.answer_sdp)
        if created.memory is not None:
            # Only a session that asked for memory says what it carried: the seed's shape stays.
            body["memory"] = memory_json(created.memory)
        response = Response(body, status=status.HTTP_201_CREATED)
        if new_credential is not None:
            auth.client_cookie_set(response, credential=new_credential)
        return _no_store(response)


class SessionCallView(ClientAPIView):
    """Register the browser's Realtime call with its session: the server attaches the sideband
    and records the transcript. The same call again gives the same answer."""

    class InputSerializer(StrictInputSerializer):
        class Meta:
            ref_name = "SessionCallInput"

        sessionId = SessionIdField()
        callId = CallIdField()

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SessionCallOutput"

        sessionId = serializers.UUIDField()
        callId = CallIdField()
        generation = serializers.IntegerField()

    @extend_schema(
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            **errors(
                *BODY_ERRORS,
                404,
                conflict="callId is registered to another session, or the session is closed.",
            ),
        },
    )
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
    """A new client secret for the session, the latest instructions and the current call."""

    class InputSerializer(StrictInputSerializer):
        class Meta:
            ref_name = "SessionRenewInput"

        sessionId = SessionIdField()
        # A Live session's renewal is a new upstream session: the page's new SDP offer.
        sdp = SdpField(
            required=False,
            help_text="The page's new SDP offer: required when the session is a Live one, "
            "refused (400 naming sdp) when it is a Realtime one.",
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SessionRenewOutput"

        clientSecret = serializers.CharField(allow_null=True)
        expiresAt = serializers.DateTimeField()
        instructions = serializers.CharField()
        callId = AnyCallIdField(allow_null=True)
        sdp = serializers.CharField(required=False)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            **errors(*BODY_ERRORS, 404, 429, *UPSTREAM_ERRORS, conflict="The session is closed."),
        },
        parameters=[RETRY_AFTER],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        session = auth.owned_session_or_404(request, serializer.validated_data["sessionId"])
        offer = serializer.validated_data.get("sdp")
        _offer_check(session.api, offer)
        ratelimit.rate_limit_hit(
            scope="renew",
            key=auth.client_rate_key(request),
            limit=settings.RATE_LIMIT_RENEW_PER_MINUTE,
        )
        renewed = services.session_renew(session=session, offer_sdp=offer)
        body: dict[str, Any] = {
            "clientSecret": renewed.secret_value,
            "expiresAt": selectors.iso(renewed.expires_at),
            "instructions": renewed.instructions,
            "callId": renewed.call.call_id if renewed.call is not None else None,
        }
        if renewed.answer_sdp is not None:
            body["sdp"] = renewed.answer_sdp  # Live: the new session's answer, call registered
        return _no_store(Response(body))


def _session_from_path(request: Request, session_id: str) -> Session:
    if auth.session_id_parse(session_id) is None:
        raise exceptions.ValidationError({"sessionId": ["Must be a session id (a UUID)."]})
    return auth.owned_session_or_404(request, session_id)


# sideband.selectors.call_capture: "pending" = no worker captures the call past its grace.
_CAPTURE_STATES = ["active", "starting", "pending", "ended"]

_CALLS_SCHEMA = inline_serializer(
    "Call",
    many=True,
    fields={
        "callId": AnyCallIdField(),
        "generation": serializers.IntegerField(),
        "registeredAt": serializers.DateTimeField(),
        "attachedAt": serializers.DateTimeField(allow_null=True),
        "endedAt": serializers.DateTimeField(allow_null=True),
        "endReason": serializers.ChoiceField(choices=Call.EndReason.choices, allow_null=True),
        "capture": serializers.ChoiceField(choices=_CAPTURE_STATES),
    },
)

# One turn as `selectors.turn_json` writes it (the live push sends the same shape); the four
# tool fields only on tool turns.
_TURN_SCHEMA = inline_serializer(
    "Turn",
    many=True,
    fields={
        "itemId": serializers.CharField(),
        "role": serializers.ChoiceField(choices=TranscriptTurn.Role.choices),
        "text": serializers.CharField(allow_null=True),
        "status": serializers.ChoiceField(choices=TranscriptTurn.Status.choices),
        "statusReason": serializers.CharField(allow_blank=True),
        "position": serializers.IntegerField(),
        "callId": AnyCallIdField(allow_null=True),
        "createdAt": serializers.DateTimeField(),
        "updatedAt": serializers.DateTimeField(),
        "name": serializers.CharField(required=False),
        "arguments": serializers.CharField(required=False),
        "toolCallId": serializers.CharField(required=False),
        "output": serializers.CharField(required=False),
    },
)
_SESSION_PATH = uuid_path("session_id", "The session's id (sessionId).")


class SessionDetailView(ClientAPIView):
    """The session's state, its calls (oldest first) and the newest secret's expiry."""

    @extend_schema(
        parameters=[_SESSION_PATH],
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
                    "callId": AnyCallIdField(allow_null=True),
                    "expiresAt": serializers.DateTimeField(allow_null=True),
                    "api": serializers.ChoiceField(choices=Session.Api.values, required=False),
                    "capture": serializers.ChoiceField(choices=_CAPTURE_STATES, allow_null=True),
                    "calls": _CALLS_SCHEMA,
                    "turnCount": serializers.IntegerField(),
                    "profile": serializers.DictField(allow_null=True),
                },
            ),
            **errors(400, 404),
        },
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = _session_from_path(request, session_id)
        return Response(selectors.session_json(session=session))


class SessionTranscriptView(ClientAPIView):
    """The session's turns in conversation order (only those after `after` when given), and
    the live push's sequence number at read time."""

    class QuerySerializer(StrictInputSerializer):
        class Meta:
            ref_name = "SessionTranscriptQuery"

        # A position (a bigint): only turns placed after it.
        after = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1)

    @extend_schema(
        parameters=[_SESSION_PATH, QuerySerializer],
        responses={
            200: inline_serializer(
                "Transcript",
                {
                    "sessionId": serializers.UUIDField(),
                    "seq": serializers.IntegerField(allow_null=True),
                    "epoch": serializers.IntegerField(allow_null=True),
                    "turns": _TURN_SCHEMA,
                },
            ),
            **errors(400, 404),
        },
    )
    def get(self, request: Request, session_id: str) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        session = _session_from_path(request, session_id)
        return Response(
            selectors.transcript_json(session=session, after=query.validated_data.get("after"))
        )


class SessionTranscriptFileView(ClientAPIView):
    """The transcript as a file to download (`.md` or `.json`), from the server's record."""

    @extend_schema(
        parameters=[
            _SESSION_PATH,
            OpenApiParameter(
                "kind",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                enum=list(export.KINDS),
                description="md: Markdown to read; json: the turns as the API shows them.",
            ),
        ],
        responses={
            (200, "text/markdown"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiTypes.OBJECT,
            **errors(400, 404),
        },
    )
    def get(self, request: Request, session_id: str, kind: str) -> HttpResponse:
        session = _session_from_path(request, session_id)
        try:
            file = export.transcript_file(session, kind=kind)
        except ValueError:
            raise Http404 from None
        response = HttpResponse(file.content, content_type=file.content_type)
        response["Content-Disposition"] = f'attachment; filename="{file.filename}"'
        return response
