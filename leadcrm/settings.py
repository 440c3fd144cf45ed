"""Settings, configured only from environment variables with safe development defaults."""

import os
import sys
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp import constants as csp_constants

from leadcrm import brokers

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


DEBUG = env_bool("DEBUG", False)
# Production must set SECRET_KEY; the default only serves development and tests.
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-set-SECRET_KEY-in-production")  # leadcrm.checks
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver").split(",")]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "csp",
    "leadcrm",
    "leads",
    "scoring",
    "nurturing",
    "routing",
    "campaigns",
    "webhooks",
    "agenda",
    "reports",
]

MIDDLEWARE = [
    "leadcrm.logs.RequestIdMiddleware",
    "leadcrm.middleware.RequestMetricsMiddleware",
    "leadcrm.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "leadcrm.replica.ReadYourWritesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "leadcrm.middleware.ActiveOrganizationMiddleware",
    "leadcrm.middleware.ViewerTimezoneMiddleware",
    "leadcrm.middleware.DomainErrorMiddleware",
    "leadcrm.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "leadcrm.urls"
WSGI_APPLICATION = "leadcrm.wsgi.application"

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
                "leadcrm.context_processors.tenancy",
            ],
        },
    },
]

# Two logins (leadcrm/rls.py). DATABASE_URL is what web and worker processes log in as: the app role, held by
# row-level security to one org at a time. DATABASE_OWNER_URL is the role that owns the tables: manage.py commands
# (but runserver) and the test process use it; migrate creates the app role from DATABASE_URL's user and password.
# With DATABASE_URL alone, that one login is both: it must then be the owner, and switches to DATABASE_APP_ROLE
# (leadcrm_app) for requests and tasks with SET ROLE (`make run` derives a real app login from it instead).
DATABASE_OWNER_URL = os.environ.get("DATABASE_OWNER_URL", "")
_DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leadcrm")
_app_login = dj_database_url.parse(_DATABASE_URL)
_owner_login = os.environ.get("DATABASE_LOGIN") == "owner" or "pytest" in sys.modules
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_OWNER_URL if DATABASE_OWNER_URL and _owner_login else _DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# Behind PgBouncer in transaction pooling (README "Running in production"): every transaction may run on another
# server connection, so nothing may live in the session. The tenant scope is per transaction anyway (leadcrm/rls.py);
# this also turns off psycopg's prepared statements (PgBouncer 1.18 cannot carry them from one server connection to
# the next) and the startup `options` parameter PgBouncer refuses.
DATABASE_POOLED = env_bool("DATABASE_POOLED", False)
# What needs a session of its own, past the pooler: the outbox relay's LISTEN and the advisory locks of long work
# (leadcrm/direct.py). Empty: the same server as DATABASE_URL (right when no pooler is in between).
DATABASE_DIRECT_URL = os.environ.get("DATABASE_DIRECT_URL", "")
# JIT compilation pays off for long analytical queries only; for this app's short set-based statements it
# cost more (200–280 ms) than running them (measured with bench/segments.py). migrate also stores it in the database
# (leadcrm migration 0007), which is what a pooled connection gets.
_CONNECTION_OPTIONS = {"prepare_threshold": None} if DATABASE_POOLED else {"options": "-c jit=off"}
DATABASES["default"].setdefault("OPTIONS", {}).update(_CONNECTION_OPTIONS)
# A streaming read replica (leadcrm/replica.py): reports, CSV exports, list counts and the segment preview read from
# it, logged in as the app role like DATABASE_URL. Reads fall back to the primary when it is more than
# REPLICA_MAX_LAG_SECONDS behind (measured at most every REPLICA_LAG_CHECK_SECONDS) or does not answer, and for
# REPLICA_READ_YOUR_WRITES_SECONDS after a browser's own write.
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(
        DATABASE_REPLICA_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True)
    DATABASES["replica"]["OPTIONS"] = {**DATABASES["replica"].get("OPTIONS", {}), **_CONNECTION_OPTIONS}
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}  # no test database of its own: it replays the primary's
DATABASE_ROUTERS = ["leadcrm.replica.Router"]
REPLICA_MAX_LAG_SECONDS = float(os.environ.get("REPLICA_MAX_LAG_SECONDS", 10))
REPLICA_LAG_CHECK_SECONDS = float(os.environ.get("REPLICA_LAG_CHECK_SECONDS", 1))
REPLICA_READ_YOUR_WRITES_SECONDS = env_int("REPLICA_READ_YOUR_WRITES_SECONDS", 10)
# Requests and tasks run as this role: NOSUPERUSER NOBYPASSRLS NOCREATEROLE, owns nothing (leadcrm/rls.py).
DATABASE_APP_ROLE = os.environ.get("DATABASE_APP_ROLE") or (
    _app_login["USER"] if DATABASE_OWNER_URL else "leadcrm_app")
