"""Routes of the session API (paths exactly as the seed); config/urls.py mounts them."""

from __future__ import annotations

from django.urls import URLPattern, path

from sessions_app.api import reads, writes

urlpatterns: list[URLPattern] = [
    path("session", writes.SessionCreateView.as_view(), name="session-create"),
    path("session/call", writes.SessionCallView.as_view(), name="session-call"),
    path("session/renew", writes.SessionRenewView.as_view(), name="session-renew"),
    path("session/<str:session_id>", reads.SessionDetailView.as_view(), name="session-detail"),
    path(
        "session/<str:session_id>/transcript",
        reads.SessionTranscriptView.as_view(),
        name="session-transcript",
    ),
    path(
        "session/<str:session_id>/transcript.<str:kind>",
        reads.SessionTranscriptFileView.as_view(),
        name="session-transcript-file",
    ),
]
