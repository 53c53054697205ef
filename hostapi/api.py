"""The server-to-server API (`/api/v1/...`) the host app's backend calls with an API key.

Thin views: parse, check the key's scope (hostapi.keys), call one selector or service,
serialise. A host user is named by `subject`, the id the host's tokens carry in `sub`.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from extraction.services import NothingToExtract, extraction_request
from hostapi import selectors
from hostapi.keys import ApiKeyAuthentication, KeyHasScope
from hostapi.models import ApiKey
from hostapi.retention import owner_data_delete
from sessions_app.auth import session_id_parse
from sessions_app.identity import subject_owner_hash, subject_valid
from sessions_app.models import Session


def _any() -> serializers.DictField:
    return serializers.DictField()


_ERROR = {"$ref": "#/components/schemas/Error"}
_ANSWERS: dict[int, OpenApiResponse] = {
    400: OpenApiResponse(
        {"$ref": "#/components/schemas/ValidationError"},
        description="Bad input, naming the field; nothing written.",
    ),
    401: OpenApiResponse(_ERROR, description="No API key, or an invalid or revoked one."),
    403: OpenApiResponse(_ERROR, description="The key lacks the scope."),
    404: OpenApiResponse(_ERROR, description="No such session."),
    409: OpenApiResponse(_ERROR, description="The transcript has no spoken turn yet."),
    429: OpenApiResponse(_ERROR, description="The key's rate limit; see Retry-After."),
}


def _errors(*codes: int) -> dict[int, Any]:
    return {code: _ANSWERS[code] for code in (400, 401, 403, *codes, 429)}


_ERRORS = _errors()
_SESSION_ERRORS = _errors(404)


def _subject(raw: str) -> str:
    if not subject_valid(raw):
        raise exceptions.ValidationError({"subject": ["Must be a user id (1-255 printable)."]})
    return raw


def _session(raw: str) -> Session:
    public_id = session_id_parse(raw)
    if public_id is None:
        raise exceptions.ValidationError({"sessionId": ["Must be a session id (a UUID)."]})
    session = Session.objects.filter(public_id=public_id).first()
    if session is None:
        raise exceptions.NotFound("Session not found.")
    return session


class HostAPIView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [KeyHasScope]
    # The scope each method needs; a method the view lacks needs "read" and is then a 405.
    scopes: ClassVar[dict[str, str]] = {"GET": "read"}

    def required_scope(self, request: Request) -> str:
        return self.scopes.get(request.method or "", "read")


class UserSessionsView(HostAPIView):
    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "UserSessionsQuery"

        limit = serializers.IntegerField(required=False, default=50, min_value=1, max_value=200)
        before = serializers.UUIDField(required=False)

    @extend_schema(
        tags=["host"],
        parameters=[QuerySerializer],
        responses={
            200: inline_serializer(
                "UserSessions",
                {
                    "subject": serializers.CharField(),
                    "sessions": serializers.ListField(child=_any()),
                    "next": serializers.UUIDField(allow_null=True),
                },
            ),
            **_ERRORS,
        },
    )
    def get(self, request: Request, subject: str) -> Response:
        subject = _subject(subject)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        before = None
        if "before" in query.validated_data:
            before = Session.objects.filter(public_id=query.validated_data["before"]).first()
            if before is None:
                raise exceptions.ValidationError({"before": ["No such session."]})
        limit = query.validated_data["limit"]
        sessions = selectors.sessions_of(
            owner_hash=subject_owner_hash(subject), limit=limit + 1, before=before
        )
        page = sessions[:limit]
        return Response(
            {
                "subject": subject,
                "sessions": [selectors.session_api_json(session=s) for s in page],
                "next": str(page[-1].public_id) if len(sessions) > limit else None,
            }
        )


class UserDataView(HostAPIView):
    scopes: ClassVar[dict[str, str]] = {"DELETE": "delete"}

    @extend_schema(
        tags=["host"],
        responses={
            200: inline_serializer(
                "UserDataDeleted", {"subject": serializers.CharField(), "deleted": _any()}
            ),
            **_ERRORS,
        },
    )
    def delete(self, request: Request, subject: str) -> Response:
        subject = _subject(subject)
        key = cast(ApiKey, request.auth)  # KeyHasScope let only a key through
        deletion = owner_data_delete(
            owner_hash=subject_owner_hash(subject), requested_by=f"api-key:{key.prefix}"
        )
        return Response(
            {
                "subject": subject,
                "deleted": {
                    "sessions": deletion.sessions,
                    "turns": deletion.turns,
                    "profiles": deletion.profiles,
                    "secrets": deletion.secrets,
                    "deliveries": deletion.deliveries,
                },
            }
        )


class UserExportView(HostAPIView):
    @extend_schema(
        tags=["host"],
        responses={
            200: inline_serializer(
                "UserExport",
                {
                    "subject": serializers.CharField(),
                    "sessions": serializers.ListField(child=_any()),
                },
            ),
            **_ERRORS,
        },
    )
    def get(self, request: Request, subject: str) -> Response:
        subject = _subject(subject)
        return Response(
            selectors.export_json(owner_hash=subject_owner_hash(subject), subject=subject)
        )


class HostSessionView(HostAPIView):
    @extend_schema(tags=["host"], responses={200: OpenApiTypes.OBJECT, **_SESSION_ERRORS})
    def get(self, request: Request, session_id: str) -> Response:
        return Response(selectors.session_api_json(session=_session(session_id)))


class HostTranscriptView(HostAPIView):
    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "HostTranscriptQuery"

        after = serializers.IntegerField(required=False)
        limit = serializers.IntegerField(
            required=False, default=100, min_value=1, max_value=selectors.MAX_PAGE
        )

    @extend_schema(
        tags=["host"],
        parameters=[QuerySerializer],
        responses={
            200: inline_serializer(
                "TranscriptPage",
                {
                    "sessionId": serializers.UUIDField(),
                    "turns": serializers.ListField(child=_any()),
                    "next": serializers.IntegerField(allow_null=True),
                },
            ),
            **_SESSION_ERRORS,
        },
    )
    def get(self, request: Request, session_id: str) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        session = _session(session_id)
        return Response(
            selectors.transcript_page_json(
                session=session,
                after=query.validated_data.get("after"),
                limit=query.validated_data["limit"],
            )
        )


class HostProfilesView(HostAPIView):
    @extend_schema(
        tags=["host"],
        responses={
            200: inline_serializer(
                "Profiles",
                {
                    "sessionId": serializers.UUIDField(),
                    "profiles": serializers.ListField(child=_any()),
                },
            ),
            **_SESSION_ERRORS,
        },
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = _session(session_id)
        return Response(
            {
                "sessionId": str(session.public_id),
                "profiles": selectors.profiles_json(session=session),
            }
        )


class HostExtractionsView(HostAPIView):
    scopes: ClassVar[dict[str, str]] = {"GET": "read", "POST": "write"}

    @extend_schema(
        tags=["host"],
        responses={
            200: inline_serializer(
                "ExtractionRuns",
                {
                    "sessionId": serializers.UUIDField(),
                    "extractions": serializers.ListField(child=_any()),
                },
            ),
            **_SESSION_ERRORS,
        },
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = _session(session_id)
        return Response(
            {
                "sessionId": str(session.public_id),
                "extractions": selectors.runs_json(session=session),
            }
        )

    @extend_schema(
        tags=["host"],
        request=None,
        responses={
            200: OpenApiResponse(description="Nothing new was said: the latest profile"),
            202: OpenApiResponse(description="An extraction run started (or was joined)"),
            **_errors(404, 409),
        },
    )
    def post(self, request: Request, session_id: str) -> Response:
        session = _session(session_id)
        try:
            outcome = extraction_request(session=session)
        except NothingToExtract:
            return Response(
                {"detail": "The transcript has no spoken turn yet.", "code": "nothing_to_extract"},
                status=status.HTTP_409_CONFLICT,
            )
        if outcome.run is not None:
            return Response(selectors.run_json(outcome.run), status=status.HTTP_202_ACCEPTED)
        if outcome.profile is None:  # pragma: no cover - extraction_request returns one of both
            raise exceptions.APIException("Extraction request returned nothing.")
        return Response(selectors.profile_json(outcome.profile))