# Its password, set by migrate: DATABASE_URL's when that logs in as the app role; empty = local trust only.
DATABASE_APP_PASSWORD = os.environ.get("DATABASE_APP_PASSWORD") or (
    _app_login["PASSWORD"] if _app_login["USER"] == DATABASE_APP_ROLE else "")
# Signs the org setting row-level security trusts (rls.signed); empty = derived from SECRET_KEY. migrate stores it in
# the database: web and workers must run with the same value as the last migrate.
DATABASE_SCOPE_KEY = os.environ.get("DATABASE_SCOPE_KEY", "")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "leadcrm"),
    }
}

# No state local to one process or host: sessions in the database, the cache and every rate-limit counter in Redis
# (tests/leadcrm/test_shared_state.py), so any web process can answer any request.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["leadcrm.authentication.EmailBackend"]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"  # each role's home page (leadcrm.views.home)
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Hashed, compressed names need the manifest that collectstatic writes. Without it (tests, a process
# started without collectstatic) pages would fail on every {% static %}, so plain names are served instead.
_STATIC_MANIFEST = STATIC_ROOT / "staticfiles.json"
# Uploaded files (CSV imports) go through Django's storage API, never a path only one host can read: by default a
# directory (MEDIA_ROOT: in production one that every web and worker host mounts), or an S3-compatible bucket when
# STORAGE_S3_BUCKET is set (django-storages; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the host's
# role). The files are private: nothing serves MEDIA_URL, and S3 objects are written without a public ACL.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / ".data" / "media"))
MEDIA_URL = "/media/"
STORAGE_S3_BUCKET = os.environ.get("STORAGE_S3_BUCKET", "")
_default_storage: dict = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
if STORAGE_S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": STORAGE_S3_BUCKET,
            "location": os.environ.get("STORAGE_S3_PREFIX", ""),
            "endpoint_url": os.environ.get("STORAGE_S3_ENDPOINT_URL") or None,  # MinIO, Ceph, R2 ...; unset: AWS
            "region_name": os.environ.get("STORAGE_S3_REGION") or None,
            "default_acl": "private",
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and _STATIC_MANIFEST.exists() else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True

# Request bodies: JSON and forms are capped at 1 MiB (413 above it); CSV uploads have their own cap.
MAX_BODY_BYTES = env_int("MAX_BODY_BYTES", 1024 * 1024)
MAX_IMPORT_BYTES = env_int("MAX_IMPORT_BYTES", 50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_IMPORT_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

# Public form spam defence: submissions per minute from one address to one form.
FORM_RATE_LIMIT = os.environ.get("FORM_RATE_LIMIT", "30/m")
RATELIMIT_USE_CACHE = "default"

# Rate limits, counted in Redis per fixed window ("N/m", "N/15m", "N/s"; "off" turns one off). The API's are high
# enough for bulk and import paths and the benchmarks; one client over them gets 429 with Retry-After.
API_RATE_PER_KEY = os.environ.get("API_RATE_PER_KEY", "60000/m")
API_RATE_PER_USER = os.environ.get("API_RATE_PER_USER", "1200/m")  # browser sessions calling the API
API_RATE_ANONYMOUS = os.environ.get("API_RATE_ANONYMOUS", "120/m")  # per address, no key and no session
API_RATE_AUTH_FAILURES = os.environ.get("API_RATE_AUTH_FAILURES", "30/m")  # wrong API keys per address
# Open pixel, click redirect and unsubscribe, per address (mail providers' image proxies fetch for many readers).
TRACKING_RATE_LIMIT = os.environ.get("TRACKING_RATE_LIMIT", "600/m")
# Failed logins (browser and admin): per address, and per account whatever the address.
LOGIN_FAILURES_PER_IP = os.environ.get("LOGIN_FAILURES_PER_IP", "30/15m")
LOGIN_FAILURES_PER_ACCOUNT = os.environ.get("LOGIN_FAILURES_PER_ACCOUNT", "5/15m")
PASSWORD_RESET_PER_IP = os.environ.get("PASSWORD_RESET_PER_IP", "10/h")  # reset requests, known email or not
PASSWORD_RESET_PER_ACCOUNT = os.environ.get("PASSWORD_RESET_PER_ACCOUNT", "3/h")
RATELIMIT_VIEW = "leads.views.rate_limited"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "leadcrm.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["leadcrm.policy.Allowed"],
    "DEFAULT_PARSER_CLASSES": ["leadcrm.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "leadcrm.ratelimits.ApiKeyThrottle",
        "leadcrm.ratelimits.SessionUserThrottle",
        "leadcrm.ratelimits.AnonymousThrottle",
    ],
    "DEFAULT_PAGINATION_CLASS": "leadcrm.pagination.CreatedCursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "leadcrm.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "leadcrm.schema.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
API_KEY_CUSTOM_HEADER = "HTTP_AUTHORIZATION"

SPECTACULAR_SETTINGS = {
    "TITLE": "LeadCRM API",
    "DESCRIPTION": "Capture, read and manage leads. Authenticate with `Authorization: Api-Key <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["leadcrm.schema.drop_duplicate_routes"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "LeadFormFieldEnum": "leads.serializers.FORM_FIELD_CHOICES",
        "GradeEnum": "leads.models.Grade.choices",
        "LifecycleStageEnum": "leads.models.LifecycleStage.choices",
        "SegmentKindEnum": "leads.models.SegmentKind.choices",
        "RoutingStrategyEnum": "routing.models.Strategy.choices",
        "TouchTypeEnum": "routing.serializers.TOUCH_CHOICES",
        "TouchOutcomeEnum": "leads.touches.OUTCOME_VALUES",
        "ActivityTypeEnum": "leads.models.ActivityType.choices",
        "ScoringRuleKindEnum": "scoring.models.RuleKind.choices",
        "CampaignMemberStatusEnum": "campaigns.models.MemberStatus.choices",
        "WebhookDeliveryStatusEnum": "webhooks.models.DeliveryStatus.choices",
        "LeadStatusEnum": "leads.models.LeadStatus.choices",
        "ImportKindEnum": "leads.models.ImportKind.choices",
        "DealStatusEnum": "leads.models.DealStatus.choices",  # a stage's kind has the same three values
        "MqlRuleEnum": "scoring.models.MqlRule.choices",
        "TaskTypeEnum": "agenda.models.TaskType.choices",
    },
}

# Celery: Redis (default) or RabbitMQ broker (leadcrm/brokers.py), one queue per concern so a large import never
# delays speed to lead.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Keep a worker's database connection between tasks (a new one per task cost more than the tasks' own work);
# leadcrm.celery still drops broken or CONN_MAX_AGE-old connections before each task, as Django does per request.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "routing.tasks.email_notification": {"queue": "default"},  # a slow mail server never holds up routing
    "routing.tasks.email_notifications": {"queue": "default"},
    "leads.tasks.run_import": {"queue": "imports"},
    "leads.tasks.*": {"queue": "capture"},
    "scoring.tasks.*": {"queue": "scoring"},
    "routing.tasks.*": {"queue": "routing"},
    "nurturing.tasks.*": {"queue": "nurturing"},
    "webhooks.tasks.*": {"queue": "webhooks"},
    "agenda.tasks.*": {"queue": "routing"},
}
# A task taken by a worker that was killed (SIGKILL, lost host) goes back to the queue after this many seconds. It must
# exceed the longest retry countdown (imports wait up to 300 s), or a waiting retry is delivered again and again.
# Long tasks delivered twice meanwhile do no double work (imports and re-scoring hold a lock, ticks share rows with
# SKIP LOCKED); the beat's sweepers also re-enqueue rows whose task never ran, so this is only a backstop.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 600)
CELERY_BROKER_TRANSPORT_OPTIONS = brokers.transport_options(CELERY_BROKER_URL,
                                                            visibility_timeout=CELERY_VISIBILITY_TIMEOUT)
