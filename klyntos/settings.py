"""Settings read from environment variables, each with an embedded default.

The defaults make `make run` work on a bare machine: SQLite files under `.data/`, the
in-memory channel layer, the in-process executor and the built-in provider simulator.
Every variable is listed in README.md's configuration table.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from klyntos.env_settings import (
    BYTES,
    env_bool,
    env_checked,
    env_float,
    env_int,
    env_list,
    env_optional_float,
)

# Each number below has a range (klyntos/env_settings.py): outside it, or not a number,
# start-up stops with ImproperlyConfigured naming the variable, the range and the value.
GIB = 1024 * 1024 * 1024

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("KLYNTOS_DATA_DIR", BASE_DIR / ".data"))

SECRET_KEY = os.environ.get("SECRET_KEY", "klyntos-local-development-key-change-me-in-production")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list(
    "CSRF_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000"
)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "engine",
    "builder",
    "leads",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # REST API bodies read whatever their framing, within KLYNTOS_REQUEST_MAX_BYTES.
    "klyntos.request_body.RequestBodyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "klyntos.urls"
ASGI_APPLICATION = "klyntos.asgi.application"

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


def _database(url: str) -> dict[str, Any]:
    config = dj_database_url.parse(url, conn_max_age=0)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        options = config.setdefault("OPTIONS", {})
        # Concurrent item writes from the executor wait for the lock instead of failing.
        options["timeout"] = 30
        # WAL: readers (every request) never wait for the run store's write transactions,
        # which in the default journal mode lock them out while committing.
        options["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
        # In WAL mode a transaction that read before another connection committed cannot
        # become a writer: SQLite answers "database is locked" at once, without the busy
        # timeout (a save during a run failed that way). IMMEDIATE takes the write lock at
        # BEGIN, where the timeout applies.
        options["transaction_mode"] = "IMMEDIATE"
    return dict(config)


DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'klyntos.sqlite3'}")
# Workflow data (the `leads` tables) lives on its own connection: a database block can
# never reach the application's tables (auth_user, sessions, secrets).
DATA_DATABASE_URL = os.environ.get(
    "DATA_DATABASE_URL", f"sqlite:///{DATA_DIR / 'klyntos_data.sqlite3'}"
)
DATABASES = {"default": _database(DATABASE_URL), "data": _database(DATA_DATABASE_URL)}
if any(db["ENGINE"].endswith("sqlite3") for db in DATABASES.values()):
    DATA_DIR.mkdir(parents=True, exist_ok=True)
DATABASE_ROUTERS = ["leads.routers.DataRouter"]
ON_POSTGRESQL = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
# Who executes runs: `inline` (the embedded default: the web process, on its own loop
# thread) or `workers` (Procrastinate jobs in PostgreSQL, executed by `manage.py worker`
# processes on any machine; the web process executes nothing).
KLYNTOS_EXECUTOR = os.environ.get("KLYNTOS_EXECUTOR", "inline")
if KLYNTOS_EXECUTOR not in {"inline", "workers"}:
    raise ImproperlyConfigured(
        f"KLYNTOS_EXECUTOR must be 'inline' or 'workers', not {KLYNTOS_EXECUTOR!r}"
    )
if KLYNTOS_EXECUTOR == "workers" and not ON_POSTGRESQL:
    raise ImproperlyConfigured(
        "KLYNTOS_EXECUTOR=workers needs PostgreSQL (DATABASE_URL=postgres://…): the job queue"
        " lives there"
    )
# The job queue (Procrastinate) is installed wherever PostgreSQL is; SQLite has no use for it.
if ON_POSTGRESQL:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("engine"), "procrastinate.contrib.django")
PROCRASTINATE_IMPORT_PATHS = ["engine.jobs"]
PROCRASTINATE_AUTODISCOVER_MODULE_NAME = ""
# Each owner's workflow data lives apart (`leads/owner_data.py`): on PostgreSQL a schema and
# a login role per owner in the data database (DATA_DATABASE_URL's user provisions them, so
# it needs CREATEROLE; as a superuser it also closes the cluster catalogs), role passwords
# derived from SECRET_KEY; on SQLite a file per owner next to the data file.
# The executor keeps one data connection (a pool on PostgreSQL) per owner open between runs;
# past this many, the least recently used idle one is closed.
KLYNTOS_DATA_POOLS = env_int("KLYNTOS_DATA_POOLS", 16, 1, 1000)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
# Seconds a channel-layer read waits for Redis: past the layer's 5 s blocking receive, so an
# idle socket is never mistaken for a dead server.
REDIS_READ_TIMEOUT = 30
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s the
            # layer's idle BZPOPMIN blocks for: an idle socket's receive then fails and its
            # consumer closes with 1011 (channels_redis#422). Reads wait past the block.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": REDIS_READ_TIMEOUT}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(
    parents=True, exist_ok=True
)  # WhiteNoise expects it even when serving from finders
STATICFILES_DIRS = [BASE_DIR / "static"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, with the webhook's depth limit and jsonb-storable strings (builder/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["builder.parsers.SafeJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {"TITLE": "Klyntos API", "VERSION": "0.1.0"}

# --- Klyntos ---------------------------------------------------------------------------
# Sandbox mode starts the built-in provider simulator and routes the providers' hosts to it.
KLYNTOS_SANDBOX = env_bool("KLYNTOS_SANDBOX", False)
KLYNTOS_SIMULATOR_URL = os.environ.get("KLYNTOS_SIMULATOR_URL", "http://127.0.0.1:8765")


def _parse_host_overrides(text: str) -> object:
    # The outbound calls' own parser (imported here only when there is something to parse).
    from engine.core.outbound import parse_host_overrides

    return parse_host_overrides(text)


# "host=base_url,host=base_url": outbound calls to a listed host go to that base URL. Parsed
# now, so a malformed entry stops start-up instead of the first call that reads it.
KLYNTOS_HOST_OVERRIDES = env_checked("KLYNTOS_HOST_OVERRIDES", _parse_host_overrides)
# Extra hosts (host or host:port) the SSRF guard lets through although they are private.
KLYNTOS_TRUSTED_HOSTS = env_list("KLYNTOS_TRUSTED_HOSTS")
# Seconds a loop waits, as it starts, for the connections its first items' calls will use
# (engine/core/preconnect.py); 0 opens none ahead. At most 5.
KLYNTOS_PRECONNECT_WAIT = env_float("KLYNTOS_PRECONNECT_WAIT", 0.25, 0, 5, zero="off")
# Process environment variables a workflow may read as <env.NAME>, by name.
KLYNTOS_ENV_ALLOWLIST = env_list("KLYNTOS_ENV_ALLOWLIST")
# Key for secrets at rest; derived from SECRET_KEY when unset.
KLYNTOS_SECRETS_KEY = os.environ.get("KLYNTOS_SECRETS_KEY", "")
KLYNTOS_WEBHOOK_MAX_BYTES = env_int("KLYNTOS_WEBHOOK_MAX_BYTES", 1024 * 1024, 1, GIB, what=BYTES)
# Past a few hundred levels the JSON decoder (recursive) would run out of stack.
KLYNTOS_WEBHOOK_MAX_DEPTH = env_int("KLYNTOS_WEBHOOK_MAX_DEPTH", 32, 1, 500)
# Largest REST API request body, whatever its framing (Content-Length or chunked): 413 past it.
KLYNTOS_REQUEST_MAX_BYTES = env_int(
    "KLYNTOS_REQUEST_MAX_BYTES", 10 * 1024 * 1024, 1, GIB, what=BYTES
)
# Runs calling runs (through webhooks or the API) nest at most this deep (400 past it).
KLYNTOS_MAX_CALL_DEPTH = env_int("KLYNTOS_MAX_CALL_DEPTH", 8, 1, 100)
# Runs one workflow may start per minute (webhook, API, CLI): 429 with Retry-After past it
# (0: no limit).
KLYNTOS_RUNS_PER_MINUTE = env_int("KLYNTOS_RUNS_PER_MINUTE", 300, 0, 1_000_000, zero="no limit")
# Runs one owner may start per minute across all their workflows (0: no limit).
KLYNTOS_OWNER_RUNS_PER_MINUTE = env_int(
    "KLYNTOS_OWNER_RUNS_PER_MINUTE", 1200, 0, 1_000_000, zero="no limit"
)
# The longest a webhook or REST run request may wait for the run's answer (`Prefer: wait=`
# or `?wait=`, seconds): 400 past it. The wait holds no thread, only the open connection.
KLYNTOS_MAX_WAIT_SECONDS = env_float("KLYNTOS_MAX_WAIT_SECONDS", 30, 0, 3600, zero="no waiting")
# Django's own cap on a declared body (a 400 past it) must not undercut the limits above.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(KLYNTOS_REQUEST_MAX_BYTES, KLYNTOS_WEBHOOK_MAX_BYTES)
KLYNTOS_BLOCK_TIMEOUT = env_float("KLYNTOS_BLOCK_TIMEOUT", 60, 0.1, 86_400)
# A run's loop items, all its loops together (nested ones included, whose `max_concurrent`
# caps multiply): at most this many in flight at once (1 to 10000), and at most this many in
# all (1 to 10000000), counted as each loop starts: a loop past it fails the run, naming it.
# (engine/core/limits.py's MAX_ITEMS_IN_FLIGHT and MAX_ITEMS_PER_RUN.)
KLYNTOS_MAX_ITEMS_IN_FLIGHT = env_int("KLYNTOS_MAX_ITEMS_IN_FLIGHT", 1000, 1, 10_000)
KLYNTOS_MAX_ITEMS_PER_RUN = env_int("KLYNTOS_MAX_ITEMS_PER_RUN", 1_000_000, 1, 10_000_000)
# Graph size limits, checked before any other work on a saved or posted graph (400 past them).
# Loops nest at most 5 deep whatever the setting (item keys must fit their column).
KLYNTOS_MAX_BLOCKS = env_int("KLYNTOS_MAX_BLOCKS", 2000, 1, 100_000)
KLYNTOS_MAX_EDGES = env_int("KLYNTOS_MAX_EDGES", 10_000, 1, 1_000_000)
KLYNTOS_MAX_LOOP_DEPTH = env_int("KLYNTOS_MAX_LOOP_DEPTH", 5, 1, 5)
# Sticky notes on the canvas: how many one workflow holds, and the text of one.
KLYNTOS_MAX_NOTES = env_int("KLYNTOS_MAX_NOTES", 200, 1, 10_000)
KLYNTOS_MAX_NOTE_CHARS = env_int("KLYNTOS_MAX_NOTE_CHARS", 10_000, 1, 1_000_000)
# Schedule triggers: the shortest interval a cron expression may have (validation error
# below it; six-field expressions with seconds need it lowered), how often the scheduler
# looks for due schedules, and how many due schedules one look fires.
KLYNTOS_SCHEDULE_MIN_SECONDS = env_int(
    "KLYNTOS_SCHEDULE_MIN_SECONDS", 60, 1, 86_400, what="a whole number of seconds"
)
KLYNTOS_SCHEDULER_POLL_SECONDS = env_float("KLYNTOS_SCHEDULER_POLL_SECONDS", 1, 0.05, 3600)
KLYNTOS_SCHEDULER_BATCH = env_int("KLYNTOS_SCHEDULER_BATCH", 100, 1, 10_000)
# How long a stopping process (`make run` on SIGTERM or Ctrl-C, the scheduler command) lets
# the items in flight finish; what is left is resumed by the next start or another process.
KLYNTOS_DRAIN_SECONDS = env_float("KLYNTOS_DRAIN_SECONDS", 30, 0, 3600, zero="stop at once")
# A run's executor holds a lease on it, renewed as it stores rows (every tenth of it) and by
# a heartbeat every second while it stores nothing (engine/store.py CANCEL_CHECK_SECONDS):
# at least 3 s, so a live run's lease never runs out between two heartbeats. A run whose
# lease ran out (its process was killed) is resumed by the first process that looks, every
# POLL seconds.
KLYNTOS_RUN_LEASE_SECONDS = env_float("KLYNTOS_RUN_LEASE_SECONDS", 30, 3, 3600)
KLYNTOS_RUN_RESUME_POLL_SECONDS = env_float("KLYNTOS_RUN_RESUME_POLL_SECONDS", 5, 0.1, 3600)
# A worker hears of a new job through NOTIFY; one it missed (its LISTEN was not up yet, the
# connection dropped) it finds by looking every this many seconds.
KLYNTOS_WORKER_JOB_POLL_SECONDS = env_float("KLYNTOS_WORKER_JOB_POLL_SECONDS", 2, 0.05, 600)
# On workers, a top-level loop of more items than this is spread over the workers in chunks
# (jobs of their own) of at least this many items: about CHUNKS_PER_WORKER chunks for each
# live worker, of at most CHUNK_MAX items (or CHUNK_SIZE, if larger). The run's executor
# looks at its chunks every POLL seconds (live progress, chunks of dead workers deferred
# again).
KLYNTOS_LOOP_CHUNK_SIZE = env_int("KLYNTOS_LOOP_CHUNK_SIZE", 100, 1, 100_000)
KLYNTOS_LOOP_CHUNKS_PER_WORKER = env_int("KLYNTOS_LOOP_CHUNKS_PER_WORKER", 4, 1, 10_000)
# Below CHUNK_SIZE, CHUNK_SIZE is the size.
KLYNTOS_LOOP_CHUNK_MAX = env_int("KLYNTOS_LOOP_CHUNK_MAX", 2000, 1, 100_000)
KLYNTOS_CHUNK_POLL_SECONDS = env_float("KLYNTOS_CHUNK_POLL_SECONDS", 0.5, 0.05, 60)
# The largest value a block may produce, measured as JSON (shared parts counted each time):
# expressions stop as soon as one of their values passes it; every output is checked too.
KLYNTOS_MAX_OUTPUT_BYTES = env_int("KLYNTOS_MAX_OUTPUT_BYTES", 16 * 1024 * 1024, 1, GIB, what=BYTES)
# JMESPath (transforms, loop aggregations) evaluates on threads of its own, never on the
# event loop's default executor (database calls): this many per process, and one owner's
# runs hold at most KLYNTOS_EXPRESSION_OWNER_THREADS of them at once (default: half, at
# least 1); their other evaluations queue behind their own.
KLYNTOS_EXPRESSION_THREADS = env_int("KLYNTOS_EXPRESSION_THREADS", 4, 1, 256)
KLYNTOS_EXPRESSION_OWNER_THREADS = env_int(
    "KLYNTOS_EXPRESSION_OWNER_THREADS",
    max(1, KLYNTOS_EXPRESSION_THREADS // 2),
    1,
    KLYNTOS_EXPRESSION_THREADS,
    high_name="KLYNTOS_EXPRESSION_THREADS",
)
# Testing one block from the editor: the whole test (attempts and retries) stops after this
# many seconds, and the inputs it is given (values by name, the trigger input) are at most
# this many bytes of JSON (400 past it).
KLYNTOS_BLOCK_TEST_TIMEOUT = env_float("KLYNTOS_BLOCK_TEST_TIMEOUT", 120, 0.1, 3600)
KLYNTOS_BLOCK_TEST_MAX_INPUT_BYTES = env_int(
    "KLYNTOS_BLOCK_TEST_MAX_INPUT_BYTES", 1024 * 1024, 1, GIB, what=BYTES
)
# Pinned test data kept with a draft (each block's `pin`), as JSON, all pins together.
KLYNTOS_MAX_PIN_BYTES = env_int("KLYNTOS_MAX_PIN_BYTES", 2 * 1024 * 1024, 1, GIB, what=BYTES)
# The largest prompt (system + user, UTF-8) an Agent block sends: past it the step fails before
# the provider is called, naming the reference that made the prompt large and its size.
KLYNTOS_AGENT_MAX_PROMPT_BYTES = env_int(
    "KLYNTOS_AGENT_MAX_PROMPT_BYTES", 1_000_000, 1, GIB, what=BYTES
)
# The one retry policy for transient failures (429, 5xx, timeouts, connection errors): full
# jitter between 0 and min(MAX_DELAY, BASE_DELAY * 2^(attempt-1)) seconds, or the server's
# Retry-After up to RETRY_AFTER_MAX. A block's `retry` option may change the first three
# (its `retry.attempts` within the same 1 to 10).
KLYNTOS_RETRY_ATTEMPTS = env_int("KLYNTOS_RETRY_ATTEMPTS", 3, 1, 10)
KLYNTOS_RETRY_BASE_DELAY = env_float("KLYNTOS_RETRY_BASE_DELAY", 0.2, 0.01, 60)
KLYNTOS_RETRY_MAX_DELAY = env_float("KLYNTOS_RETRY_MAX_DELAY", 10, 0.01, 3600)
KLYNTOS_RETRY_AFTER_MAX = env_float("KLYNTOS_RETRY_AFTER_MAX", 60, 1, 3600)
# Provider governance, shared by every run in the process (engine/core/providers.py):
# "host=N" caps calls in flight to a host; "host=concurrency:N;rpm:N;tpm:N;start:F;floor:N"
# adds requests and tokens per minute and the AIMD start (a fraction of the cap) and floor;
# a "host/model" key governs one model of an LLM endpoint. Checked when the process starts.
KLYNTOS_PROVIDER_LIMITS = os.environ.get("KLYNTOS_PROVIDER_LIMITS", "")
# AIMD for every key with a cap: start at this fraction of it, never below the floor.
KLYNTOS_PROVIDER_AIMD_START = env_float(
    "KLYNTOS_PROVIDER_AIMD_START", 0.5, 0.01, 1, what="a fraction"
)
KLYNTOS_PROVIDER_AIMD_FLOOR = env_int("KLYNTOS_PROVIDER_AIMD_FLOOR", 1, 1, 10_000)
# After a 429 or a timeout, how long the limit stays under the one that failed.
KLYNTOS_PROVIDER_PROBE_SECONDS = env_float("KLYNTOS_PROVIDER_PROBE_SECONDS", 30, 0.1, 3600)
# What "per minute" means, in seconds, for rpm and tpm (shortened by tests and benchmarks).
KLYNTOS_PROVIDER_WINDOW_SECONDS = env_float("KLYNTOS_PROVIDER_WINDOW_SECONDS", 60, 0.1, 3600)
# Tokens an LLM answer is assumed to take before its endpoint has answered once (without
# the block's max_tokens); later estimates use the longest recent answer.
KLYNTOS_PROVIDER_COMPLETION_TOKENS = env_int(
    "KLYNTOS_PROVIDER_COMPLETION_TOKENS", 256, 1, 1_000_000
)
# Runs waiting for one provider key: a higher `priority` goes first, but a call that has
# waited this many seconds competes as an equal of the highest priority waiting, so no run is
# starved by others' priority; 0 makes priority strict (engine/core/providers.py).
KLYNTOS_PRIORITY_AGING_SECONDS = env_float(
    "KLYNTOS_PRIORITY_AGING_SECONDS", 60, 0, 86_400, zero="strict priority"
)
# A run new to a provider key (fewer calls let through there lately than this many times the
# key's concurrency limit) goes before the runs already using it; 0: no such burst.
KLYNTOS_PROVIDER_NEW_RUN_BURST = env_float(
    "KLYNTOS_PROVIDER_NEW_RUN_BURST", 1, 0, 100, what="a number", zero="no burst"
)
# The off-peak window a run started with `defer: "off_peak"` waits for: "HH:MM-HH:MM" local
# hours (past midnight allowed: "22:00-06:00") in an IANA time zone. Empty: no window, and a
# deferred start is refused. Checked when the process starts (engine/core/off_peak.py).
KLYNTOS_OFF_PEAK_HOURS = os.environ.get("KLYNTOS_OFF_PEAK_HOURS", "")
KLYNTOS_OFF_PEAK_TZ = os.environ.get("KLYNTOS_OFF_PEAK_TZ", "UTC")
# With workers, loop caps and provider concurrency caps hold across every worker through
# slot leases in PostgreSQL (engine/slots.py): a held slot's lease, renewed by its process
# every third of it (a killed worker's slots free when it runs out); the longest a holder
# waiting for a slot goes without looking again (NOTIFY wakes it sooner), at most the lease;
# the connections each worker uses for slots.
KLYNTOS_SLOT_LEASE_SECONDS = env_float("KLYNTOS_SLOT_LEASE_SECONDS", 30, 1, 3600)
KLYNTOS_SLOT_POLL_SECONDS = env_float(
    "KLYNTOS_SLOT_POLL_SECONDS",
    1,
    0.01,
    KLYNTOS_SLOT_LEASE_SECONDS,
    high_name="KLYNTOS_SLOT_LEASE_SECONDS",
)
# With workers: how often each worker reads the provider breakers the others opened or
# closed (engine/breaker_sharing.py), and writes its own.
KLYNTOS_BREAKER_SYNC_SECONDS = env_float("KLYNTOS_BREAKER_SYNC_SECONDS", 0.5, 0.05, 60)
KLYNTOS_SLOT_CONNECTIONS = env_int("KLYNTOS_SLOT_CONNECTIONS", 4, 1, 100)
# The breaker per provider key (engine/core/providers.py), "name:value;…" over the defaults:
# mode (auto | manual | off), window (last N counted calls), min_calls, failure_rate (opens
# at this share failed), cool_down and cool_down_max (seconds; doubled per trip), probes,
# give_up_after (seconds not closed before waiting calls fail; 0: never).
KLYNTOS_BREAKER = os.environ.get("KLYNTOS_BREAKER", "")
# How many in-scope reference entries one validate answer lists (the editor's picker).
KLYNTOS_MAX_SCOPE_ENTRIES = env_int("KLYNTOS_MAX_SCOPE_ENTRIES", 50_000, 1, 1_000_000)

# Prices per model, USD per 1M tokens, over the built-in OpenAI list (engine/core/prices.py):
# JSON, {"model": {"input": 0.15, "output": 0.6}}. A malformed table stops the process.
KLYNTOS_MODEL_PRICES = os.environ.get("KLYNTOS_MODEL_PRICES", "")

# The result cache (a block's `cache: {ttl}`, engine/result_cache.py): a block's ttl is held
# to at most this many seconds, and outputs larger than this many bytes (as JSON) are not kept.
KLYNTOS_RESULT_CACHE_MAX_TTL = env_int(
    "KLYNTOS_RESULT_CACHE_MAX_TTL", 2_592_000, 1, 31_536_000, what="a whole number of seconds"
)
KLYNTOS_RESULT_CACHE_MAX_BYTES = env_int(
    "KLYNTOS_RESULT_CACHE_MAX_BYTES", 1024 * 1024, 1, GIB, what=BYTES
)

# A dollar budget for every run whose workflow and start set none (empty: no budget).
# Reached, a run starts no more loop items; the items in flight finish (engine/core/loop.py).
KLYNTOS_RUN_BUDGET_USD = env_optional_float(
    "KLYNTOS_RUN_BUDGET_USD", 0, 1_000_000, what="a number of dollars", unset="no budget"
)

OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
SLACK_BOT_TOKEN = os.environ.get("SLACK_BOT_TOKEN", "")
SLACK_BASE_URL = os.environ.get("SLACK_BASE_URL", "https://slack.com/api/")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        # Django's own, for its runserver's request lines (the handler is declared again here).
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "filters": {
        "redact": {"()": "engine.log_redaction.RedactSecretsFilter"},
        # A webhook's token is its credential: a logged /hooks/<token> keeps 4 characters.
        # After "redact" on a handler: that one writes the message and exception text anew.
        "hook_tokens": {"()": "klyntos.log_filters.HookTokenFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact", "hook_tokens"],
        },
        "django.server": {
            "level": "INFO",
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact", "hook_tokens"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # The loggers that write request paths filter them themselves too, so that every
        # handler reading them (a test's capture, an error reporter) sees the token cut.
        "django.request": {"filters": ["hook_tokens"]},
        "django.server": {
            "handlers": ["django.server"],
            "level": "INFO",
            "propagate": False,
            "filters": ["hook_tokens"],
        },
        "django.channels.server": {"filters": ["hook_tokens"]},  # daphne's runserver
        "uvicorn.access": {"filters": ["hook_tokens"]},
        "uvicorn.error": {"filters": ["hook_tokens"]},
        "django.db.backends": {"level": "WARNING"},
        # Request lines carry full URLs (query strings included): not for INFO logs.
        "httpx": {"level": "WARNING"},
        # The job queue says it loaded its tasks at every start of every command.
        "procrastinate.blueprints": {"level": "WARNING"},
    },
}

# Static files are served from the source folders (no collectstatic step for `make run`).
WHITENOISE_USE_FINDERS = True
