"""The session API's writes: create a session (and refresh one), register a call, renew.

Each view parses its input (`InputSerializer`), checks who may act (sessions_app.auth), calls one
service and answers with its `OutputSerializer`: the serializer the schema documents is the one
that writes the answer.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from sessions_app import auth, calls, ratelimit, services
from sessions_app.api.base import ClientAPIView, no_store
from sessions_app.api.fields import (
    AnyCallIdField,
    ApiField,
    CallIdField,
    ResponseSerializer,
    SdpField,
    SessionIdField,
    SettingChoiceField,
    StrictBooleanField,
    StrictInputSerializer,
)
from sessions_app.identity import Identity
from sessions_app.models import Session
from sessions_app.schema import BODY_ERRORS, RETRY_AFTER, UPSTREAM_ERRORS, errors


def _offer_check(api: str, sdp: str | None) -> None:
    """Live needs the browser's offer; Realtime takes none (the browser calls OpenAI)."""
    if api == Session.Api.LIVE and sdp is None:
        raise exceptions.ValidationError({"sdp": ["Required for a Live session."]})
    if api == Session.Api.REALTIME and sdp is not None:
        raise exceptions.ValidationError(
            {"sdp": ["Only for a Live session: a Realtime page sends its offer to OpenAI."]}
        )


class RecapTurnSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SessionMemoryRecapTurn"

    role = serializers.CharField()
    text = serializers.CharField()


class MemorySerializer(serializers.Serializer):
    """What a new session started with from the owner's earlier sessions (extraction.memory)."""

    # Of extraction.memory.Memory: its profile, the session that profile is from, the recap.

    class Meta:
        ref_name = "SessionMemory"

    carried = serializers.BooleanField()
    profile = serializers.DictField(source="profile.data", allow_null=True)
    fromSessionId = serializers.UUIDField(source="profile.session.public_id", allow_null=True)
    recapTurns = RecapTurnSerializer(source="recap", many=True)


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

    # Of services.Created (a comment: the schema shows a docstring).
    class OutputSerializer(ResponseSerializer):
        class Meta:
            ref_name = "SessionCreateOutput"

        sessionId = serializers.UUIDField(source="session.public_id")
        clientSecret = serializers.CharField(source="secret_value", allow_null=True)
        expiresAt = serializers.DateTimeField(source="expires_at")
        callId = AnyCallIdField(source="call.call_id", allow_null=True)
        # Live: the call is the upstream session, already registered; the page applies the
        # SDP answer.
        api = serializers.ChoiceField(
            source="session.api", choices=Session.Api.values, required=False
        )
        sdp = serializers.CharField(source="answer_sdp", required=False)
        # Only a session that asked for memory says what it carried.
        memory = MemorySerializer(required=False)

        def to_representation(self, instance: Any) -> dict[str, Any]:
            data = super().to_representation(instance)
            if instance.session.api != Session.Api.LIVE:
                del data["api"]  # Realtime answers keep the seed's shape exactly
            return data

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
        response = Response(self.OutputSerializer(created).data, status=status.HTTP_201_CREATED)
        if new_credential is not None:
            auth.client_cookie_set(response, credential=new_credential)
        return no_store(response)


class SessionCallView(ClientAPIView):
    """Register the browser's Realtime call with its session: the server attaches the sideband
    and records the transcript. The same call again gives the same answer."""

    class InputSerializer(StrictInputSerializer):
        class Meta:
            ref_name = "SessionCallInput"

        sessionId = SessionIdField()
        callId = CallIdField()

    # Of the registered Call.
    class OutputSerializer(ResponseSerializer):
        class Meta:
            ref_name = "SessionCallOutput"

        sessionId = serializers.UUIDField(source="session.public_id")
        callId = CallIdField(source="call_id")
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
        call, _created = calls.call_register(
            session=session, call_id=serializer.validated_data["callId"]
        )
        return Response(self.OutputSerializer(call).data)


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

    # Of services.Renewed.
    class OutputSerializer(ResponseSerializer):
        class Meta:
            ref_name = "SessionRenewOutput"

        clientSecret = serializers.CharField(source="secret_value", allow_null=True)
        expiresAt = serializers.DateTimeField(source="expires_at")
        instructions = serializers.CharField()
        callId = AnyCallIdField(source="call.call_id", allow_null=True)
        # Live: the new upstream session's answer (its call is registered already).
        sdp = serializers.CharField(source="answer_sdp", required=False)

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
        return no_store(Response(self.OutputSerializer(renewed).data))
