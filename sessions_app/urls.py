"""Routes of the session API (paths exactly as the seed) and the page at /."""

from __future__ import annotations

from django.urls import URLPattern, path

from extraction.api import ExtractionStatusView, ExtractProfileView
from sessions_app import api, views

urlpatterns: list[URLPattern] = [
    path("", views.index, name="index"),
    path("session", api.SessionCreateView.as_view(), name="session-create"),
    path("session/call", api.SessionCallView.as_view(), name="session-call"),
    path("session/renew", api.SessionRenewView.as_view(), name="session-renew"),
    path("session/<str:session_id>", api.SessionDetailView.as_view(), name="session-detail"),
    path(
        "session/<str:session_id>/transcript",
        api.SessionTranscriptView.as_view(),
        name="session-transcript",
    ),
    path(
        "session/<str:session_id>/transcript.<str:kind>",
        api.SessionTranscriptFileView.as_view(),
        name="session-transcript-file",
    ),
    # Validation, ownership (sessions_app.auth) and the work live in the extraction app.
    path("extract-profile", ExtractProfileView.as_view(), name="extract-profile"),
    path(
        "extract-profile/<str:run_id>",
        ExtractionStatusView.as_view(),
        name="extract-profile-status",
    ),
]