# Declared the same way on Redis and RabbitMQ (quorum queues there: leadcrm/brokers.py).
CELERY_TASK_QUEUES = brokers.task_queues()
CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = "quorum"
CELERY_WORKER_DETECT_QUORUM_QUEUES = True
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
SWEEP_TICK_SECONDS = env_int("SWEEP_TICK_SECONDS", 30)
CELERY_BEAT_SCHEDULE: dict = {
    "scoring-decay": {"task": "scoring.tasks.apply_decay", "schedule": crontab(hour=3, minute=15)},
    "scoring-windows": {"task": "scoring.tasks.expire_windows", "schedule": crontab(hour=3, minute=25)},
    # Each org's conversion model is trained again when its outcomes changed since (scoring.predictive).
    "scoring-retrain": {"task": "scoring.tasks.retrain_changed", "schedule": crontab(hour=2, minute=45)},
    # First-touch deadlines are minutes long: look for missed ones twice a minute.
    "routing-sla": {"task": "routing.tasks.check_deadlines", "schedule": env_int("ROUTING_SLA_TICK_SECONDS", 30)},
    # Due sequence steps are sent within one tick.
    "nurture-tick": {"task": "nurturing.tasks.tick", "schedule": env_int("NURTURE_TICK_SECONDS", 15)},
    # Webhook retries and deliveries whose task was lost (broker outage, killed worker) are sent from here.
    "webhooks-sweep": {"task": "webhooks.tasks.sweep", "schedule": env_int("WEBHOOKS_SWEEP_SECONDS", 30)},
    "webhooks-purge": {"task": "webhooks.tasks.purge", "schedule": crontab(hour=3, minute=45)},
    # Event handlers that failed (the broker was down, say) are retried; rows whose task never ran or whose worker
    # died are re-enqueued (imports, unrouted MQLs, stalled re-scoring).
    "outbox": {"task": "leadcrm.tasks.deliver_outbox", "schedule": env_int("OUTBOX_TICK_SECONDS", 5)},
    # One entry for every kind of lost work (leadcrm.claims.register_sweeper): imports, unrouted MQLs, re-scoring.
    "sweep": {"task": "leadcrm.tasks.sweep", "schedule": SWEEP_TICK_SECONDS},
    # Reminders of tasks that came due: each sent once (agenda.services.remind_org).
    "agenda-reminders": {"task": "agenda.tasks.send_reminders",
                         "schedule": env_int("AGENDA_REMINDER_TICK_SECONDS", 30)},
    # Tombstones of deleted, merged and erased leads (GET /api/v1/leads/deleted/) older than their retention go.
    "purge-tombstones": {"task": "leads.tasks.purge_tombstones", "schedule": crontab(hour=3, minute=55)},
}
# Missed first-touch deadlines a tick claimed are left to it for this long; a tick that died leaves them to a later one.
ROUTING_SLA_LEASE_SECONDS = env_int("ROUTING_SLA_LEASE_SECONDS", 60)
# Due task reminders one pass claims per org (the rest wait for the next pass).
AGENDA_REMINDER_BATCH = env_int("AGENDA_REMINDER_BATCH", 10_000)
# Event handlers run in the workers' outbox relay (leadcrm/relay.py), woken on commit, not in the request that
# emitted the event. Off: in the emitting process after its commit (the unit tests, which have no worker).
OUTBOX_RELAY = env_bool("OUTBOX_RELAY", True)
# Events the relay claims and hands to their handlers at once (one org's captures are scored by one task).
OUTBOX_RELAY_BATCH = env_int("OUTBOX_RELAY_BATCH", 500)
# Under load (events closer together than this), the relay waits this long before each turn to take more at once.
# A trade of latency for CPU (make bench-speed-to-lead at 40 captures/s): 100 ms gave 28.9 ms of CPU per lead and
# p95 0.42 s to the rep's queue, 200 ms 23–24 ms and 0.58–0.63 s, 300 ms 18.6 ms and 0.78 s.
OUTBOX_RELAY_LINGER_MS = env_int("OUTBOX_RELAY_LINGER_MS", 200)
# How long the relay sleeps when nothing wakes it; the beat delivers what it misses (e.g. a relay reconnecting).
OUTBOX_RELAY_IDLE_SECONDS = env_int("OUTBOX_RELAY_IDLE_SECONDS", 5)
# How long a row may wait for its task before a sweeper enqueues it again (a running import or re-scoring holds a
# lock, so it is never taken twice).
SWEEP_AFTER_SECONDS = env_int("SWEEP_AFTER_SECONDS", 60)
# How long the deleted-leads feed keeps a tombstone: an integration that polls less often must copy everything anew.
SYNC_TOMBSTONE_RETENTION_DAYS = env_int("SYNC_TOMBSTONE_RETENTION_DAYS", 90)

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 1025)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
# The address people open links in emails at.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "LeadCRM <no-reply@leadcrm.local>")
# Sequence email: at most this many per organization per minute (more waits for the next tick); a message left
# `sending` this long by a worker that stopped becomes `unknown` and is never sent again; the mailto address of
# List-Unsubscribe (default: unsubscribe@ the sender's domain).
NURTURE_RATE_PER_MINUTE = env_int("NURTURE_RATE_PER_MINUTE", 600)
NURTURE_SENDING_STALE_MINUTES = env_int("NURTURE_SENDING_STALE_MINUTES", 30)
# A claimed email nobody began to hand over for this long (its worker stopped) is sent by the next tick.
NURTURE_QUEUED_STALE_SECONDS = env_int("NURTURE_QUEUED_STALE_SECONDS", 60)
NURTURE_UNSUBSCRIBE_MAILTO = os.environ.get("NURTURE_UNSUBSCRIBE_MAILTO", "")
# "Send me a test" from the template editor and the sequence editor: at most this many per member (e.g. "10/10m").
NURTURE_TEST_EMAIL_RATE = os.environ.get("NURTURE_TEST_EMAIL_RATE", "10/10m")

