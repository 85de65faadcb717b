"""Settings, read from the environment.

With no environment variables at all the service runs on the embedded
default: a SQLite file, a filesystem Celery broker and a database cache, all
under ``VEXXY_DATA_DIR`` (``./var``). Every knob is listed in the README.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from reliability.logs import build_logging_config
from reliability.metrics.multiproc import forget_empty_dir
from vexxy import __version__

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

ENVIRONMENT = env("ENVIRONMENT", default="development")
IS_PRODUCTION = ENVIRONMENT == "production"
DATA_DIR = Path(env("VEXXY_DATA_DIR", default=str(BASE_DIR / "var")))


DEVELOPMENT_SECRET_KEY = "django-insecure-development-only-vexxy-key"  # noqa: S105
SECRET_KEY = env("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if IS_PRODUCTION else ["localhost", "127.0.0.1", "[::1]"]
)


def _refuse_unsafe_production() -> None:
    problems = []
    if SECRET_KEY == DEVELOPMENT_SECRET_KEY or len(SECRET_KEY) < 32:
        problems.append("SECRET_KEY is unset, the development key, or shorter than 32 characters")
    if DEBUG:
        problems.append("DEBUG is on")
    if not ALLOWED_HOSTS:
        problems.append("ALLOWED_HOSTS is empty")
    if problems:
        raise ImproperlyConfigured(
            "Refusing to start with ENVIRONMENT=production: " + "; ".join(problems) + "."
        )


if IS_PRODUCTION:
    _refuse_unsafe_production()
    # The image's HEALTHCHECK asks for /livez with Host: localhost.
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "axes",
    "reliability",
    "analysis",
]

# Security headers and no-store wrap the envelope middleware, so that its own refusals
# (bad Host, 411, 413, unknown URL) carry them like every other response.
MIDDLEWARE = [
    "reliability.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "reliability.middleware.NoStoreMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "reliability.middleware.ErrorEnvelopeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Last, as django-axes requires: refuses logins from a locked-out client.
    "axes.middleware.AxesMiddleware",
]

# -- admin login throttling (django-axes) ---------------------------------------------

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# After this many failed logins for one username from one address, that pair is locked out
# (429) for ADMIN_LOGIN_LOCKOUT_MINUTES; a success resets the count.
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("ADMIN_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "reliability.client_ip.request_client_ip"
AXES_VERBOSE = False  # our own WARNING names each lockout (analysis/admin_login.py)

ROOT_URLCONF = "vexxy.urls"
WSGI_APPLICATION = "vexxy.wsgi.application"
ASGI_APPLICATION = "vexxy.asgi.application"

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

# -- database ------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'vexxy.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        # Web, worker and beat share one file: wait for locks instead of failing.
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        **_db.get("OPTIONS", {}),
    }
else:
    _db.setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3)
    )
    _db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    # Behind PgBouncer in transaction mode a connection may change server between two
    # transactions: QuerySet.iterator()'s server-side cursors would not survive that.
    # (Django already turns off psycopg's prepared statements.)
    _db["DISABLE_SERVER_SIDE_CURSORS"] = env.bool("DATABASE_TRANSACTION_POOLING", default=False)
_db["CONN_HEALTH_CHECKS"] = True
if _db["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, minus the health check's SELECT 1 for a connection that served a
    # request without error in the last RELIABILITY["DB_HEALTH_CHECK_GRACE"] seconds.
    _db["ENGINE"] = "reliability.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# -- cache (shared by web and worker processes: circuit breakers live here) -----

_cache_url = env("CACHE_URL", default=None) or env("REDIS_URL", default=None)
if _cache_url:
    CACHES = {"default": env.cache_url_config(_cache_url)}
    if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
        # The same, reusing one client per connection pool (reliability/cache.py).
        CACHES["default"]["BACKEND"] = "reliability.cache.RedisCache"
else:
    CACHES = {
        "default": {
            "BACKEND": "reliability.cache.AtomicDatabaseCache",
            "LOCATION": "vexxy_cache",
        }
    }

# -- Celery --------------------------------------------------------------------

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://localhost/")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The folders are made when a process starts (vexxy/storage.py), not here.
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # acks_late tasks longer than this are redelivered; keep it above the longest job.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3 * 3600),
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# A publish to a broker that is down fails in about a second; the job waits for dispatch.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default="django-db")
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Deployments sharing one broker keep apart by queue; web, beat and workers must agree.
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_EAGER_PROPAGATES = True
# Maintenance from beat; each run holds a lock in the shared cache, so overlapping runs act once.
STALE_JOB_SECONDS = env.float("STALE_JOB_SECONDS", default=600.0)
# A job published this long ago and still queued lost its message: it is published again.
DISPATCH_LOST_AFTER_SECONDS = env.float("DISPATCH_LOST_AFTER_SECONDS", default=7200.0)
MAINTENANCE_INTERVAL_SECONDS = env.float("MAINTENANCE_INTERVAL_SECONDS", default=60.0)
CELERY_BEAT_SCHEDULE: dict = {
    "dispatch-pending-jobs": {
        "task": "analysis.dispatch_pending_jobs",
        "schedule": MAINTENANCE_INTERVAL_SECONDS,
    },
    "recover-stale-jobs": {
        "task": "analysis.recover_stale_jobs",
        "schedule": MAINTENANCE_INTERVAL_SECONDS,
    },
    "reconcile-sandboxes": {
        "task": "analysis.reconcile_sandboxes",
        "schedule": env.float("RECONCILE_INTERVAL_SECONDS", default=300.0),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# -- HTTP API --------------------------------------------------------------------

REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "reliability.handlers.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "reliability.negotiation.ProblemJsonAwareNegotiation",
    "DEFAULT_RENDERER_CLASSES": ["reliability.renderers.OrjsonRenderer"],
    "DEFAULT_PARSER_CLASSES": ["reliability.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["analysis.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["analysis.api.authentication.HasApiKey"],
    "DEFAULT_THROTTLE_CLASSES": ["analysis.api.authentication.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env("API_RATE_LIMIT", default="600/minute")},
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "VEXxy Premium Service API",
    "DESCRIPTION": "Runtime reachability analysis of container images, published as OpenVEX. "
    "Every error is the JSON envelope {error, message, details, timestamp, request_id}.",
    "VERSION": __version__,
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from the installed package: the docs pages load nothing remote.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # 3.1 (JSON Schema 2020-12): propertyNames states the rule on environment variable names.
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "analysis.api.openapi.strict_request_bodies",
    ],
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "analysis.status.JobStatus",
        "VexStatusEnum": "analysis.vex.builder.VEX_STATUSES",
        "SeverityEnum": "analysis.kubescape.readers.SEVERITIES",
    },
}

# A verified API key is remembered this long in the shared cache (0: read it every request);
# revoking a key, or changing it or its organization, forgets it at once.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=30.0)

DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BODY_BYTES", default=10 * 1024 * 1024)
CSRF_FAILURE_VIEW = "reliability.views.csrf_failure"
# Messages can carry a new API key (shown once in the admin): never put them in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/(api/|health|livez|readyz)"
CORS_EXPOSE_HEADERS = ["X-Request-ID", "X-Response-Time", "Retry-After"]
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-api-key",
    "x-request-id",
)

SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=IS_PRODUCTION)
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# -- static files ----------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=None)  # set where collectstatic runs (the image)
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=not IS_PRODUCTION)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# -- logging -----------------------------------------------------------------------

LOG_LEVEL = env("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env("LOG_FORMAT", default="json" if IS_PRODUCTION else "text")
LOGGING = build_logging_config(json_lines=LOG_FORMAT == "json", level=LOG_LEVEL)
# django-axes reports every login attempt at INFO; its failures and lockouts are WARNINGs.
LOGGING["loggers"]["axes"] = {"level": "WARNING"}

# -- reliability -----------------------------------------------------------------------

# The reliability app's settings (reliability/settings.py lists every key and its default).
RELIABILITY = {
    "SERVICE_NAME": "vexxy-premium",
    "SERVICE_VERSION": __version__,
    "ERROR_ENVELOPE_PATHS": ("/api/", "/health", "/livez", "/readyz", "/metrics"),
    "TRUSTED_PROXIES": env.list("TRUSTED_PROXIES", default=[]),
    "DEFAULT_MAX_RETRIES": env.int("DEFAULT_MAX_RETRIES", default=3),
    "DEFAULT_INITIAL_DELAY": env.float("DEFAULT_INITIAL_DELAY", default=1.0),
    "DEFAULT_MAX_DELAY": env.float("DEFAULT_MAX_DELAY", default=60.0),
    # A status write that meets a lost database connection is retried on a new one.
    "DB_WRITE_ATTEMPTS": env.int("DB_WRITE_ATTEMPTS", default=5),
    "DB_RETRY_INITIAL_DELAY": env.float("DB_RETRY_INITIAL_DELAY", default=0.5),
    "DB_HEALTH_CHECK_GRACE": env.float("DATABASE_HEALTH_CHECK_GRACE", default=0.5),
    "CIRCUIT_BREAKER_CACHE": "default",
    "CIRCUIT_BREAKERS": {
        "kubernetes": {
            "failure_threshold": env.int("K8S_CIRCUIT_FAILURE_THRESHOLD", default=5),
            "recovery_timeout": env.float("K8S_CIRCUIT_RECOVERY_TIMEOUT", default=30.0),
            # Only failures of the cluster count: a 404 or 409 is an answer, not an outage.
            "expected_exceptions": "analysis.sandbox.client.TRANSIENT",
        },
    },
    "LOCK_CACHE": "default",
    "HEALTH_CHECKS": {
        "database": "reliability.health.check_database",
        "celery": "reliability.health.check_celery",
        "kubernetes": "analysis.sandbox.checks.check_kubernetes",
        "kubescape": "analysis.sandbox.checks.check_kubescape",
        "sandbox_slots": "analysis.sandbox.slots.check_sandbox_slots",
        "circuit_breakers": "reliability.health.check_circuit_breakers",
    },
    "HEALTH_CELERY_STALE_SECONDS": env.float("HEALTH_CELERY_STALE_SECONDS", default=30.0),
    "HEALTH_RETRY_AFTER": 10,
    # /metrics: loopback always; these networks, or "Authorization: Bearer $METRICS_TOKEN".
    "METRICS_TOKEN": env("METRICS_TOKEN", default=""),
    "METRICS_ALLOWED_NETWORKS": env.list("METRICS_ALLOWED_NETWORKS", default=[]),
    # Job gauges read from the database at scrape time (analysis/metrics.py).
    "METRICS_COLLECTORS": ("analysis.metrics.JobCollector",),
    "METRICS_WORKER_PORT": env.int("METRICS_WORKER_PORT", default=None),
    "METRICS_WORKER_HOST": env("METRICS_WORKER_HOST", default=""),
}

# -- metrics (prometheus-client multiprocess mode) --------------------------------------

# The directory every gunicorn and Celery process of this host writes its metrics to, so
# that one scrape sums them. gunicorn.conf.py and vexxy/celery.py put it in the environment
# (before prometheus_client is imported) unless PROMETHEUS_MULTIPROC_DIR is set; empty: off.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", str(DATA_DIR / "metrics"))
# Commands and shells never reach gunicorn.conf.py or Celery's signals; they must not take an
# empty value for a directory either (settings load before prometheus_client is imported).
forget_empty_dir()
HEALTH_KUBERNETES_TIMEOUT = env.float("HEALTH_KUBERNETES_TIMEOUT", default=2.0)
HEALTH_KUBERNETES_CACHE_SECONDS = env.float("HEALTH_KUBERNETES_CACHE_SECONDS", default=5.0)

# -- sandbox (Kubernetes + Kubescape) --------------------------------------------------


def _kubeconfig_found(value: str) -> bool:
    return any(Path(p).expanduser().is_file() for p in value.split(os.pathsep) if p)


K8S_IN_CLUSTER = env.bool("K8S_IN_CLUSTER", default=False)
KUBECONFIG = env("KUBECONFIG", default=str(Path.home() / ".kube" / "config"))
SANDBOX_ENABLED = env.bool(
    "SANDBOX_ENABLED", default=K8S_IN_CLUSTER or _kubeconfig_found(KUBECONFIG)
)
K8S_SANDBOX_NAMESPACE = env("K8S_SANDBOX_NAMESPACE", default="vexxy-sandbox")
KUBESCAPE_NAMESPACE = env("KUBESCAPE_NAMESPACE", default="kubescape")
K8S_REQUEST_TIMEOUT = env.float("K8S_REQUEST_TIMEOUT", default=10.0)
K8S_MAX_ATTEMPTS = env.int("K8S_MAX_ATTEMPTS", default=4)
KUBESCAPE_APISERVICE = "v1beta1.spdx.softwarecomposition.kubescape.io"
SANDBOX_UNAVAILABLE_RETRY_AFTER = 300
SANDBOX_RESOURCES = {
    "requests": {
        "cpu": env("SANDBOX_CPU_REQUEST", default="100m"),
        "memory": env("SANDBOX_MEMORY_REQUEST", default="128Mi"),
    },
    "limits": {
        "cpu": env("SANDBOX_CPU_LIMIT", default="1"),
        "memory": env("SANDBOX_MEMORY_LIMIT", default="512Mi"),
    },
}
# Longest pause between two polls of the sandbox or Kubescape; shorter near the deadline.
SANDBOX_POLL_MAX_SECONDS = env.float("SANDBOX_POLL_MAX_SECONDS", default=15.0)
# A relevant manifest seen before the profile completed is accepted after this long unchanged.
KUBESCAPE_SETTLE_SECONDS = env.float("KUBESCAPE_SETTLE_SECONDS", default=90.0)
# Attempts of a job whose failure was transient (cluster errors, open circuit).
ANALYSIS_MAX_ATTEMPTS = env.int("ANALYSIS_MAX_ATTEMPTS", default=3)
# Sandboxes alive at once, across every worker and host (analysis/sandbox/slots.py). A job
# that finds them all taken stays queued until a running job frees one.
MAX_CONCURRENT_SANDBOXES = env.int("MAX_CONCURRENT_SANDBOXES", default=4)
if MAX_CONCURRENT_SANDBOXES < 1:
    raise ImproperlyConfigured("MAX_CONCURRENT_SANDBOXES must be at least 1.")
# Web pods in Kubernetes run without a service-account token: they read the cluster's health
# as the workers last probed it (analysis/sandbox/checks.py) instead of asking the API server.
SANDBOX_HEALTH_FROM_WORKERS = env.bool("SANDBOX_HEALTH_FROM_WORKERS", default=False)

# -- analysis jobs --------------------------------------------------------------------------

# Deploy + readiness + Kubescape's scan, on top of a job's observation time.
ANALYSIS_SETUP_ALLOWANCE_SECONDS = env.int("ANALYSIS_SETUP_ALLOWANCE_SECONDS", default=600)
VEX_AUTHOR = env("VEX_AUTHOR", default="VEXxy Premium Service")
VEX_DOCUMENT_ID_BASE = env("VEX_DOCUMENT_ID_BASE", default="https://vexxy.dev/vex")
MAX_IMPORT_BODY_BYTES = env.int("MAX_IMPORT_BODY_BYTES", default=50 * 1024 * 1024)
# Per imported document: values (about 65 per Grype match) and nesting; bound the parse's memory.
MAX_IMPORT_VALUES = env.int("MAX_IMPORT_VALUES", default=5_000_000)
MAX_IMPORT_DEPTH = env.int("MAX_IMPORT_DEPTH", default=64)
RELIABILITY["BODY_SIZE_LIMITS"] = {"/api/v1/analysis/import": MAX_IMPORT_BODY_BYTES}
# Room between the job's budget, the worker's soft limit and its hard limit.
ANALYSIS_CLEANUP_ALLOWANCE_SECONDS = env.int("ANALYSIS_CLEANUP_ALLOWANCE_SECONDS", default=120)
