"""The session API's reads: the session's state, its transcript (and the live push's position
at read time), the transcript as a file. Their JSON is written by sessions_app.selectors, where
the live push and the server API find the same shapes; the schemas below document it.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from sessions_app import auth, export, selectors
from sessions_app.api.base import ClientAPIView
from sessions_app.api.fields import AnyCallIdField, StrictInputSerializer
from sessions_app.models import Call, Session, TranscriptTurn
from sessions_app.schema import errors, uuid_path


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
