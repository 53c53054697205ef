"""The page at / (templates/index.html, static/js/): the product's one page, composing every
app (the session API, the live socket and its presence reports, the profile), so it lives at
the top. It sets the csrftoken cookie the API's unsafe requests must echo as X-CSRFToken (see
sessions_app.auth)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from sideband.presence import page_presence_interval_s


def page_config() -> dict[str, Any]:
    """What the page needs to know, rendered into it as JSON (`json_script`): no secrets."""
    ttl = settings.CLIENT_SECRET_TTL_S
    return {
        "models": settings.REALTIME_MODELS,
        "voices": settings.REALTIME_VOICES,
        "defaultModel": settings.REALTIME_MODELS[0] if settings.REALTIME_MODELS else "",
        "defaultVoice": settings.REALTIME_VOICES[0] if settings.REALTIME_VOICES else "",
        # The browser does the SDP exchange with the upstream itself.
        "upstreamBaseUrl": settings.OPENAI_BROWSER_BASE_URL,
        "clientSecretTtlS": ttl,
        # Renew this long before the key expires (and before the call's time limit).
        "renewMarginS": settings.PAGE_RENEW_MARGIN_S or min(60, max(5, ttl // 10)),
        "sessionMaxS": settings.REALTIME_SESSION_MAX_S,
        # The page says it is still here this often (sideband.presence).
        "presenceIntervalS": page_presence_interval_s(),
    }


def voice_apis_config() -> dict[str, Any]:
    """The voice APIs the page offers in "Model and voice" (default: settings.VOICE_API)."""
    return {
        "default": settings.VOICE_API,
        "apis": {
            "realtime": {
                "label": "Realtime",
                "models": settings.REALTIME_MODELS,
                "voices": settings.REALTIME_VOICES,
                "sessionMaxS": settings.REALTIME_SESSION_MAX_S,
            },
            "live": {
                "label": "GPT-Live",
                "models": settings.LIVE_MODELS,
                "voices": settings.LIVE_VOICES,
                "sessionMaxS": settings.LIVE_SESSION_MAX_S,
            },
        },
    }


@require_safe
@ensure_csrf_cookie
def index(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "index.html",
        {
            "models": settings.REALTIME_MODELS,
            "voices": settings.REALTIME_VOICES,
            "realtime_base_url": settings.OPENAI_BROWSER_BASE_URL,
            "page_config": page_config(),
            "voice_apis": voice_apis_config(),
        },
    )
