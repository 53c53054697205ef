"""Every route, mounted here at the top: the page, the session API (sessions_app), the profile
extraction (extraction), the server API (hostapi), the schema and the admin. The live socket's
route is config/asgi.py's (sideband.routing)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import page

handler400 = "config.errors.bad_request"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include("hostapi.urls")),
    path("", page.index, name="index"),
    path("", include("sessions_app.urls")),
    # Validation, ownership (sessions_app.auth) and the work live in the extraction app.
    path("", include("extraction.urls")),
]
