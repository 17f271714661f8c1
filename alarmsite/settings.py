"""Settings, all from environment variables with safe defaults (see the README's table)."""

import ipaddress
import secrets
from pathlib import Path

import environ
from kombu import Queue

from core import logs
from core.redis_location import RedisLocation, parse_sentinels

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
# Private: it holds the secret key, the SQLite database and kept emails with live ACK links.
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept under var/."""
    if env.str("SECRET_KEY", default=""):
        return env.str("SECRET_KEY")
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Signs Web Push requests (PEM); empty: one generated at first start under var/ (core.vapid).
VAPID_PRIVATE_KEY = env.str("VAPID_PRIVATE_KEY", default="").replace("\\n", "\n")
# Who the push services may contact about our requests.
VAPID_SUBJECT = env.str("VAPID_SUBJECT", default="mailto:alarms@localhost")
# The push services browsers' subscriptions may point at (".example.com": it and below, https).
WEBPUSH_SERVICE_HOSTS = env.list("WEBPUSH_SERVICE_HOSTS", default=[
    ".googleapis.com", ".push.services.mozilla.com", ".push.apple.com", ".notify.windows.com",
])  # fmt: skip
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# Where people reach this server; links in emails and SMS start with it.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PUBLIC_BASE_URL])

# Served over HTTPS (PUBLIC_BASE_URL says so) and not debugging: cookies only over HTTPS, HSTS,
# plain HTTP redirected (except the probes, which call the process directly).
HTTPS = PUBLIC_BASE_URL.startswith("https://") and not DEBUG
if HTTPS:
    # TLS ends at the reverse proxy in front of daphne, which must say so in this header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)

INSTALLED_APPS = [
    "daphne",
    "accounts.apps.AlarmAdminConfig",  # the admin, entered by role (accounts/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the docs page's scripts and styles, served by us
    "django_filters",
    "django_celery_beat",
    "django_prometheus",
    "channels",
    "devices",
    "escalation",
    "oncall",
    "configuration",
    "notifications",
    "alarms",
    "responders",
    "accounts",  # last: its post_migrate sees every app's permissions
]

MIDDLEWARE = [
    "observability.health.probes_first",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.content_security.content_security_policy",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.audit.middleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "alarmsite.urls"
ASGI_APPLICATION = "alarmsite.asgi.application"
WSGI_APPLICATION = "alarmsite.wsgi.application"

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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASE_IS_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
DATABASE_IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith(("postgresql", "postgis"))
if DATABASE_IS_SQLITE:
    # Web, worker and beat share one file: wait for the write lock instead of failing, and
    # take it at BEGIN so two writers never deadlock upgrading a read lock.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
elif DATABASE_IS_POSTGRES:
    # A server that stops answering (a lost primary, a partition) is given up on within
    # seconds, not after TCP's minutes: the web answers 503 and /readyz turns red meanwhile.
    # Options in DATABASE_URL's query come first (target_session_attrs=read-write, with
    # several hosts: each process finds the primary by itself).
    DATABASES["default"]["OPTIONS"] = {
        "connect_timeout": 3,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
        "tcp_user_timeout": 5000,
        **DATABASES["default"].get("OPTIONS", {}),
    }
if DATABASE_IS_POSTGRES and env.bool("DATABASE_PGBOUNCER", default=False):
    # Behind PgBouncer's transaction pooling each transaction may run on another server
    # session, so nothing may outlive one: no server-side cursors (a queryset's iterator()).
    # Django binds parameters on the client (no prepared statements), and the code keeps no
    # other session state (its only lock is pg_advisory_xact_lock).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if DATABASE_IS_POSTGRES and env.bool("DATABASE_POOL", default=False):
    # The web process (alarmsite/asgi.py turns this on): each request runs on a thread of its
    # own, so it borrows a connection from a pool instead of opening one per request.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 2,
        "max_size": env.int("DATABASE_POOL_SIZE", default=10),
        # A request waits this long for a connection, then is answered 503.
        "timeout": 5,
    }
elif not DATABASE_IS_SQLITE:
    # Worker and beat: their threads live long and keep their connections.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# With REDIS_URL unset, the runner starts its own Redis on this socket.
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis.sock"
REDIS_URL = env.str("REDIS_URL", default=f"unix://{EMBEDDED_REDIS_SOCKET}")
# With Sentinels, every Redis client finds the master through them (core/redis_location.py).
REDIS_SENTINELS = parse_sentinels(env.list("REDIS_SENTINELS", default=[]))
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="mymaster")
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
REDIS_LOCATION = RedisLocation(
    REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD
)

CELERY_BROKER_URL = REDIS_LOCATION.celery_broker_url()
CELERY_RESULT_BACKEND = None
# One (disabled) result backend for all threads: the web process runs each request on a new
# thread, and Celery would otherwise make a backend for each when it queues a task.
CELERY_RESULT_BACKEND_THREAD_SAFE = True
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged only after it ran, and given back if its worker dies; every task is
# idempotent, so running one twice is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django support would close the database connection around every task (a new
# PostgreSQL backend each time); with this it does so only every this many tasks, and
# alarmsite/celery.py closes broken or old connections the way Django does after a request.
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_VISIBILITY_TIMEOUT = 3600
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
    "socket_timeout": 5,
    "socket_connect_timeout": 2,
    **REDIS_LOCATION.celery_transport_options(),
}
# Publishing happens after the alarm is committed; never hold the answer long on a dead broker.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Reconnects after Redis was away, where Celery's own consumer would exit (see the module).
CELERY_WORKER_CONSUMER = "alarmsite.worker_consumer:Consumer"
# Tasks are idempotent and acknowledged late: on a lost broker they are redelivered, not
# cancelled mid-run (and Celery stops warning that its default will change).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# The sweeper is the safety net under lost tasks and dead workers: it and what it hands back
# have a queue of their own, so they never wait behind a backlog of the work they look after.
# Every worker takes from both queues, in turn (a worker started with -Q must name both).
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue("celery"), Queue("recovery"))
CELERY_TASK_ROUTES = {
    "escalation.tasks.sweep": {"queue": "recovery"},
    "alarms.tasks.watch_outbox": {"queue": "recovery"},
    "responders.tasks.sweep": {"queue": "recovery"},
    "responders.tasks.receive_signal": {"queue": "recovery"},
    # Not alarms.tasks.sweep_mail: it reads senders' mails, which must never hold these up.
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    # The database holds the escalation clock; this sweep is what makes it tick.
    "escalation-sweep": {
        "task": "escalation.tasks.sweep",
        "schedule": env.float("ESCALATION_SWEEP_INTERVAL", default=5.0),
        "options": {"expires": 30},
    },
    "outbox-watch": {
        "task": "alarms.tasks.watch_outbox",
        "schedule": env.float("OUTBOX_WATCH_INTERVAL", default=10.0),
        "options": {"expires": 30},
    },
    "heartbeat-check": {
        "task": "alarms.tasks.check_heartbeats",
        "schedule": env.float("HEARTBEAT_CHECK_INTERVAL", default=30.0),
        "options": {"expires": 60},
    },
    # Who was on call is written as it happens: the past is read from that record.
    "on-call-record": {
        "task": "oncall.tasks.record",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    "shift-notices": {
        "task": "notifications.tasks.send_shift_notices",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Replies that arrived while no worker was there; replies on Signal, fetched.
    "reply-sweep": {
        "task": "responders.tasks.sweep",
        "schedule": env.float("REPLY_SWEEP_INTERVAL", default=5.0),
        "options": {"expires": 30},
    },
    "signal-receive": {
        "task": "responders.tasks.receive_signal",
        "schedule": env.float("SIGNAL_RECEIVE_INTERVAL", default=5.0),
        "options": {"expires": 15},
    },
    # Mails the listener stored but could not read into an alarm (it died, the database went).
    "mail-in-sweep": {
        "task": "alarms.tasks.sweep_mail",
        "schedule": env.float("MAIL_IN_SWEEP_INTERVAL", default=10.0),
        "options": {"expires": 30},
    },
    # Public warning feeds (CAP): each polled at its own interval; this is how often beat looks.
    "cap-feeds": {
        "task": "alarms.tasks.poll_cap_feeds",
        "schedule": env.float("CAP_FEED_CHECK_INTERVAL", default=30.0),
        "options": {"expires": 60},
    },
}

# Pub/sub: a board event is published once and fanned out to every socket inside each web
# process, instead of queued once per socket. It delivers at most once, as any layer may:
# the board's sequence numbers and snapshots make up for a lost event.
# Redis pub/sub channels ignore the database number: the prefix carries it, so instances that
# share one Redis server on different databases never see each other's board events.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_LOCATION.channel_layer_host()],
            "prefix": f"asgi-db{REDIS_LOCATION.db}",
        },
    }
}

# Storm guard: more than this many alarm starts from one source kind (or from all together)
# within the window, and the rest are folded into one digest alarm per policy (0: no limit).
STORM_WINDOW_SECONDS = env.int("STORM_WINDOW_SECONDS", default=60)
STORM_SOURCE_THRESHOLD = env.int("STORM_SOURCE_THRESHOLD", default=30)
STORM_GLOBAL_THRESHOLD = env.int("STORM_GLOBAL_THRESHOLD", default=100)
# A storm alarm notifies this long after it opened, so its digest counts what came meanwhile.
STORM_DIGEST_SECONDS = env.int("STORM_DIGEST_SECONDS", default=30)

# An alarm that fires again this soon after it was resolved reopens, not notifying anew.
FLAP_WINDOW_SECONDS = env.int("FLAP_WINDOW_SECONDS", default=300)

# Countdown tasks are only a fast path, for delays well inside the visibility timeout.
ESCALATION_COUNTDOWN_MAX = min(
    env.int("ESCALATION_COUNTDOWN_MAX", default=900), CELERY_BROKER_VISIBILITY_TIMEOUT // 2
)
# Deliveries: attempts and backoff for transient failures, timeout of each transport call.
DELIVERY_MAX_ATTEMPTS = env.int("DELIVERY_MAX_ATTEMPTS", default=5)
DELIVERY_RETRY_BASE_SECONDS = env.float("DELIVERY_RETRY_BASE_SECONDS", default=10.0)
DELIVERY_TIMEOUT_SECONDS = env.float("DELIVERY_TIMEOUT_SECONDS", default=10.0)
# Channels that keep a remote record in step (upstream broker, Zammad, PagerDuty) retry a
# transient failure for as long as the alarm exists, waiting at most this long between tries;
# while one waits, the sweeper tries its oldest message every OUTBOX_PROBE_SECONDS, and once
# the provider answers again every message waiting for it goes.
OUTBOX_RETRY_MAX_SECONDS = env.float("OUTBOX_RETRY_MAX_SECONDS", default=60.0)
OUTBOX_PROBE_SECONDS = env.float("OUTBOX_PROBE_SECONDS", default=5.0)
# A channel whose provider has refused its messages this long raises an alarm of its own.
OUTBOX_ALARM_AFTER_SECONDS = env.float("OUTBOX_ALARM_AFTER_SECONDS", default=300.0)
# A queued delivery, or an alarm's step queued to run at once, is left to its task this long
# past its time before the sweeper takes it over (a worker that is behind would otherwise be
# handed the same work every sweep).
REQUEUE_AFTER_SECONDS = env.float("REQUEUE_AFTER_SECONDS", default=120.0)

EMAIL_HOST = env.str("EMAIL_HOST", default="")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = DELIVERY_TIMEOUT_SECONDS
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="alarms@localhost")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
else:
    # No mail server: keep each sent message as a file under var/mail (ACK link included; the
    # Delivery row keeps it without the link), so what would have been sent can be read.
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["alarms.api.permissions.DeviceOrPermittedUser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "alarms.api.errors.json_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI schema (/v1/schema) and its docs page (/v1/docs: Swagger UI from the sidecar's
# static files, no CDN, no inline script). Both are public: they describe the API, which the
# README describes too, and every endpoint still checks its own credentials.
SPECTACULAR_SETTINGS = {
    "TITLE": "Alarm broker API",
    "DESCRIPTION": (
        "Raise, clear, list and act on alarms; receive Prometheus Alertmanager webhooks, "
        "PagerDuty Events API v2 events, metric samples and device heartbeats.\n\n"
        "**Credentials.** `Authorization: Bearer <token>` with a device's token or a user's API "
        "token (acting with that user's role), or a signed-in browser session (send the CSRF "
        "token in `X-CSRFToken` on POST). A Yealink Action URL and a heartbeat GET carry the "
        "device token as `?token=`; PagerDuty events carry it as `routing_key`. Integration "
        "tokens (Alertmanager, PagerDuty, metrics) open only their own endpoint.\n\n"
        '**Errors** are JSON: `{"error": "…"}` (with `fields` for invalid input), except '
        "on the PagerDuty endpoint, which answers in PagerDuty's own shapes. 503 with "
        "`Retry-After` means nothing was stored: send it again.\n\n"
        'Outside this API: `GET /healthz` (liveness, `{"status": "ok"}`), `GET /readyz` '
        "(readiness of database, Redis, worker and beat; 503 when one is missing), `GET /metrics` "
        "(Prometheus text, for a scraper with its token or from an allowed network), and the "
        "HTML pages: ACK links `/a/<token>`, the board `/board/`, the admin."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No badge fetched from the public validator: the page talks to this server only.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/v[0-9]+",  # tags and operation ids from what follows /v1 or /v2
    # Several fields are named status or severity with different choices: one name for each.
    "ENUM_NAME_OVERRIDES": {
        "SeverityEnum": "alarms.models.Severity",
        "AlarmStatusEnum": "alarms.models.Status",
        "AlertStatusEnum": ["firing", "resolved"],
        "PagerDutySeverityEnum": ["critical", "error", "warning", "info"],
        "PagerDutySuccessEnum": ["success"],
        "PagerDutyInvalidEnum": ["invalid event"],
        "PagerDutyThrottledEnum": ["throttle event"],
        "ResponderTypeEnum": ["team", "user", "escalation", "schedule"],
    },
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "deviceTokenQuery": {
                "type": "apiKey",
                "in": "query",
                "name": "token",
                "description": "A device's token, for clients that cannot send headers.",
            },
            "genieKey": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "An Opsgenie integration's token, as `GenieKey <token>`.",
            },
        }
    },
}

# Behind a reverse proxy: the header carrying the client's address (e.g. X-Forwarded-For), believed
# only from these proxy addresses. Unset: the peer's own address is the client's.
TRUSTED_PROXY_HEADER = env.str("TRUSTED_PROXY_HEADER", default="")
TRUSTED_PROXIES = [  # a wrong entry stops the start
    ipaddress.ip_network(net)
    for net in env.list("TRUSTED_PROXIES", default=["127.0.0.1/32", "::1/128"])
]

# Sign-in (board and admin): after this many failures from one address or for one username
# within the window, sign-in is refused until the window ends.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=900)

# ACK links opened or used a minute from one address, and alarm actions a minute by one user
# or device through the API; above it, 429.
ACK_RATE_PER_MINUTE = env.int("ACK_RATE_PER_MINUTE", default=60)
# Replies (SMS, Signal): requests per minute per address to a gateway's reply URL, and answers
# per number per hour to replies that change nothing ("Unknown code").
INBOUND_RATE_PER_MINUTE = env.int("INBOUND_RATE_PER_MINUTE", default=120)
REPLY_ANSWERS_PER_HOUR = env.int("REPLY_ANSWERS_PER_HOUR", default=5)

# Email in (`manage.py listen_mail`): the SMTP listener's address, the domains it takes mail
# for (an email integration's address is <its local part>@<any of them>; others: relaying
# denied), and the largest mail it takes (SIZE; larger ones are refused with 552).
MAIL_IN_HOST = env.str("MAIL_IN_HOST", default="127.0.0.1")
MAIL_IN_PORT = env.int("MAIL_IN_PORT", default=2525)
MAIL_IN_DOMAINS = [
    d.strip().lower() for d in env.list("MAIL_IN_DOMAINS", default=["alarms.localhost"])
]
MAIL_IN_MAX_BYTES = env.int("MAIL_IN_MAX_BYTES", default=1024 * 1024)

# Alarm panels (`manage.py listen_sia`): the address the SIA DC-09 receiver listens on, TCP
# and UDP on the same port.
SIA_HOST = env.str("SIA_HOST", default="127.0.0.1")
SIA_PORT = env.int("SIA_PORT", default=12128)

# At most this many messages per contact point (a phone number, a topic) and window, per
# method: "5/15m,11/1h,21/3h" (s, m, h); empty: no limit. What is held back goes later, bundled
# into one message; the first page of a critical alarm is never held.
THROTTLE_DEFAULTS = {
    "sms": "5/15m,11/1h,21/3h",
    "signal": "5/15m,11/1h,21/3h",
    "voice": "3/15m,6/1h,11/3h",
}
THROTTLE_LIMITS = {
    method: env.str(f"THROTTLE_{method.upper()}", default=default)
    for method, default in {**THROTTLE_DEFAULTS, "email": "", "ntfy": "", "gotify": ""}.items()
}

# Requests a minute one user API token may make; above it, 429.
API_TOKEN_RATE_PER_MINUTE = env.int("API_TOKEN_RATE_PER_MINUTE", default=120)
# After "rotate with grace" in the admin, a device's old token keeps working this long.
DEVICE_TOKEN_GRACE_HOURS = env.float("DEVICE_TOKEN_GRACE_HOURS", default=24.0)

# Who may read /metrics: a Bearer token, or clients in these networks.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = [  # a wrong entry stops the start, not a scrape
    ipaddress.ip_network(net)
    for net in env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
]

# The board's heartbeat: proves the socket alive and re-checks the user is still allowed.
BOARD_HEARTBEAT_SECONDS = env.float("BOARD_HEARTBEAT_SECONDS", default=15.0)

# Largest request body the API reads; anything larger is answered 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# Public warnings (CAP 1.2): the largest alert document read (POSTed or fetched) and feed;
# the language whose <info> an alarm shows (empty: the first); a feed fetch's timeout.
CAP_MAX_BYTES = env.int("CAP_MAX_BYTES", default=1024 * 1024)
CAP_FEED_MAX_BYTES = env.int("CAP_FEED_MAX_BYTES", default=5 * 1024 * 1024)
CAP_LANGUAGE = env.str("CAP_LANGUAGE", default="")
CAP_FEED_TIMEOUT_SECONDS = env.float("CAP_FEED_TIMEOUT_SECONDS", default=10.0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise serves from the app folders until collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "board"
LOGOUT_REDIRECT_URL = "login"

# Every line one JSON object (or plain text for a terminal), with the alarm it concerns and
# tokens redacted; Celery's worker and beat use this too (alarmsite/celery.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = logs.logging_config(LOG_FORMAT, env.str("LOG_LEVEL", default="INFO"))
