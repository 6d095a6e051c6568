"""`/healthz` and `/readyz` (engine/health.py): what a load balancer asks, without a login."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from engine import health

pytestmark = pytest.mark.django_db(databases=["default", "data"])


def test_healthz_answers_without_a_login(client: Any) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_checks_both_databases_their_migrations_and_redis(
    client: Any, settings: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(health, "_migrated", False)
    settings.REDIS_URL = "redis://127.0.0.1:6379/3"
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "status": "ready",
        "checks": {"default": "ok", "data": "ok", "migrations": "ok", "redis": "ok"},
    }


def test_readyz_names_what_is_not_ready(client: Any, settings: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(health, "_migrated", False)
    [latest] = [n for n in MigrationLoader(connection).graph.leaf_nodes() if n[0] == "engine"]
    MigrationRecorder(connection).record_unapplied(*latest)  # rolled back after the test
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["migrations"].startswith("1 migration(s) not applied (default: engine.")
    assert checks["redis"] == "unreachable: ConnectionError"
    assert response.json()["status"] == "not ready"
