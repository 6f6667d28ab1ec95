"""Settings, read from the environment (see .env.example)."""

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal import logs
from portal.secret_key import load_or_create_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


def envint(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def envfloat(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def url_host(url: str) -> str:
    """The host of a URL as ALLOWED_HOSTS spells it (an IPv6 address in brackets)."""
    host = urlsplit(url).hostname or ""
    return f"[{host}]" if ":" in host else host


def envpath(name: str, default: Path) -> Path:
    return Path(os.environ.get(name, default)).resolve()


# Production mode unless DEBUG=1: a mistyped address must not show Django's debug page to the world.
DEBUG = envbool("DEBUG", False)
VAR_DIR = envpath("PORTAL_VAR_DIR", BASE_DIR / "var")

PORTAL_HTTP_HOST = os.environ.get("PORTAL_HTTP_HOST", "127.0.0.1")
PORTAL_HTTP_PORT = envint("PORTAL_HTTP_PORT", 8000)
# gunicorn under `manage.py serve`: processes, and threads per process (git over HTTP holds a thread per clone).
PORTAL_WEB_WORKERS = envint("PORTAL_WEB_WORKERS", 2)
PORTAL_WEB_THREADS = envint("PORTAL_WEB_THREADS", 8)
PORTAL_SSH_HOST = os.environ.get("PORTAL_SSH_HOST", "127.0.0.1")
PORTAL_SSH_PORT = envint("PORTAL_SSH_PORT", 2222)
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", f"http://localhost:{PORTAL_HTTP_PORT}").rstrip("/")
# Where git hooks reach the web process. Unset (the default), they go through a unix socket that gunicorn binds
# under `manage.py serve`, and the hook endpoint answers nothing else. Set it (http://web-1.internal:8000, say)
# when the web process runs elsewhere; the endpoint then answers over TCP too, guarded by the one-push secret.
# A build worker on a machine without GIT_ROOT fetches its builds' commits from it too (else from PORTAL_BASE_URL).
PORTAL_INTERNAL_URL = os.environ.get("PORTAL_INTERNAL_URL", "").rstrip("/")
PORTAL_INTERNAL_SOCKET = VAR_DIR / "internal" / "web.sock"
# Seconds a push may take from the start of its upload until its hooks have run.
PORTAL_PUSH_SESSION_MAX_AGE = envint("PORTAL_PUSH_SESSION_MAX_AGE", 15 * 60)
# Hosts and networks (names, addresses, CIDRs, comma-separated) that webhooks may reach although they are not
# public: loopback, private, link-local and metadata addresses are refused otherwise (portal/outbound.py).
PORTAL_WEBHOOK_ALLOWED_HOSTS = os.environ.get("PORTAL_WEBHOOK_ALLOWED_HOSTS", "")
# Seconds before each retry of a failed delivery (five attempts in all, over about an hour), and how long a hook
# may fail in a row before the portal turns it off and tells the repository's administrators.
PORTAL_WEBHOOK_RETRY_DELAYS = [float(s) for s in envlist("PORTAL_WEBHOOK_RETRY_DELAYS", "60,300,900,2400")]
PORTAL_WEBHOOK_DISABLE_AFTER = envint("PORTAL_WEBHOOK_DISABLE_AFTER", 24 * 60 * 60)
# Seconds a receiver has to answer a delivery.
PORTAL_WEBHOOK_TIMEOUT = float(os.environ.get("PORTAL_WEBHOOK_TIMEOUT", 10))
# The host name shown in SSH clone URLs.
PORTAL_SSH_DOMAIN = os.environ.get("PORTAL_SSH_DOMAIN") or urlsplit(PORTAL_BASE_URL).hostname or "localhost"
PORTAL_SSH_HOST_KEY = envpath("PORTAL_SSH_HOST_KEY", VAR_DIR / "ssh_host_ed25519_key")
# Seconds an authenticated SSH git session may go without data either way before the server closes it.
PORTAL_SSH_IDLE_TIMEOUT = envint("PORTAL_SSH_IDLE_TIMEOUT", 10 * 60)

# A key given in the environment wins; otherwise the first start makes one and keeps it under var/, so
# sessions and signed links survive a restart.
SECRET_KEY = os.environ.get("SECRET_KEY") or load_or_create_secret_key(VAR_DIR / "secret_key")
# Former keys, comma-separated, after a rotation: what they signed stays valid and build secrets encrypted under
# them still decrypt, until they are saved again under the new key.
SECRET_KEY_FALLBACKS = envlist("SECRET_KEY_FALLBACKS")
# The public host, and the local names the portal answers to on its own machine.
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS") or list(
    dict.fromkeys([url_host(PORTAL_BASE_URL) or "localhost", "localhost", "127.0.0.1", "[::1]"])
)

GIT_ROOT = envpath("GIT_ROOT", VAR_DIR / "git")
GIT_BIN = os.environ.get("GIT_BIN", "git")
# Builds: each one's workspace under PORTAL_BUILDS_ROOT/<id>, its log under PORTAL_BUILDS_ROOT/logs. The sandboxed
# builds run as other uids, so the root and its parents must be traversable by others (the portal makes the root
# and the directories it creates mode 0711: traversable, not listable).
PORTAL_BUILDS_ROOT = envpath("PORTAL_BUILDS_ROOT", VAR_DIR / "builds")
# Local deployment targets: each one a directory PORTAL_TARGETS_ROOT/<repository id>/<environment>/<target>, whose
# hooks run sandboxed as other uids, so it too must be traversable by others (releases/local_target.py).
PORTAL_TARGETS_ROOT = envpath("PORTAL_TARGETS_ROOT", VAR_DIR / "targets")
# A deployment worker's own files: logs while a deployment runs (then in the artifact store), and the artifact it
# verifies and deploys from.
PORTAL_DEPLOYS_ROOT = envpath("PORTAL_DEPLOYS_ROOT", VAR_DIR / "deploys")
# Added to the host uids the sandbox runs builds (releases.jobs) and local targets' hooks (releases.deploy_job) as:
# two portals on one host (or the parallel workers of a test session) each take their own, so that no uid is shared between
# them (the process limit counts every process of a uid). Keep it a multiple of 200000 to keep the ranges apart.
PORTAL_SANDBOX_UID_OFFSET = envint("PORTAL_SANDBOX_UID_OFFSET", 0)
# How many targets of one batch a deployment deploys to at the same time.
PORTAL_DEPLOY_PARALLEL = envint("PORTAL_DEPLOY_PARALLEL", 4)
# Days an ended build keeps its log and artifacts (GitHub's default); artifacts still in use are kept.
PORTAL_BUILD_KEEP_DAYS = envint("PORTAL_BUILD_KEEP_DAYS", 90)
# Seconds after the last push before a repository is repacked and its commit-graph rewritten.
PORTAL_MAINTENANCE_DELAY = envint("PORTAL_MAINTENANCE_DELAY", 60)
# Maintenance removes a killed push's quarantine (objects/tmp_objdir-incoming-*) unchanged for this many seconds.
PORTAL_STALE_INCOMING_AGE = envint("PORTAL_STALE_INCOMING_AGE", 60 * 60)
# Jobs (portal/jobs.py): a running job beats every PORTAL_JOB_HEARTBEAT seconds; the reconciler ends a run that has
# not beaten for PORTAL_JOB_HEARTBEAT_LIMIT seconds, and enqueues again a queued row that Redis lost once it is
# PORTAL_JOB_ENQUEUE_GRACE seconds old (younger ones still have their own enqueue on the way).
PORTAL_JOB_HEARTBEAT = envint("PORTAL_JOB_HEARTBEAT", 15)
PORTAL_JOB_HEARTBEAT_LIMIT = envint("PORTAL_JOB_HEARTBEAT_LIMIT", 120)
PORTAL_JOB_ENQUEUE_GRACE = envint("PORTAL_JOB_ENQUEUE_GRACE", 30)
# A failed job is retried after this many seconds times the attempts it made (3 attempts in all).
PORTAL_JOB_RETRY_DELAY = envint("PORTAL_JOB_RETRY_DELAY", 30)
# Days the rows of jobs that ended are kept (a webhook's delivery log), then deleted by the hourly pruner.
PORTAL_JOB_KEEP_DAYS = envint("PORTAL_JOB_KEEP_DAYS", 30)
# Seconds between two runs of the job reconciler (rq's cron scheduler, portal/cron.py).
PORTAL_JOB_RECONCILE_INTERVAL = envint("PORTAL_JOB_RECONCILE_INTERVAL", 60)
# `manage.py serve` starts a child that dies again after PORTAL_SERVE_RESTART_BACKOFF seconds, doubled for each
# recent failure up to PORTAL_SERVE_RESTART_BACKOFF_MAX; PORTAL_SERVE_MAX_FAILURES failures of one child within
# PORTAL_SERVE_FAILURE_WINDOW seconds stop the whole portal instead.
PORTAL_SERVE_RESTART_BACKOFF = envfloat("PORTAL_SERVE_RESTART_BACKOFF", 1.0)
PORTAL_SERVE_RESTART_BACKOFF_MAX = envfloat("PORTAL_SERVE_RESTART_BACKOFF_MAX", 30.0)
PORTAL_SERVE_MAX_FAILURES = envint("PORTAL_SERVE_MAX_FAILURES", 5)
PORTAL_SERVE_FAILURE_WINDOW = envfloat("PORTAL_SERVE_FAILURE_WINDOW", 60.0)
# /-/health reports the disk of PORTAL_VAR_DIR as low below this many free megabytes.
PORTAL_HEALTH_MIN_FREE_MB = envint("PORTAL_HEALTH_MIN_FREE_MB", 512)
# After how long a pipeline approval nobody answered reminds its approvers (once) by email.
PORTAL_APPROVAL_REMIND_HOURS = envint("PORTAL_APPROVAL_REMIND_HOURS", 24)

INSTALLED_APPS = [
    "portal",
    "repos",
    "reviews",
    "releases",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "django_rq",
]

MIDDLEWARE = [
    # A visitor's repeat view of a code page, answered from the cache; first, so that what it keeps of a page is
    # every header the others give it (a web process answers even before Django's handler: portal.wsgi).
    "repos.page_cache.CachedPages",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.ContentSecurityPolicy",
    "portal.middleware.NoNulBytes",
    "allauth.account.middleware.AccountMiddleware",
    "portal.middleware.PasswordChangeRequiredMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
# Wraps Django's WSGI handler in a web process: a visitor's repeat view of a code page is sent from the cache first.
PORTAL_WSGI_FRONT = "repos.page_cache.AnswerFirst"
AUTH_USER_MODEL = "portal.User"

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
                "portal.context_processors.portal",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite creates the database file but not its folder, and a fresh checkout has no var/ yet.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# When REDIS_URL is unset, `manage.py serve` starts the embedded Valkey on this socket.
REDIS_SOCKET = VAR_DIR / "valkey.sock"
REDIS_URL = os.environ.get("REDIS_URL") or f"unix://{REDIS_SOCKET}"
RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600} for name in ("default", "builds", "deploys")}
# rq kills a job that runs past its timeout; a build keeps to its own time limit (at most 8 hours, see releases), so
# rq's is past the longest one, with time to store what it made.
RQ_QUEUES["builds"]["DEFAULT_TIMEOUT"] = 9 * 60 * 60
# rq's worker, stopping within a second when asked (portal/jobs.py).
RQ = {"WORKER_CLASS": "portal.jobs.Worker"}

