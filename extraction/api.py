"""`POST /extract-profile {sessionId}` and its status URL.

The view waits for the extraction up to settings.EXTRACTION_WAIT_S (polling the run's row, so
no result backend is needed), then answers 200 `{profile, instructions, version}`, or 202
`{status: "pending", statusUrl}` for the page to poll; the result is also pushed on the
session's live socket as `{"type": "profile", ...}`.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from extraction.models import ExtractionRun
from extraction.selectors import profile_payload, run_wait
from extraction.services import NothingToExtract, extraction_request
from sessions_app import auth
from sessions_app.api.base import ClientAPIView
from sessions_app.api.fields import SessionIdField, StrictInputSerializer
from sessions_app.schema import BODY_ERRORS, errors, uuid_path

_PROFILE_SCHEMA = inline_serializer(
    "ExtractedProfile",
    {
        "profile": serializers.DictField(),
        "instructions": serializers.CharField(),
        "version": serializers.IntegerField(),
    },
)
_PENDING_SCHEMA = inline_serializer(
    "ExtractionPending",
    {
        "status": serializers.ChoiceField(choices=[ExtractionRun.Status.PENDING]),
        "statusUrl": serializers.CharField(),
    },
)
# `_run_json`: the profile's fields once it succeeded, `error` once it failed.
_RUN_SCHEMA = inline_serializer(
    "ExtractionRun",
    {
        "status": serializers.ChoiceField(choices=ExtractionRun.Status.choices),
        "statusUrl": serializers.CharField(),
        "profile": serializers.DictField(required=False),
        "instructions": serializers.CharField(required=False),
        "version": serializers.IntegerField(required=False),
        "error": serializers.CharField(required=False),
    },
)


def _run_json(run: ExtractionRun) -> dict[str, Any]:
    status_url = reverse("extract-profile-status", args=[str(run.public_id)])
    body: dict[str, Any] = {"status": run.status, "statusUrl": status_url}
    if run.status == ExtractionRun.Status.SUCCEEDED and run.profile is not None:
        body.update(profile_payload(profile=run.profile))
    if run.status == ExtractionRun.Status.FAILED:
        body["error"] = run.error
    return body


class ExtractProfileView(ClientAPIView):
    """`POST /extract-profile {sessionId}`: 200 `{profile, instructions, version}` within
    EXTRACTION_WAIT_S, else 202 `{status: "pending", statusUrl}`; 409 when nothing was said yet,
    502 when the extraction failed (nothing is stored)."""

    class InputSerializer(StrictInputSerializer):
        class Meta:
            ref_name = "ExtractProfileInput"

        sessionId = SessionIdField()

    @extend_schema(
        request=InputSerializer,
        responses={
            200: _PROFILE_SCHEMA,
            202: _PENDING_SCHEMA,
            **errors(
                *BODY_ERRORS,
                404,
                502,
                conflict="Nothing to extract yet: the transcript has no spoken turn.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        session = auth.owned_session_or_404(request, serializer.validated_data["sessionId"])
        try:
            outcome = extraction_request(session=session)
        except NothingToExtract:
            return Response(
                {
                    "detail": "Nothing to extract yet: the transcript has no spoken turn.",
                    "code": "nothing_to_extract",
                },
                status=status.HTTP_409_CONFLICT,
            )
        if outcome.profile is not None:
            return Response(profile_payload(profile=outcome.profile))
        if outcome.run is None:  # pragma: no cover - extraction_request returns one or the other
            raise exceptions.APIException("Extraction request returned nothing.")
        run = run_wait(run=outcome.run, timeout_s=settings.EXTRACTION_WAIT_S)
        if run.status == ExtractionRun.Status.SUCCEEDED and run.profile is not None:
            return Response(profile_payload(profile=run.profile))
        if run.status == ExtractionRun.Status.FAILED:
            return Response(
                {"detail": f"The extraction failed: {run.error}", "code": "extraction_failed"}
                | _run_json(run),
                status=status.HTTP_502_BAD_GATEWAY,
            )
        return Response(
            {"status": "pending", "statusUrl": _run_json(run)["statusUrl"]},
            status=status.HTTP_202_ACCEPTED,
        )


class ExtractionStatusView(ClientAPIView):
    """`GET /extract-profile/<runId>`: pending, succeeded (with the profile) or failed."""

    @extend_schema(
        parameters=[uuid_path("run_id", "The extraction's id (the last part of statusUrl).")],
        responses={200: _RUN_SCHEMA, **errors(400, 404)},
    )
    def get(self, request: Request, run_id: str) -> Response:
        try:
            public_id = uuid.UUID(run_id)
        except ValueError:
            raise exceptions.ValidationError(
                {"runId": ["Must be an extraction id (a UUID)."]}
            ) from None
        identity = auth.request_identity(request)
        run = (
            ExtractionRun.objects.select_related("profile")
            .filter(
                public_id=public_id,
                session__owner_hash=identity.owner_hash if identity is not None else "",
            )
            .first()
        )
        if identity is None or run is None:
            raise exceptions.NotFound("Extraction not found.")
        return Response(_run_json(run))
