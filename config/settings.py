"""The one settings module. Every knob comes from the environment (see config/env.py).

Defaults make `make run` work on a bare machine: SQLite, in-process Celery and Channels
transports, and the offline emulator as the upstream when no OPENAI_API_KEY is set.
Production differs only by environment variables.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import dj_database_url

from config.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = env_str("SECRET_KEY", "dev-insecure-secret-key-change-me-in-production-0123456789")
DEBUG = env_bool("DEBUG", default=True)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "sessions_app",
    "sideband",
    "extraction",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/realtime. Unset: SQLite (embedded mode).
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file in embedded mode: wait on locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and Channels layer -------------------------------------------------
# Unset REDIS_URL = embedded mode: in-process transports (see `make run`).
REDIS_URL = env_str("REDIS_URL", "")
EMBEDDED = REDIS_URL == ""

if EMBEDDED:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
        }
    }

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL or "cache+memory://")
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# The sideband queue: long-lived tasks, one per call, on their own worker pool.
SIDEBAND_QUEUE = env_str("SIDEBAND_QUEUE", "sideband")
CELERY_TASK_ROUTES = {
    "sideband.tasks.*": {"queue": SIDEBAND_QUEUE},
}

# --- Upstream: OpenAI or the offline emulator -----------------------------------------------
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")
EMULATOR_PORT = env_int("EMULATOR_PORT", 8765, minimum=1)
EMULATOR_API_KEY = env_str("EMULATOR_API_KEY", "sk-emulator")
# With no API key the upstream is the bundled emulator (realtime_emulator/).
OPENAI_BASE_URL = env_str(
    "OPENAI_BASE_URL",
    "https://api.openai.com/v1" if OPENAI_API_KEY else f"http://127.0.0.1:{EMULATOR_PORT}/v1",
)
UPSTREAM_API_KEY = OPENAI_API_KEY or EMULATOR_API_KEY
UPSTREAM_TIMEOUT_S = env_float("UPSTREAM_TIMEOUT_S", 15.0, minimum=0.1)
# The browser talks to the upstream directly for the SDP exchange; it may need another URL
# than the server (e.g. behind docker compose). Defaults to OPENAI_BASE_URL.
OPENAI_BROWSER_BASE_URL = env_str("OPENAI_BROWSER_BASE_URL", OPENAI_BASE_URL)

REALTIME_MODELS = env_list("REALTIME_MODELS", ["gpt-realtime", "gpt-realtime-mini"])
REALTIME_VOICES = env_list(
    "REALTIME_VOICES",
    ["marin", "cedar", "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"],
)
REALTIME_TRANSCRIPTION_MODEL = env_str("REALTIME_TRANSCRIPTION_MODEL", "gpt-4o-mini-transcribe")
REALTIME_BASE_INSTRUCTIONS = env_str(
    "REALTIME_BASE_INSTRUCTIONS",
    "You are a friendly, concise voice assistant. Speak naturally and keep answers short.",
)
CLIENT_SECRET_TTL_S = env_int("CLIENT_SECRET_TTL_S", 600, minimum=10)
# Realtime sessions end at 60 minutes upstream.
REALTIME_SESSION_MAX_S = env_int("REALTIME_SESSION_MAX_S", 3600, minimum=1)

# --- Secrets at rest ----------------------------------------------------------------------
# Comma-separated Fernet keys; the first encrypts, all decrypt, so keys rotate by prepending.
_DEV_FERNET_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(f"secret-encryption:{SECRET_KEY}".encode()).digest()
).decode()
SECRET_ENCRYPTION_KEYS = env_list("SECRET_ENCRYPTION_KEYS", [_DEV_FERNET_KEY])

# --- Clients, limits ------------------------------------------------------------------------
CLIENT_COOKIE_NAME = env_str("CLIENT_COOKIE_NAME", "rt_client")
CLIENT_COOKIE_SECURE = env_bool("CLIENT_COOKIE_SECURE", default=not DEBUG)
RATE_LIMIT_CREATE_PER_MINUTE = env_int("RATE_LIMIT_CREATE_PER_MINUTE", 10, minimum=1)
RATE_LIMIT_RENEW_PER_MINUTE = env_int("RATE_LIMIT_RENEW_PER_MINUTE", 20, minimum=1)
MAX_OPEN_SESSIONS_PER_CLIENT = env_int("MAX_OPEN_SESSIONS_PER_CLIENT", 5, minimum=1)
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 16_384, minimum=256)

# --- Sideband ---------------------------------------------------------------------------------
# "client_secret" (the seed's flow) or "api_key" (OpenAI's server-side guide).
SIDEBAND_AUTH = env_str("SIDEBAND_AUTH", "client_secret")
SIDEBAND_LEASE_S = env_int("SIDEBAND_LEASE_S", 15, minimum=1)

# --- Extraction -----------------------------------------------------------------------------
EXTRACTION_MODEL = env_str("EXTRACTION_MODEL", "gpt-4.1-mini")
EXTRACTION_WAIT_S = env_float("EXTRACTION_WAIT_S", 10.0, minimum=0)

# --- Django, DRF, static ---------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Realtime transcript server",
    "DESCRIPTION": "Mints Realtime client secrets, attaches a sideband and keeps the transcript.",
    "VERSION": "0.1.0",
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # httpx logs request URLs at INFO; keep it quiet.
        "httpx": {"level": "WARNING"},
    },
}