# Rendered blobs, diffs, blame and tree maps are cached by object sha. PORTAL_CACHE picks where: "redis" (the
# default when REDIS_URL is set, as `manage.py serve` does for its embedded Valkey: one cache for every web
# process), "locmem" (per process, the default otherwise) or "dummy" (nothing kept: every view is a first view).
PORTAL_CACHE = os.environ.get("PORTAL_CACHE") or ("redis" if os.environ.get("REDIS_URL") else "locmem")
CACHE_BACKENDS = {
    # An unreachable Redis is a cache miss (portal/cache.py), found out within a second or two.
    "redis": {
        "BACKEND": "portal.cache.FailSafeRedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
    },
    "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"MAX_ENTRIES": 5000}},
    "dummy": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
}
if PORTAL_CACHE not in CACHE_BACKENDS:
    raise ImproperlyConfigured(f"PORTAL_CACHE must be one of {', '.join(CACHE_BACKENDS)}, not {PORTAL_CACHE!r}")
CACHES = {"default": CACHE_BACKENDS[PORTAL_CACHE]}
# What each web process keeps of those (content named by shas, so never stale) in front of the shared cache.
PORTAL_LOCAL_CACHE_MB = envint("PORTAL_LOCAL_CACHE_MB", 0 if PORTAL_CACHE == "dummy" else 64)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = envpath("STATIC_ROOT", VAR_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Where build artifacts and logs are kept (releases/storage.py). "filesystem" (the default): under
# PORTAL_BUILDS_ROOT/store, which build workers on other machines must then share (NFS, say). "s3": a bucket of an
# S3-compatible store through django-storages, which every worker reaches on its own. Its settings are
# django-storages' own (AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL for a store other than AWS, ...); the
# credentials come the way boto3 finds them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, an instance role).
PORTAL_ARTIFACT_STORAGE = os.environ.get("PORTAL_ARTIFACT_STORAGE", "filesystem")
if PORTAL_ARTIFACT_STORAGE == "s3":
    AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "")
    if not AWS_STORAGE_BUCKET_NAME:
        raise ImproperlyConfigured("PORTAL_ARTIFACT_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME.")
    AWS_S3_ENDPOINT_URL = os.environ.get("AWS_S3_ENDPOINT_URL") or None
    AWS_S3_REGION_NAME = os.environ.get("AWS_S3_REGION_NAME") or None
    # "path" for stores that do not serve buckets as host names (MinIO and most self-hosted ones).
    AWS_S3_ADDRESSING_STYLE = os.environ.get("AWS_S3_ADDRESSING_STYLE") or None
    # A prefix inside the bucket, so that one bucket can serve several portals.
    AWS_LOCATION = os.environ.get("AWS_LOCATION", "")
    # Artifacts are downloaded through the portal, which checks who may read them: the bucket stays private.
    AWS_DEFAULT_ACL = None
    STORAGES["artifacts"] = {"BACKEND": "storages.backends.s3.S3Storage"}
