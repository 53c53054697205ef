"""The one settings module. Every knob comes from the environment (see config/env.py).

Defaults make `make run` work on a bare machine: SQLite, in-process Celery and Channels
transports, and the offline emulator as the upstream when no OPENAI_API_KEY is set.
Production differs only by environment variables.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import dj_database_url
import redis
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

_DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-in-production-0123456789"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY)
# Off unless asked for: a debug page shows the caller's cookies and the settings. `make run`
# and `make test` ask for it (DEBUG=1 in the Makefile), for local development only.
DEBUG = env_bool("DEBUG", default=False)
if not DEBUG and SECRET_KEY == _DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG is off (DEBUG=1 only for local development)"
    )
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
    "drf_spectacular_sidecar",
    "channels",
    "sessions_app",
    "sideband",
    "extraction",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Postgres away: 503 + Retry-After instead of a 500 (config/outages.py).
    "config.outages.DatabaseAwayMiddleware",
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

CHANNEL_LAYERS: dict[str, dict[str, Any]]
if EMBEDDED:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # channels-redis blocks up to 5 s in BZPOPMIN waiting for a message; redis-py 8
                # reads with a 5 s socket timeout by default, which fails an idle consumer.
                # No read timeout: the blocking command's own timeout bounds the wait.
                # A pooled connection that died with a Redis restart is retried once on a new
                # one, so the first command after the restart does not fail.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": None,
                        "socket_connect_timeout": 2,
                        "retry_on_error": [redis.ConnectionError],
                    }
                ],
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }

# "memory://localhost//", not "memory://": kombu warns "No hostname was supplied" for every
# connection (each new session's task publish) when the URL names no host.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://localhost//")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL or "cache+memory://")
if CELERY_BROKER_URL.startswith("memory://"):
    # The in-process broker is polled (Redis blocks instead): poll often so a registered call
    # reaches the sideband worker within ~0.1 s in `make run`.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.1}
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
# The page renews this long before its key expires (and before the session's cap);
# 0 = a tenth of the key's lifetime, kept between 5 and 60 seconds.
PAGE_RENEW_MARGIN_S = env_int("PAGE_RENEW_MARGIN_S", 0, minimum=0)
# Realtime sessions end at 60 minutes upstream.
REALTIME_SESSION_MAX_S = env_int("REALTIME_SESSION_MAX_S", 3600, minimum=1)

# --- Which voice API: Realtime (client secrets, browser calls OpenAI) or Live (GPT-Live: the
# browser's SDP offer goes through this server). The default of a new session; a request may
# choose the other (docs/voice-apis.md).
VOICE_APIS = ("realtime", "live")
VOICE_API = env_choice("VOICE_API", "realtime", VOICE_APIS)
LIVE_MODELS = env_list("LIVE_MODELS", ["gpt-live-1", "gpt-live-1.1"])
LIVE_VOICES = env_list("LIVE_VOICES", ["marin", "cedar"])
# Live sessions end 120 minutes after creation upstream.
LIVE_SESSION_MAX_S = env_int("LIVE_SESSION_MAX_S", 7200, minimum=1)
# A renewed Live session's `input`: the newest turns within these (OpenAI's) limits.
LIVE_INPUT_MAX_MESSAGES = env_int("LIVE_INPUT_MAX_MESSAGES", 128, minimum=0)
LIVE_INPUT_MAX_TOKENS = env_int("LIVE_INPUT_MAX_TOKENS", 8192, minimum=0)

# --- Secrets at rest ----------------------------------------------------------------------
# Comma-separated Fernet keys; the first encrypts, all decrypt, so keys rotate by prepending.
_DEV_FERNET_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(f"secret-encryption:{SECRET_KEY}".encode()).digest()
).decode()
# Unset or empty: one key derived from SECRET_KEY (fine for a single deployment; set real keys
# to rotate independently of SECRET_KEY).
SECRET_ENCRYPTION_KEYS = env_list("SECRET_ENCRYPTION_KEYS", []) or [_DEV_FERNET_KEY]

# --- Clients, limits ------------------------------------------------------------------------
CLIENT_COOKIE_NAME = env_str("CLIENT_COOKIE_NAME", "rt_client")
CLIENT_COOKIE_SECURE = env_bool("CLIENT_COOKIE_SECURE", default=not DEBUG)
CLIENT_COOKIE_MAX_AGE_S = env_int("CLIENT_COOKIE_MAX_AGE_S", 30 * 24 * 3600, minimum=60)
RATE_LIMIT_CREATE_PER_MINUTE = env_int("RATE_LIMIT_CREATE_PER_MINUTE", 10, minimum=1)
RATE_LIMIT_RENEW_PER_MINUTE = env_int("RATE_LIMIT_RENEW_PER_MINUTE", 20, minimum=1)
MAX_OPEN_SESSIONS_PER_CLIENT = env_int("MAX_OPEN_SESSIONS_PER_CLIENT", 5, minimum=1)
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 16_384, minimum=256)

# Rate-limit counters must be shared by every web process: Redis when configured, else the
# process-local memory of the embedded mode (one process serves everything there).
CACHES: dict[str, dict[str, Any]]
if EMBEDDED:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "rt",
            # Redis away must not hold a request: fail within a second (the rate limit then
            # fails open, sessions_app.ratelimit).
            "OPTIONS": {
                "socket_connect_timeout": 1,
                "socket_timeout": 1,
                "retry_on_error": [redis.ConnectionError],
            },
        }
    }

# --- Sideband ---------------------------------------------------------------------------------
# The sideband's bearer: "api_key" (OpenAI's server-controls guide; the default with a real
# OPENAI_API_KEY) or "client_secret" (the seed's flow; the default against the emulator).
SIDEBAND_AUTH = env_choice(
    "SIDEBAND_AUTH", "api_key" if OPENAI_API_KEY else "client_secret", ("api_key", "client_secret")
)
SIDEBAND_LEASE_S = env_int("SIDEBAND_LEASE_S", 15, minimum=1)

# --- Extraction -----------------------------------------------------------------------------
EXTRACTION_MODEL = env_str("EXTRACTION_MODEL", "gpt-4.1-mini")
EXTRACTION_WAIT_S = env_float("EXTRACTION_WAIT_S", 10.0, minimum=0)
# The instructions builder's size budget and how many latest turns it recaps.
EXTRACTION_INSTRUCTIONS_MAX_CHARS = env_int("EXTRACTION_INSTRUCTIONS_MAX_CHARS", 6000, minimum=500)
EXTRACTION_RECAP_TURNS = env_int("EXTRACTION_RECAP_TURNS", 6, minimum=0)
# First retry delay of an extraction after a 429/5xx; doubles per retry.
EXTRACTION_RETRY_BASE_S = env_float("EXTRACTION_RETRY_BASE_S", 1.0, minimum=0)

# --- Django, DRF, static ---------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "static"
# The ASGI app serves /static/ itself (the page's few ES modules and the admin's assets), so
# `make run` and the compose `web` service need no separate file server.
SERVE_STATIC = env_bool("SERVE_STATIC", default=True)

REST_FRAMEWORK = {
    # Identifies the browser by its client cookie and enforces CSRF when it carries one.
    # A host app's bearer token first (sessions_app.identity), then the cookie's CSRF check.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "sessions_app.auth.HostUserAuthentication",
        "sessions_app.auth.ClientCookieAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # UTF-8 JSON, bounded in depth: a hostile body is a 400 naming the problem, never a 500.
    "DEFAULT_PARSER_CLASSES": ["sessions_app.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "sessions_app.api.base.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Realtime transcript server",
    "DESCRIPTION": "Mints Realtime client secrets, attaches a sideband and keeps the transcript.",
    "VERSION": "0.1.0",
    # The docs page's assets come from the installed sidecar, not a CDN: it works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    # The voice APIs a session may be on (a create body's variant names its one API).
    "ENUM_NAME_OVERRIDES": {"VoiceApiEnum": VOICE_APIS},
    # Adds the error bodies every operation documents and closes the request objects
    # (sessions_app.schema).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sessions_app.schema.schema_postprocess",
    ],
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "filters": {
        "routine_tasks": {
            "()": "config.logfilters.RoutineTasksAtDebug",
            # Beat's periodic work: routine, every few seconds (config/logfilters.py).
            "tasks": ["sideband.tasks.calls_reconcile", "sideband-reconcile"],
        },
        "one_line_warning": {"()": "config.logfilters.OneLineWarning"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # httpx logs request URLs at INFO; keep it quiet.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        # Celery's per-run lines (received, succeeded, beat's "Sending due task").
        "celery.app.trace": {"filters": ["routine_tasks"]},
        "celery.worker.strategy": {"filters": ["routine_tasks"]},
        "celery.beat": {"filters": ["routine_tasks"]},
        # A Host header not in ALLOWED_HOSTS: one line, no traceback (config/errors.py answers).
        "django.security.DisallowedHost": {"filters": ["one_line_warning"]},
    },
}

# --- Sideband worker (begin)
# The worker: `celery -A config worker -Q sideband -P threads`; beat runs the reconciler.
SIDEBAND_POLL_S = env_float("SIDEBAND_POLL_S", 1.0, minimum=0.05)  # supersede/lease-loss check
SIDEBAND_HEARTBEAT_S = env_float("SIDEBAND_HEARTBEAT_S", 5.0, minimum=0.1)  # lease extension
SIDEBAND_RECONCILE_S = env_float("SIDEBAND_RECONCILE_S", 5.0, minimum=0.1)  # beat period
# Batch writers per process: coroutines on the I/O loop, each with its own Postgres connection.
SIDEBAND_WRITERS = env_int("SIDEBAND_WRITERS", 2, minimum=1)
SIDEBAND_WRITE_BATCH = env_int("SIDEBAND_WRITE_BATCH", 200, minimum=1)
# Garbage collection in a worker process: a full collection this often, survivors frozen
# between them (sideband.owner.gc_pacing.CollectorPacing); 0 leaves Python's collector as it is.
SIDEBAND_GC_FULL_S = env_float("SIDEBAND_GC_FULL_S", 300.0, minimum=0.0)
# How long a thread of a worker process may hold the GIL while another waits for it
# (sys.setswitchinterval; Python's default is 5 ms). The sockets' loop and the writers' loop
# are two threads: each writer round trip waits up to this long for the busy sockets' thread
# (docs/sideband.md, "Writes never starve").
SIDEBAND_SWITCH_INTERVAL_S = env_float("SIDEBAND_SWITCH_INTERVAL_S", 0.0005, minimum=0.0001)
SIDEBAND_PING_S = env_float("SIDEBAND_PING_S", 20.0, minimum=0.1)  # idle socket -> ping
SIDEBAND_CONNECT_TIMEOUT_S = env_float("SIDEBAND_CONNECT_TIMEOUT_S", 10.0, minimum=0.1)
SIDEBAND_BACKOFF_BASE_S = env_float("SIDEBAND_BACKOFF_BASE_S", 0.25, minimum=0.01)
SIDEBAND_BACKOFF_MAX_S = env_float("SIDEBAND_BACKOFF_MAX_S", 10.0, minimum=0.01)
# Rehydration of a renewed call: how many recent turns to seed (0 = off).
SIDEBAND_SEED_TURNS = env_int("SIDEBAND_SEED_TURNS", 8, minimum=0)
# Admission (sideband.owner.admission): a process holding SIDEBAND_MAX_CALLS calls, or whose
# I/O loop lags or whose oldest unwritten record is older than SIDEBAND_MAX_LAG_S, claims no
# new call (it stops consuming the sideband queue) until it is back under the limits.
SIDEBAND_MAX_CALLS = env_int("SIDEBAND_MAX_CALLS", 1000, minimum=1)
SIDEBAND_MAX_LAG_S = env_float("SIDEBAND_MAX_LAG_S", 0.5, minimum=0.01)
# Even shares: a process holding this many calls more than the least loaded live process (as
# published in Redis every SIDEBAND_POLL_S) claims no new call either.
SIDEBAND_SHARE_SLACK = env_int("SIDEBAND_SHARE_SLACK", 50, minimum=1)
# The writers' event loop: "own" (a thread of their own, so a commit never waits behind the
# socket reads) or "io" (the sockets' loop). docs/sideband.md has the measurements.
SIDEBAND_WRITER_LOOP = env_choice("SIDEBAND_WRITER_LOOP", "own", ("own", "io"))
# Prometheus metrics of a worker process on http://SIDEBAND_METRICS_ADDR:<port>/metrics: the
# first free port from SIDEBAND_METRICS_PORT (several processes on one host count up); 0 = off.
SIDEBAND_METRICS_PORT = env_int("SIDEBAND_METRICS_PORT", 0, minimum=0)
SIDEBAND_METRICS_ADDR = env_str("SIDEBAND_METRICS_ADDR", "127.0.0.1")
# A call with no upstream event and no page on its session's live socket this long is
# abandoned: hung up upstream and ended (sideband.owner.upkeep).
SIDEBAND_IDLE_S = env_float("SIDEBAND_IDLE_S", 120.0, minimum=1.0)
# A spoken turn still without its transcript this long is re-read from the upstream; after
# as long again it is closed out as not transcribed.
SIDEBAND_TRANSCRIPT_WAIT_S = env_float("SIDEBAND_TRANSCRIPT_WAIT_S", 30.0, minimum=0.1)
# Sessions with no live call and no activity this long are closed by beat (reason "idle",
# transcript kept), so a client that never refreshes does not hit its open-session cap.
SESSION_IDLE_CLOSE_S = env_float("SESSION_IDLE_CLOSE_S", 7200.0, minimum=1.0)
SESSION_IDLE_SWEEP_S = env_float("SESSION_IDLE_SWEEP_S", 60.0, minimum=0.1)  # beat period
# Beat's stock scheduler, with one line instead of a traceback per tick while Redis is away.
CELERY_BEAT_SCHEDULER = "config.beat:BrokerAwareScheduler"
CELERY_BEAT_SCHEDULE = {
    "sideband-reconcile": {
        "task": "sideband.tasks.calls_reconcile",
        "schedule": SIDEBAND_RECONCILE_S,
    },
    "sessions-close-idle": {
        "task": "sideband.tasks.sessions_close_idle",
        "schedule": SESSION_IDLE_SWEEP_S,
    },
    "turns-close-out": {
        "task": "sideband.tasks.turns_close_out",
        "schedule": SESSION_IDLE_SWEEP_S,
    },
}
# --- Sideband worker (end)

# --- The host app: identity, server-to-server API, webhooks, retention (begin) -----------------
# Tokens the host backend signs for its users (README "Use it from your app"): a JWT with
# `sub` (the host's user id), `exp` and `aud`. HS256 with HOST_TOKEN_SECRET, or RS256/ES256
# with HOST_TOKEN_PUBLIC_KEY (PEM); unset both and bearer tokens are refused.
HOST_TOKEN_SECRET = env_str("HOST_TOKEN_SECRET", "")
HOST_TOKEN_PUBLIC_KEY = env_str("HOST_TOKEN_PUBLIC_KEY", "").replace("\\n", "\n")
HOST_TOKEN_AUDIENCE = env_str("HOST_TOKEN_AUDIENCE", "realtime-transcript")
HOST_TOKEN_ISSUER = env_str("HOST_TOKEN_ISSUER", "")
# Longest lifetime a token may claim (exp - now); longer ones are refused, not trimmed.
HOST_TOKEN_MAX_AGE_S = env_int("HOST_TOKEN_MAX_AGE_S", 3600, minimum=10)
# Inside a host Django project: request.user (its pk) owns the sessions it creates.
HOST_DJANGO_USERS = env_bool("HOST_DJANGO_USERS", default=False)
# Server-to-server API keys: requests per key per minute.
API_KEY_RATE_LIMIT_PER_MINUTE = env_int("API_KEY_RATE_LIMIT_PER_MINUTE", 600, minimum=1)
# Webhooks: the beat scan that turns committed rows into deliveries, how old a row must be
# before the scan reads it (a row whose transaction commits later than this after its
# timestamp is missed), and the retries.
WEBHOOK_SCAN_S = env_float("WEBHOOK_SCAN_S", 2.0, minimum=0.1)
WEBHOOK_SCAN_SETTLE_S = env_float("WEBHOOK_SCAN_SETTLE_S", 5.0, minimum=0.0)
WEBHOOK_TIMEOUT_S = env_float("WEBHOOK_TIMEOUT_S", 10.0, minimum=0.1)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
WEBHOOK_RETRY_BASE_S = env_float("WEBHOOK_RETRY_BASE_S", 5.0, minimum=0.01)
WEBHOOK_RETRY_MAX_S = env_float("WEBHOOK_RETRY_MAX_S", 3600.0, minimum=0.01)
# Retention: sessions idle (closed, or untouched) longer than this are purged; 0 keeps them.
TRANSCRIPT_RETENTION_DAYS = env_int("TRANSCRIPT_RETENTION_DAYS", 0, minimum=0)
RETENTION_BATCH = env_int("RETENTION_BATCH", 200, minimum=1)
RETENTION_PURGE_S = env_float("RETENTION_PURGE_S", 3600.0, minimum=1.0)
INSTALLED_APPS.append("hostapi")
# Last: the top floor, whose ready() connects the ground floor's hooks to the features
# (config/wiring.py).
INSTALLED_APPS.append("config")
CELERY_BEAT_SCHEDULE["hostapi-webhooks-scan"] = {
    "task": "hostapi.tasks.webhooks_scan",
    "schedule": WEBHOOK_SCAN_S,
}
CELERY_BEAT_SCHEDULE["hostapi-retention-purge"] = {
    "task": "hostapi.tasks.retention_purge",
    "schedule": RETENTION_PURGE_S,
}
# --- The host app (end)
