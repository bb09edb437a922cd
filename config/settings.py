"""FleetPatch settings, read from the environment (twelve-factor).

With no environment at all FleetPatch runs on embedded defaults: a SQLite file, a filesystem
Celery broker and a file mail backend, all under ``var/``. Production sets DATABASE_URL,
CELERY_BROKER_URL, EMAIL_URL and SECRET_KEY. Every variable is documented in README.md.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# VAR_DIR holds everything the embedded defaults write: the SQLite database, the broker's
# message folders, sent mail. Resolved relative to the project so web and worker agree on it.
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set (a long random string). Only DEBUG=true runs without one; "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = "django-insecure-fleetpatch-development-only"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # intcomma: counts with the locale's thousands separator (12,345 / 12 345) in the dashboard and digests.
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "django_celery_beat",
    "updates",
    "fleet",
    "devices",
    "alerts",
    "demo",
]

MIDDLEWARE = [
    # Outermost, so that every response carries the Content-Security-Policy, the probes' and the 503 pages included.
    "csp.middleware.CSPMiddleware",
    # First: probes are answered before the HTTPS redirect and the ALLOWED_HOSTS check (config.health),
    # and request metrics and the request id cover everything after them.
    "config.health.ProbeMiddleware",
    "config.logging.RequestIdMiddleware",
    "config.health.RequestMetricsMiddleware",
    # Bounds everything after it, from the first cache or database access on: a frozen dependency is a 503.
    "config.middleware.RequestDeadlineMiddleware",
    # Before anything reads the database: resets the replica router's per-request state (common.db_router).
    "common.db_router.ReplicaPinningMiddleware",
    # A chunked body (no Content-Length) read as sent, or a 411: Django alone reads it as empty.
    "common.middleware.ChunkedBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it sees the view's exception first: a database outage is a 503 page, not a 500 (config.middleware).
    "config.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"

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

WSGI_APPLICATION = "config.wsgi.application"

# --- Database -------------------------------------------------------------------------------
# Seconds to establish a PostgreSQL connection (libpq's connect_timeout) unless DATABASE_URL sets its own.
DATABASE_CONNECT_TIMEOUT = env.int("DATABASE_CONNECT_TIMEOUT", default=5)
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'fleetpatch.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; IMMEDIATE transactions take the write
    # lock up front so two processes queue on busy_timeout instead of failing with "locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # var/ is git-ignored, so a fresh clone lacks it, and SQLite will not create a missing folder.
    if DATABASES["default"]["NAME"] and DATABASES["default"]["NAME"] != ":memory:":
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # An unreachable database host fails a request in seconds (a 503) instead of hanging a web worker for the
    # TCP timeout; DATABASE_URL may set its own (?connect_timeout=N).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)

# An optional streaming replica (PostgreSQL): the dashboard, exports and API lists read from it; the rest, and
# whatever a client just wrote, from the primary (common.db_router).
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db_url("DATABASE_REPLICA_URL")
    DATABASES["replica"]["CONN_MAX_AGE"] = DATABASES["default"].get("CONN_MAX_AGE", 0)
    DATABASES["replica"]["CONN_HEALTH_CHECKS"] = True
    # The test runner must not create or flush it: it mirrors the primary, as a real replica would.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASES["replica"].setdefault("OPTIONS", {}).setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
DATABASE_ROUTERS = ["common.db_router.PrimaryReplicaRouter"]
# Seconds one statement may run (PostgreSQL's statement_timeout), by the role of the process (common.db): web
# requests, shorter than WEB_REQUEST_DEADLINE_SECONDS so a slow query is cancelled by the server first (a 503);
# Celery workers (sweep ranges, imports), longer, under their task time limits. 0: no limit. Other processes
# (migrate, shell, commands) set none.
DATABASE_STATEMENT_TIMEOUT = env.float("DATABASE_STATEMENT_TIMEOUT", default=10.0)
DATABASE_WORKER_STATEMENT_TIMEOUT = env.float("DATABASE_WORKER_STATEMENT_TIMEOUT", default=15 * 60.0)
# How the statement timeout reaches PostgreSQL: "options" in the connection's startup packet, or "server" (FleetPatch
# sends nothing: ALTER ROLE ... SET statement_timeout per database user, as behind PgBouncer; docs/operations.md).
DATABASE_STATEMENT_TIMEOUT_VIA = env.str("DATABASE_STATEMENT_TIMEOUT_VIA", default="options")
if DATABASE_STATEMENT_TIMEOUT_VIA not in {"options", "server"}:
    raise ImproperlyConfigured(
        f"DATABASE_STATEMENT_TIMEOUT_VIA must be 'options' or 'server', not {DATABASE_STATEMENT_TIMEOUT_VIA!r}."
    )
# After a web request's deadline passed while it waited on PostgreSQL (whose statement timeout is shorter: the
# server is frozen or unreachable), the process answers 503 at once for this many seconds (common.db).
DATABASE_FAILURE_BACKOFF_SECONDS = env.float("DATABASE_FAILURE_BACKOFF_SECONDS", default=5.0)
# Seconds a client that wrote keeps reading from the primary: longer than the replica's usual lag.
REPLICA_PIN_SECONDS = env.int("REPLICA_PIN_SECONDS", default=10)
# Behind PgBouncer in transaction pooling mode, a server-side cursor (QuerySet.iterator()) would outlive the
# pooled connection's transaction. Django already disables psycopg's prepared statements.
for _database in DATABASES.values():
    if _database["ENGINE"] == "django.db.backends.postgresql":
        _database["DISABLE_SERVER_SIDE_CURSORS"] = env.bool("DISABLE_SERVER_SIDE_CURSORS", default=False)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------
# API throttling, the admin login throttle and the replica pins live here, so no web process keeps state of
# its own. The default, files under VAR_DIR, is shared by the processes of one machine; with several machines
# set CACHE_URL to Redis (redis://host:6379/1), as docker-compose.yml does.
CACHES = {"default": env.cache_url("CACHE_URL", default=f"filecache://{(VAR_DIR / 'cache').as_posix()}")}
# Seconds a Redis cache operation (and establishing its connection) may take: on a frozen Redis whose kernel
# still accepts connections, redis-py would otherwise wait forever. The cache only holds conveniences (throttle
# counts, replica pins), so a timeout is survived (common.cache); CACHE_URL may set its own (?socket_timeout=N).
CACHE_SOCKET_TIMEOUT = env.float("CACHE_SOCKET_TIMEOUT", default=0.5)
# After such a timeout (or a refused connection) a process leaves the cache alone this many seconds
# (common.redis_cache): a frozen Redis costs one slow request per process per period, not every request.
CACHE_FAILURE_BACKOFF_SECONDS = env.float("CACHE_FAILURE_BACKOFF_SECONDS", default=5.0)
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "common.redis_cache.BackingOffRedisCache"
    _cache_options = CACHES["default"].setdefault("OPTIONS", {})
    _cache_options.setdefault("socket_timeout", CACHE_SOCKET_TIMEOUT)
    _cache_options.setdefault("socket_connect_timeout", CACHE_SOCKET_TIMEOUT)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", _("English")), ("fr", _("French"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
# Static files of no app: the API docs' style sheet (config.urls).
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# In DEBUG (make run) whitenoise serves straight from the apps' static folders, no collectstatic.
WHITENOISE_USE_FINDERS = DEBUG

# --- Email ----------------------------------------------------------------------------------
# Like sqlite URLs, environ reads filemail:///relative/path as relative and filemail:////abs/path as
# absolute: hence the extra slash before the absolute VAR_DIR (without it mail landed in BASE_DIR/<VAR_DIR>).
_email = env.email_url("EMAIL_URL", default=f"filemail:///{(VAR_DIR / 'mail').as_posix()}")
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend":
    # A relative path is anchored at the project, not at whatever directory the process started in.
    _path = Path(_email.get("EMAIL_FILE_PATH") or VAR_DIR / "mail")
    _email["EMAIL_FILE_PATH"] = str(_path if _path.is_absolute() else (BASE_DIR / _path))
vars().update(_email)
# Seconds each SMTP operation (connecting, then every command) may take; a digest's send retries later.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
if EMAIL_TIMEOUT <= 0:
    raise ImproperlyConfigured(f"EMAIL_TIMEOUT must be a positive number of seconds, not {EMAIL_TIMEOUT}.")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="FleetPatch <fleetpatch@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
# Seconds a Redis broker operation (connecting, publishing) may take before it counts as unreachable.
CELERY_BROKER_SOCKET_TIMEOUT = env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=2.0)
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    _processed_dir = VAR_DIR / "celery" / "processed"
    # Without control_folder kombu writes its exchange tables to ./control, wherever the process started.
    _control_dir = VAR_DIR / "celery" / "control"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "control_folder": str(_control_dir),
        "store_processed": False,
    }
    CELERY_BROKER_FOLDERS = [_queue_dir, _processed_dir, _control_dir]
else:
    # Redis as the broker: every socket operation is bounded, so publishing to a frozen broker fails in seconds
    # (enqueue_on_commit logs and drops the task; the sweep catches up) instead of holding the web request.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_timeout": CELERY_BROKER_SOCKET_TIMEOUT,
        "socket_connect_timeout": CELERY_BROKER_SOCKET_TIMEOUT,
    }
    CELERY_BROKER_FOLDERS = []
CELERY_BROKER_CONNECTION_TIMEOUT = CELERY_BROKER_SOCKET_TIMEOUT
# A publish retries once (a connection the broker dropped while idle is replaced at once), then gives up.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# The same bound for a Redis result backend, should CELERY_RESULT_BACKEND name one.
CELERY_REDIS_SOCKET_TIMEOUT = CELERY_BROKER_SOCKET_TIMEOUT
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = CELERY_BROKER_SOCKET_TIMEOUT
# Results are not used by FleetPatch's tasks (their effects are rows in the database).
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task that started this many times without finishing (its worker killed each time) is given up on its next
# delivery instead of run again (devices/task_guard.py, docs/operations.md "Poison tasks").
CELERY_TASK_MAX_STARTS = env.int("CELERY_TASK_MAX_STARTS", default=2)
# Hard time limits (the worker's child is killed, which counts as an unfinished start) and soft ones (the task
# gets SoftTimeLimitExceeded a minute earlier and ends normally). Seconds; per task name (exact names).
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
CELERY_TASK_ANNOTATIONS = {
    # An import of a million rows takes minutes; a range of the sweep seconds; a digest well under a minute.
    "devices.preview_import": {"time_limit": 60 * 60, "soft_time_limit": 59 * 60},
    "devices.apply_import": {"time_limit": 60 * 60, "soft_time_limit": 59 * 60},
    "fleet.send_digest": {"time_limit": 5 * 60, "soft_time_limit": 4 * 60},
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# A named queue rather than Celery's implicit "celery", so production workers say what they consume
# (`celery worker -Q default`, docker-compose.yml); a worker started without -Q consumes it too.
CELERY_TASK_DEFAULT_QUEUE = "default"
# Queues by kind, so a digest never waits behind a sweep: run one worker per queue (docker-compose.yml) or one
# worker for all (`make run`; a worker started without -Q consumes every queue declared here).
CELERY_TASK_QUEUES = [Queue(name) for name in ("default", "ingest", "sweep", "alerts")]
CELERY_TASK_ROUTES = {
    # Reactions to data coming in: a catalogue or policy change re-evaluates the devices it concerns.
    "updates.recompute_model": {"queue": "ingest"},
    "updates.recompute_organisation": {"queue": "ingest"},
    # Periodic work over the whole fleet.
    "updates.sweep_*": {"queue": "sweep"},
    "updates.refresh_rollouts": {"queue": "sweep"},
    "devices.prune_check_ins": {"queue": "sweep"},
    "devices.ensure_check_in_partitions": {"queue": "sweep"},
    "devices.*_import": {"queue": "ingest"},
    # Mail: the digest tasks of alerts.tasks, still named "fleet.*" (beat's rows in the database name them).
    "fleet.*": {"queue": "alerts"},
}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}
# Task modules that are not an app's ``tasks.py`` (autodiscovery finds only those). Task names predate the
# modules: the compliance tasks keep "updates.*" and the digests "fleet.*", as beat schedules and routes say.
CELERY_IMPORTS = ("devices.compliance.tasks", "devices.imports.tasks")
# Device ids per range of the fanned-out sweep (devices.compliance.sweeps): each range is one task and one transaction.
SWEEP_RANGE_SIZE = env.int("SWEEP_RANGE_SIZE", default=100_000)
if SWEEP_RANGE_SIZE < 1:
    raise ImproperlyConfigured(f"SWEEP_RANGE_SIZE must be a positive number of devices, not {SWEEP_RANGE_SIZE}.")


# --- REST framework -------------------------------------------------------------------------
# DRF's JSON parser reads the body stream itself, out of reach of DATA_UPLOAD_MAX_MEMORY_SIZE: the API's
# own parser (common.api.parsers.BoundedJSONParser) stops at this many bytes and answers 413.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=10 * 1024 * 1024)
# Largest spreadsheet the admin's device and battery imports accept (kept in the database until imported).
IMPORT_MAX_UPLOAD_BYTES = env.int("IMPORT_MAX_UPLOAD_BYTES", default=25 * 1024 * 1024)
# An XLSX is a zip archive: what it may unpack to, checked before it is opened (docs/imports-exports.md).
IMPORT_XLSX_MAX_MEMBERS = env.int("IMPORT_XLSX_MAX_MEMBERS", default=1000)
IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES = env.int("IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES", default=256 * 1024 * 1024)
IMPORT_XLSX_MAX_RATIO = env.int("IMPORT_XLSX_MAX_RATIO", default=100)
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "common.api.openapi.FleetPatchAutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["fleet.api.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["fleet.api.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["fleet.api.throttling.ApiClientRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_client": env.str("API_THROTTLE_RATE", default="6000/minute")},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["common.api.parsers.BoundedJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "common.api.pagination.FleetPatchCursorPagination",
    "EXCEPTION_HANDLER": "common.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
_swagger_ui_dist = env.str("API_DOCS_SWAGGER_UI_DIST", default="SIDECAR")
SPECTACULAR_SETTINGS = {
    "TITLE": "FleetPatch API",
    "DESCRIPTION": (
        "Machine API for MDM tools: enrol devices, report check-ins and battery events, read compliance. "
        "Authenticate with `Authorization: Bearer <token>` (one token per API client, scoped to one "
        'organisation). Errors: `{"field": ["reason"]}` for invalid input, `{"detail": "reason"}` otherwise.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's JavaScript and CSS are served from our own static files (drf-spectacular-sidecar):
    # installations are often offline. A URL (a CDN's swagger-ui-dist) may be set instead.
    "SWAGGER_UI_DIST": _swagger_ui_dist,
    "SWAGGER_UI_FAVICON_HREF": (
        "SIDECAR" if _swagger_ui_dist == "SIDECAR" else f"{_swagger_ui_dist.rstrip('/')}/favicon-32x32.png"
    ),
    "ENUM_NAME_OVERRIDES": {
        "ComplianceStatusEnum": "devices.choices.ComplianceStatus",
        "BatteryStatusEnum": "devices.choices.BatteryStatus",
        "BatteryEventKindEnum": "devices.choices.BatteryEventKind",
        "ChannelEnum": "updates.choices.Channel",
    },
}

# --- Security -------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Preloading is a commitment the operator makes for a whole domain (hstspreload.org), not one the
# application can make for them: its deploy-check warning (W021) is silenced, the setting stays.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# /healthz style probes and the test client talk plain HTTP on loopback; Prometheus scrapes /metrics over the
# internal network (config.health.ProbeMiddleware also answers the probes before this redirect).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# The client's address (common.client): the number of reverse proxies in front of the web process, each appending
# to X-Forwarded-For; the Nth address from the right is the client's. 0: the socket's peer, X-Forwarded-For ignored.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(f"TRUSTED_PROXY_COUNT must be 0 or a number of proxies, not {TRUSTED_PROXY_COUNT}.")
if env.str("ADMIN_LOGIN_CLIENT_IP_HEADER", default=""):
    # A header named by the operator was believed whoever sent it (a request reaching gunicorn directly could
    # rotate it at will): refused rather than silently ignored, so nobody upgrades into a weaker throttle.
    raise ImproperlyConfigured(
        "ADMIN_LOGIN_CLIENT_IP_HEADER is no longer supported: unset it and set TRUSTED_PROXY_COUNT to the number "
        "of reverse proxies in front of FleetPatch (1 for one proxy appending to X-Forwarded-For), see "
        "docs/operations.md, 'Behind a reverse proxy'."
    )

# Content-Security-Policy on every response (django-csp: Django 5.2 has none of its own, 6.0 will). Nothing inline
# runs: scripts and style sheets come from our own static files, the API docs' Swagger UI included (drf-spectacular's
# split view serves its start-up script as a file). Only style="" attributes are allowed (the dashboard's bars and
# colours, the admin's own): they cannot run code. The digest Preview replaces this with a sandbox (alerts.admin).
_csp_script_sources = ["'self'"]
if _swagger_ui_dist != "SIDECAR":
    _csp_script_sources.append(_swagger_ui_dist.rstrip("/") + "/")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": _csp_script_sources,
        "style-src": _csp_script_sources,
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Admin login throttling (fleet.login_throttle), all counted over a window of ADMIN_LOGIN_LOCKOUT_MINUTES: failures
# for one username from one address (that pair is locked), from one address whatever the username (password
# spraying: the address is locked), for one username from anywhere, and in total (a distributed attack: only
# addresses the user signed in from before still get in).
ADMIN_LOGIN_MAX_FAILURES = env.int("ADMIN_LOGIN_MAX_FAILURES", default=5)
ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS = env.int("ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS", default=20)
ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME = env.int("ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME", default=20)
ADMIN_LOGIN_MAX_FAILURES_GLOBAL = env.int("ADMIN_LOGIN_MAX_FAILURES_GLOBAL", default=200)
ADMIN_LOGIN_LOCKOUT_MINUTES = env.int("ADMIN_LOGIN_LOCKOUT_MINUTES", default=15)
# How long an address a user signed in from stays "known" to that user (exempt from the username and global locks).
ADMIN_LOGIN_KNOWN_ADDRESS_DAYS = env.int("ADMIN_LOGIN_KNOWN_ADDRESS_DAYS", default=30)
for _name in (
    "ADMIN_LOGIN_MAX_FAILURES",
    "ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS",
    "ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME",
    "ADMIN_LOGIN_MAX_FAILURES_GLOBAL",
    "ADMIN_LOGIN_LOCKOUT_MINUTES",
):
    if vars()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be a positive number, not {vars()[_name]}.")

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
# Celery's worker replaces the root logger's handlers with its own plain ones unless told not to.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"

# --- FleetPatch -----------------------------------------------------------------------------
# Where links in emails and printed messages point to.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

# Email digests (alerts): rows listed per section before the "and N more" link, how a failed SMTP send
# is retried, and when a worker's claim on a digest is considered lost (it is then never resent: at most once).
DIGEST_MAX_ROWS = env.int("DIGEST_MAX_ROWS", default=50)
DIGEST_MAX_ATTEMPTS = env.int("DIGEST_MAX_ATTEMPTS", default=6)
DIGEST_RETRY_BACKOFF = env.int("DIGEST_RETRY_BACKOFF", default=60)
DIGEST_STALE_CLAIM_MINUTES = env.int("DIGEST_STALE_CLAIM_MINUTES", default=30)
DIGEST_WAIVER_NOTICE_DAYS = env.int("DIGEST_WAIVER_NOTICE_DAYS", default=14)
# How long a digest's unsubscribe link works after the digest was sent (docs/digests.md).
DIGEST_UNSUBSCRIBE_MAX_AGE_DAYS = env.int("DIGEST_UNSUBSCRIBE_MAX_AGE_DAYS", default=60)

# --- Operations -----------------------------------------------------------------------------
# /metrics answers only a request bearing this token; without one configured it is a 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Seconds /readyz waits for the broker before calling it unreachable, and for all its checks together (each check
# is cut short when the total runs out: the probe answers within READYZ_TIMEOUT plus rendering).
READYZ_BROKER_TIMEOUT = env.float("READYZ_BROKER_TIMEOUT", default=1.0)
READYZ_TIMEOUT = env.float("READYZ_TIMEOUT", default=3.0)
# A web request still running after this many seconds is cut short with a 503 and Retry-After (config.middleware):
# the bound on a wait for a frozen dependency. Keep it below gunicorn's --timeout (30 s by default), which kills
# the worker instead. 0 turns it off. Applies to gunicorn's sync workers (each request in its main thread).
WEB_REQUEST_DEADLINE_SECONDS = env.float("WEB_REQUEST_DEADLINE_SECONDS", default=15.0)
# Check-ins older than this are pruned daily (devices.prune_check_ins), except each device's build transitions.
CHECKIN_RETENTION_DAYS = env.int("CHECKIN_RETENTION_DAYS", default=400)
CHECKIN_PRUNE_BATCH_SIZE = env.int("CHECKIN_PRUNE_BATCH_SIZE", default=5000)

# --- Google Pub/Sub push (Android Management API notifications) -------------------------------
# Google's signed OIDC tokens (Authorization: Bearer <JWT>) are verified against these keys: fetched from
# the URL (a short timeout: a failure is a 503, never a hang), or read from a JWKS file an offline
# installation mirrors (it then wins over the URL). Cached for PUBSUB_OIDC_JWKS_CACHE_SECONDS.
PUBSUB_OIDC_JWKS_URL = env.str("PUBSUB_OIDC_JWKS_URL", default="https://www.googleapis.com/oauth2/v3/certs")
PUBSUB_OIDC_JWKS_FILE = env.str("PUBSUB_OIDC_JWKS_FILE", default="")
PUBSUB_OIDC_JWKS_CACHE_SECONDS = env.int("PUBSUB_OIDC_JWKS_CACHE_SECONDS", default=3600)
PUBSUB_OIDC_JWKS_TIMEOUT = env.float("PUBSUB_OIDC_JWKS_TIMEOUT", default=3.0)
# Seconds of clock skew tolerated on a token's exp and iat.
PUBSUB_OIDC_LEEWAY_SECONDS = env.int("PUBSUB_OIDC_LEEWAY_SECONDS", default=60)
# Pub/Sub message ids remembered per organisation (a redelivery is acknowledged and stores nothing), and how
# long the messages acknowledged but not applied are kept; both pruned by devices.prune_check_ins. 0 keeps all.
PUBSUB_MESSAGE_ID_RETENTION_DAYS = env.int("PUBSUB_MESSAGE_ID_RETENTION_DAYS", default=8)
REJECTED_MESSAGE_RETENTION_DAYS = env.int("REJECTED_MESSAGE_RETENTION_DAYS", default=90)
