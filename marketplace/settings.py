"""The one settings module. Defaults give the zero-setup demo; every real component is switched on from the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from marketplace.env import ConfigError, env_bool, env_float, env_int, env_list, env_str, parse_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
# Folders under VAR_DIR are created when the apps start (marketplace.apps), never on import.
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and env_bool("REQUIRE_SECRET_KEY", False):
        raise ConfigError("SECRET_KEY is empty; set it in the environment for production")
    # A fixed, obviously insecure key for the demo and the tests only; `check --deploy` flags it.
    SECRET_KEY = "django-insecure-demo-key-change-me-" + "0" * 20
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "marketplace",
    "training",
    "marketplace.delivery",
    "marketplace.deals",
    "marketplace.outbox",
    "marketplace.verification",
    "marketplace.sponsored",
    "axes",
    "ninja",  # so /api/docs serves Swagger UI from our static files instead of a CDN
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Near the top, so a database refusing connections anywhere below (sessions, auth, a view) is a 503, not a 500.
    "marketplace.web.overload.OverloadMiddleware",
    "marketplace.web.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "marketplace.web.errors.AppErrorMiddleware",
    "marketplace.web.middleware.NotAllowedPageMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page (429), never a 500.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "marketplace.urls"
WSGI_APPLICATION = "marketplace.wsgi.application"
ASGI_APPLICATION = "marketplace.asgi.application"

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

DATABASES = {"default": parse_database_url(env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'marketplace.sqlite3'}"))}
# A bounded PostgreSQL connection pool per server process (Django's psycopg pool), on when DATABASE_POOL_MAX_SIZE > 0.
# The server's processes times max_size must stay under PostgreSQL's max_connections, with room for the workers.
# A request that waits longer than DATABASE_POOL_TIMEOUT_S for a connection gets a 503 with Retry-After
# (marketplace.web.overload), never a 500.
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 0, minimum=0)
DATABASE_POOL_MIN_SIZE = env_int("DATABASE_POOL_MIN_SIZE", 2, minimum=0)
DATABASE_POOL_TIMEOUT_S = env_float("DATABASE_POOL_TIMEOUT_S", 10.0, minimum=0.1)
if DATABASE_POOL_MAX_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django must not hold them too
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": min(DATABASE_POOL_MIN_SIZE, DATABASE_POOL_MAX_SIZE),
            "max_size": DATABASE_POOL_MAX_SIZE,
            "timeout": DATABASE_POOL_TIMEOUT_S,
        }
    }
# Seconds an overloaded server tells clients to wait before trying again (Retry-After on its 503s).
OVERLOAD_RETRY_AFTER_S = env_int("OVERLOAD_RETRY_AFTER_S", 2, minimum=1)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "marketplace.accounts.auth_backends.EmailBackend"]
# Login throttling: after LOGIN_FAILURE_LIMIT wrong passwords for one address, or from one client address, further
# attempts are refused for LOGIN_LOCKOUT_MINUTES (even with the right password); a success resets the count.
AXES_ENABLED = env_bool("LOGIN_THROTTLING", True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_USERNAME_CALLABLE = "marketplace.accounts.auth_backends.login_username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# Behind the TLS proxy the client is the proxy's X-Forwarded-For entry, not the proxy.
AXES_IPWARE_PROXY_COUNT = 1 if env_bool("BEHIND_TLS_PROXY", False) else None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if env_bool("BEHIND_TLS_PROXY", False) else ["REMOTE_ADDR"]
)
# E-mail verification: the signed link mailed at sign-up stays valid this long.
EMAIL_VERIFICATION_TTL_HOURS = env_int("EMAIL_VERIFICATION_TTL_HOURS", 72, minimum=1)
# The resend page: one new link per address per interval, and so many requests per client address and hour.
EMAIL_VERIFICATION_RESEND_INTERVAL_S = env_int("EMAIL_VERIFICATION_RESEND_INTERVAL_S", 120, minimum=1)
EMAIL_VERIFICATION_RESEND_PER_CLIENT_HOUR = env_int("EMAIL_VERIFICATION_RESEND_PER_CLIENT_HOUR", 20, minimum=1)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "marketplace" / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# Serve straight from the app folders too, so `make serve` and the tests need no collectstatic step.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "marketplace@localhost")

# Security: everything that `check --deploy` asks for, switched on by the environment in production.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Uploads: preference files are validated in memory; anything larger is refused before it is parsed.
PREFERENCE_UPLOAD_MAX_BYTES = env_int("PREFERENCE_UPLOAD_MAX_BYTES", 2 * 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = PREFERENCE_UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = PREFERENCE_UPLOAD_MAX_BYTES + 1024 * 1024
INVITATION_TTL_HOURS = env_int("INVITATION_TTL_HOURS", 7 * 24, minimum=1)
# Invitations (e-mail and link) allowed per group and per inviting person in any hour.
INVITATIONS_PER_GROUP_PER_HOUR = env_int("INVITATIONS_PER_GROUP_PER_HOUR", 20, minimum=1)
INVITATIONS_PER_USER_PER_HOUR = env_int("INVITATIONS_PER_USER_PER_HOUR", 30, minimum=1)

# Celery: the filesystem broker needs no server (the demo); production and CI set a redis:// URL.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_FOLDER = VAR_DIR / "celery-broker"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Longest a training job may hold a message; redelivery after it is harmless because jobs are claimed by compare-and-set.
CELERY_VISIBILITY_TIMEOUT_S = env_int("CELERY_VISIBILITY_TIMEOUT_S", 6 * 3600, minimum=60)
# Holds left `releasing` (Stripe down at withdraw) are retried by a beat sweep this often.
BILLING_RELEASE_SWEEP_S = env_int("BILLING_RELEASE_SWEEP_S", 60, minimum=5)
# The outbox relay (beat) sends task messages the broker refused at commit; also run when a worker starts.
OUTBOX_RELAY_INTERVAL_S = env_int("OUTBOX_RELAY_INTERVAL_S", 5, minimum=1)
# How long to wait for the broker when sending a message; the outbox keeps the row if it does not answer.
CELERY_BROKER_CONNECTION_TIMEOUT_S = env_int("CELERY_BROKER_CONNECTION_TIMEOUT_S", 2, minimum=1)

# Models and artefacts.
MODEL_CACHE_DIR = Path(env_str("MODEL_CACHE_DIR", str(VAR_DIR / "models")))
ARTIFACT_DIR = Path(env_str("ARTIFACT_DIR", str(VAR_DIR / "artifacts")))
TRAINING_DEVICE = env_str("TRAINING_DEVICE", "cpu")
# Processes one job trains on, data-parallel (training.lib.distributed): the GPUs of a training worker (NCCL on cuda,
# gloo on cpu); 1 trains in the worker process itself.
TRAINING_PROCESSES = env_int("TRAINING_PROCESSES", 1, minimum=1)
# A running job whose heartbeat is older than this has lost its worker and may be claimed again (it resumes).
TRAINING_HEARTBEAT_STALE_S = env_int("TRAINING_HEARTBEAT_STALE_S", 120, minimum=1)
TRAINING_DEFAULT_STEPS = env_int("TRAINING_DEFAULT_STEPS", 60, minimum=1)
# Weight of the plain q*-weighted cross-entropy added to the candidate-normalised loss (see docs/training.md).
TRAINING_SFT_WEIGHT = env_float("TRAINING_SFT_WEIGHT", 1.0, minimum=0.0)
# weighted_sft's on-policy refinement (training.lib.sft, docs/training.md): steps on the adapter's own samples weighted
# toward pi*, added after the TRAINING_DEFAULT_STEPS steps on the candidates; samples per prompt; pools drawn.
TRAINING_REFINE_STEPS = env_int("TRAINING_REFINE_STEPS", 15, minimum=0)
TRAINING_REFINE_SAMPLES = env_int("TRAINING_REFINE_SAMPLES", 16, minimum=1)
TRAINING_REFINE_POOLS = env_int("TRAINING_REFINE_POOLS", 1, minimum=1)
# Steps whose Celery message may have been lost are sent again by the scheduler after this long.
ROUND_STEP_RESEND_AFTER_S = env_int("ROUND_STEP_RESEND_AFTER_S", 15 * 60, minimum=1)

# Delivery: the inference engine (its own process; vLLM's OpenAI server speaks the same protocol) and the /v1/ API's limits.
INFERENCE_URL = env_str("INFERENCE_URL", "http://127.0.0.1:8100")
INFERENCE_TIMEOUT_S = env_float("INFERENCE_TIMEOUT_S", 120.0, minimum=1.0)
# Requests per token per window on /v1/ (a fixed window in Django's cache).
OPENAI_API_RATE_LIMIT = env_int("OPENAI_API_RATE_LIMIT", 60, minimum=1)
OPENAI_API_RATE_WINDOW_S = env_int("OPENAI_API_RATE_WINDOW_S", 60, minimum=1)
OPENAI_API_MAX_TOKENS = env_int("OPENAI_API_MAX_TOKENS", 256, minimum=1)
OPENAI_API_MAX_N = env_int("OPENAI_API_MAX_N", 8, minimum=1)
OPENAI_API_MAX_K = env_int("OPENAI_API_MAX_K", 64, minimum=1)
# The platform's share δ of a resold model's revenue when the group has recorded no agreed share (docs/economics.md).
RESALE_PLATFORM_SHARE_DEFAULT = env_float("RESALE_PLATFORM_SHARE_DEFAULT", 0.3, minimum=0.0)
if RESALE_PLATFORM_SHARE_DEFAULT > 1:
    raise ConfigError(f"RESALE_PLATFORM_SHARE_DEFAULT={RESALE_PLATFORM_SHARE_DEFAULT} must be at most 1")
# Sponsored answers (marketplace.sponsored): the encoder the engine embeds queries and ads with, the auctions' currency,
# how long a click link stays valid, and how often the click spend of finished days is billed (beat).
SPONSORED_EMBEDDING_MODEL = env_str("SPONSORED_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
SPONSORED_CURRENCY = env_str("SPONSORED_CURRENCY", "usd")
SPONSORED_CLICK_TTL_S = env_int("SPONSORED_CLICK_TTL_S", 7 * 24 * 3600, minimum=60)
SPONSORED_BILLING_INTERVAL_S = env_int("SPONSORED_BILLING_INTERVAL_S", 3600, minimum=60)
# Click-fraud cap: clicks charged per API user (whose answer showed the ad), campaign and day; the rest are free.
SPONSORED_MAX_BILLED_CLICKS_PER_USER_DAY = env_int("SPONSORED_MAX_BILLED_CLICKS_PER_USER_DAY", 3, minimum=1)

# Stripe: defaults talk to localstripe on loopback; a real sk_test_ key with STRIPE_API_BASE unset talks to Stripe's test mode.
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "sk_test_localstripe")
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY", "pk_test_localstripe")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "whsec_localstripe_dev_secret")
_default_api_base = "http://127.0.0.1:8420" if STRIPE_SECRET_KEY == "sk_test_localstripe" else ""
STRIPE_API_BASE = env_str("STRIPE_API_BASE", _default_api_base)
STRIPE_JS_URL = env_str(
    "STRIPE_JS_URL", f"{STRIPE_API_BASE}/js.stripe.com/v3/" if STRIPE_API_BASE else "https://js.stripe.com/v3/"
)
STRIPE_HOLD_DAYS = env_int("STRIPE_HOLD_DAYS", 5, minimum=1)
# How long training is expected to take after the close: a round whose bidding window plus this exceeds the hold is
# billed off-session at delivery instead of held at bid time.
BILLING_TRAINING_ALLOWANCE_HOURS = env_int("BILLING_TRAINING_ALLOWANCE_HOURS", 24, minimum=0)
# What an hour of the training job's wall time costs the platform, for the staff billing overview.
BILLING_GPU_COST_PER_HOUR_CENTS = env_int("BILLING_GPU_COST_PER_HOUR_CENTS", 250, minimum=0)
if not STRIPE_API_BASE and STRIPE_WEBHOOK_SECRET == "whsec_localstripe_dev_secret":
    raise ConfigError("STRIPE_WEBHOOK_SECRET is the development default; set the endpoint's signing secret from Stripe")
if not STRIPE_SECRET_KEY.startswith("sk_"):
    raise ConfigError("STRIPE_SECRET_KEY must start with sk_ (use a test-mode key)")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}
