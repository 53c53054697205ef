"""Routes of the profile extraction (paths exactly as the seed); config/urls.py mounts them."""

from __future__ import annotations

from django.urls import URLPattern, path

from extraction.api import ExtractionStatusView, ExtractProfileView

urlpatterns: list[URLPattern] = [
    path("extract-profile", ExtractProfileView.as_view(), name="extract-profile"),
    path(
        "extract-profile/<str:run_id>",
        ExtractionStatusView.as_view(),
        name="extract-profile-status",
    ),
]