elif PORTAL_ARTIFACT_STORAGE != "filesystem":
    raise ImproperlyConfigured(
        f"PORTAL_ARTIFACT_STORAGE is {PORTAL_ARTIFACT_STORAGE!r}: it must be 'filesystem' (the default) or 's3'."
    )

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"

# Accounts (django-allauth).
ACCOUNT_ADAPTER = "portal.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("ACCOUNT_EMAIL_VERIFICATION", "optional")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_RATE_LIMITS = {"login_failed": os.environ.get("PORTAL_LOGIN_RATE_LIMIT", "10/m/ip,5/5m/key")}
ACCOUNT_USERNAME_VALIDATORS = "portal.validators.username_validators"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
USERSESSIONS_TRACK_ACTIVITY = True

EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = envint("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "portal@localhost")

# git's hooks call back through the web process's unix socket (naming the public host), or on PORTAL_INTERNAL_URL
# when it is set (plain HTTP between nodes): both hosts must be allowed and, in production mode, the hook endpoint
# not redirected to HTTPS, or every push is refused. The endpoint itself only answers a live push's secret.
_internal = urlsplit(PORTAL_INTERNAL_URL)
for _host in (url_host(PORTAL_BASE_URL), url_host(PORTAL_INTERNAL_URL)):
    if _host and _host not in ALLOWED_HOSTS:
        ALLOWED_HOSTS.append(_host)
# Behind TLS (an https PORTAL_BASE_URL, through a proxy that sets X-Forwarded-Proto) production mode sends http
# to https, keeps its cookies to https and asks browsers to come back over https only (HSTS). A plain-HTTP
# start on one machine cannot, and `manage.py check --deploy` lists exactly those four settings.
_behind_tls = urlsplit(PORTAL_BASE_URL).scheme == "https"
if not DEBUG:
    if _behind_tls:
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", _behind_tls)
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _behind_tls
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000 if _behind_tls else 0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
    CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", PORTAL_BASE_URL)
    # HSTS preload (security.W021) commits the domain and all its subdomains to HTTPS in browsers for months,
    # which only the site's operator can decide; SECURE_HSTS_PRELOAD=1 turns it on.
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    # Load balancers ask for the health endpoint on the plain-HTTP port, behind the proxy that does TLS.
    SECURE_REDIRECT_EXEMPT = [r"^-/health$"]
    if _internal.scheme != "https":
        SECURE_REDIRECT_EXEMPT.append(r"^-/internal/hooks/")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Every response gets this Content-Security-Policy unless its view sets a stricter one (raw files do). Pages
# load scripts and styles only from our own static files: no inline script, no inline style, no framing, and
# forms post only back to the portal. Images in rendered Markdown from other hosts are not loaded either,
# which also keeps readers' addresses from them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
    }
}

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
_log_handler = {"class": "logging.StreamHandler"}
if logs.log_to_file:
    # `serv` and `authorized_keys` (run by OpenSSH) log here; the file appears only when there is something to say.
    (VAR_DIR / "log").mkdir(parents=True, exist_ok=True)
    _log_handler = {"class": "logging.FileHandler", "filename": str(VAR_DIR / "log" / "openssh.log"), "delay": True}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"log": _log_handler},
    "root": {"handlers": ["log"], "level": LOG_LEVEL},
    "loggers": {
        "asyncssh": {"level": "WARNING"},
        # Python's warnings (deprecations inside dependencies, mostly) are news for whoever upgrades those, not
        # for the terminal of a first start: the log has them with LOG_LEVEL=DEBUG.
        "py.warnings": {"level": "WARNING" if LOG_LEVEL == "DEBUG" else "ERROR"},
    },
}