# Outbound webhooks. Receivers must be public https addresses; WEBHOOKS_ALLOW_PRIVATE (and WEBHOOKS_ALLOW_HTTP) let
# development, tests and benchmarks deliver to a receiver on this machine. Retries: seconds after each failed
# attempt (5 s, 5 min, 30 min, 2 h, 5 h, 10 h), then the delivery fails.
WEBHOOKS_ALLOW_PRIVATE = env_bool("WEBHOOKS_ALLOW_PRIVATE", False)
WEBHOOKS_ALLOW_HTTP = env_bool("WEBHOOKS_ALLOW_HTTP", DEBUG)
WEBHOOKS_CONNECT_TIMEOUT = float(os.environ.get("WEBHOOKS_CONNECT_TIMEOUT", 3))
WEBHOOKS_READ_TIMEOUT = float(os.environ.get("WEBHOOKS_READ_TIMEOUT", 5))
WEBHOOKS_MAX_REDIRECTS = env_int("WEBHOOKS_MAX_REDIRECTS", 3)
WEBHOOKS_RETRY_SCHEDULE = os.environ.get("WEBHOOKS_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000")
WEBHOOKS_SWEEP_SECONDS = env_int("WEBHOOKS_SWEEP_SECONDS", 30)
WEBHOOKS_BATCH_SIZE = env_int("WEBHOOKS_BATCH_SIZE", 50)
WEBHOOKS_SEND_CONCURRENCY = env_int("WEBHOOKS_SEND_CONCURRENCY", 8)  # POSTs in flight at once per worker process
WEBHOOKS_DRAIN_SECONDS = env_int("WEBHOOKS_DRAIN_SECONDS", 60)
WEBHOOKS_DRAIN_TASKS = env_int("WEBHOOKS_DRAIN_TASKS", 4)
# A claimed delivery is not taken by another worker for this long: more than one send with its redirects can last.
WEBHOOKS_LEASE_SECONDS = env_int("WEBHOOKS_LEASE_SECONDS", 120)
# Delivered and failed deliveries (with their attempts and bodies) are deleted this many days after they were made.
WEBHOOKS_RETENTION_DAYS = env_int("WEBHOOKS_RETENTION_DAYS", 30)

