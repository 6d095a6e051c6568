"""Liveness and readiness for a load balancer or an orchestrator (no login: they say
nothing about anyone's data).

- `/healthz`: the process answers (200).
- `/readyz`: it can serve: both databases answer and have every migration applied, and
  Redis answers when REDIS_URL is set (live progress goes through it). 503 naming what
  failed otherwise. Migrations are looked at until they are found applied, then no more
  (they are not un-applied under a running process).
"""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connections
from django.http import HttpRequest, JsonResponse

from engine.startup_checks import DATABASES, NotReady, ensure_ready

_migrated = False


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    for alias in DATABASES:
        checks[alias] = _database(alias)
    if all(value == "ok" for value in checks.values()):
        checks["migrations"] = _migrations()
    if settings.REDIS_URL:
        checks["redis"] = _redis()
    ready = all(value == "ok" for value in checks.values())
    status = 200 if ready else 503
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status=status
    )


def _database(alias: str) -> str:
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


def _migrations() -> str:
    global _migrated  # noqa: PLW0603 -- a process-wide fact, learned once
    if _migrated:
        return "ok"
    try:
        ensure_ready()
    except NotReady as exc:
        return str(exc)
    _migrated = True
    return "ok"


def _redis() -> str:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"unreachable: {type(exc).__name__}"
    finally:
        client.close()
    return "ok"
