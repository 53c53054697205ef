"""Routes of the server-to-server API."""

from __future__ import annotations

from django.urls import URLPattern, path

from hostapi import api

urlpatterns: list[URLPattern] = [
    path("users/<str:subject>", api.UserDataView.as_view(), name="host-user"),
    path("users/<str:subject>/sessions", api.UserSessionsView.as_view(), name="host-user-sessions"),
    path("users/<str:subject>/export", api.UserExportView.as_view(), name="host-user-export"),
    path("sessions/<str:session_id>", api.HostSessionView.as_view(), name="host-session"),
    path(
        "sessions/<str:session_id>/transcript",
        api.HostTranscriptView.as_view(),
        name="host-transcript",
    ),
    path(
        "sessions/<str:session_id>/profiles", api.HostProfilesView.as_view(), name="host-profiles"
    ),
    path(
        "sessions/<str:session_id>/extractions",
        api.HostExtractionsView.as_view(),
        name="host-extractions",
    ),
]