# HTTPS (README "Running in production" lists the settings production uses).
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)  # set SECURE_COOKIES=1 behind HTTPS
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Behind a TLS-terminating proxy that sets e.g. X-Forwarded-Proto: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO.
# Only set it when the proxy always overwrites that header, or a client could claim HTTPS.
if os.environ.get("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (os.environ["SECURE_PROXY_SSL_HEADER"], "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)  # browsers remember it: start small, then a year
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# The health checks and metrics are polled over plain HTTP by load balancers inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"  # the public form page alone may be framed (leads.views.forms)

# Content Security Policy (django-csp): scripts only from our own static files or inline ones carrying the
# request's nonce. Styles may be inline: templates use style attributes, and the email preview (an iframe
# srcdoc, which inherits this policy) shows emails whose styles are inline by necessity. Images may come from
# any https host for the same reason. Views that differ (the public form, framed by other sites) adjust it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", csp_constants.NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "https:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}

# Logs: one JSON object per line on stderr (LOG_FORMAT=json, the default) with time, level, logger, message and the
# request_id, org_id and task_id of the request or task that wrote it (leadcrm.logs); LOG_FORMAT=text for reading
# in a terminal. Celery workers keep this configuration instead of installing their own.
LOG_FORMAT = "text" if os.environ.get("LOG_FORMAT", "json") == "text" else "json"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "leadcrm.logs.ContextFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(org_id)s %(task_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(org_id)s %(task_id)s] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["context"], "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Prometheus metrics at /metrics (leadcrm.metrics): readable with `Authorization: Bearer <METRICS_TOKEN>` or from
# METRICS_ALLOWED_NETWORKS (comma-separated, e.g. "10.0.0.0/8"); with neither, by nobody. A Celery worker serves its
# task metrics on WORKER_METRICS_PORT when set. Several processes per container: set PROMETHEUS_MULTIPROC_DIR.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = [n.strip() for n in os.environ.get("METRICS_ALLOWED_NETWORKS", "").split(",") if n.strip()]
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0)
