"""Finding 3 on SQLite (the `make run` default): each owner's database blocks open that
owner's own file, under an authorizer that refuses ATTACH and every kind of DDL."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from leads import owner_data
from tests.e2e.conftest import ROOT, LocalApp, start_local_app, stop_local_app
from tests.engine.conftest import simulator  # noqa: F401 - fixture
from tests.hostile.owner_kit import admin_list, leads, make_owner, run_sql, run_template, table_of
from tests.leads.rows import owner_rows

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


@pytest.fixture
def sqlite_owners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> owner_data.SqliteOwners:
    """Owner data on SQLite files, as `make run` has it (the suite's data database is
    PostgreSQL; `tests/e2e` covers the store `make run` itself selects)."""
    owners = owner_data.SqliteOwners(tmp_path / "owners")
    monkeypatch.setattr(owner_data, "store", lambda: owners)
    return owners


@pytest.mark.usefixtures("simulator")
def test_another_owners_database_block_sees_and_changes_none_of_their_rows(
    sqlite_owners: owner_data.SqliteOwners,
    django_user_model: Any,
) -> None:
    alice = make_owner(django_user_model, "alice")
    bob = make_owner(django_user_model, "bob")
    assert run_template(alice, {"leads": leads(5, "A")}).status == "succeeded"
    before = owner_rows(alice)
    assert len(before) == 5
    listed = table_of(admin_list(alice))
    assert "A Person 0" in listed

    seen = run_sql(bob, "SELECT * FROM enriched_leads")
    assert seen.status == "succeeded" and seen.outputs["q"]["rows"] == []
    for sql in ["UPDATE enriched_leads SET name = 'pwned'", "DELETE FROM enriched_leads"]:
        run = run_sql(bob, sql)
        assert run.status == "succeeded" and run.outputs["q"]["rowcount"] == 0, sql
    for sql in [
        f"ATTACH DATABASE '{sqlite_owners.path(alice.pk)}' AS a",
        "CREATE TEMP TABLE enriched_leads (lead_id text)",
        "CREATE TABLE stolen (x)",
        f"VACUUM INTO '{sqlite_owners.directory}/copy.sqlite3'",
    ]:
        run = run_sql(bob, sql)
        assert run.status == "failed" and "authoriz" in run.error, (sql, run.error)

    assert sqlite_owners.owner_ids() == sorted([alice.pk, bob.pk])
    assert owner_rows(alice) == before
    assert table_of(admin_list(alice)) == listed
    assert "A Person" not in table_of(admin_list(bob))
    again = run_template(alice, {"leads": leads(5, "A")})
    assert again.status == "succeeded" and len(owner_rows(alice)) == 5


@pytest.fixture
def served(tmp_path: Path) -> Iterator[LocalApp]:
    app = start_local_app(tmp_path / "data")
    yield app
    stop_local_app(app)


def manage_shell(data_dir: Path, code: str) -> str:
    """Django's shell against the served app's own files (how an operator adds a user)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DATA_DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(KLYNTOS_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="klyntos.settings")
    done = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def admin_page(app: LocalApp) -> str:
    with httpx.Client(base_url=app.base_url, follow_redirects=True, timeout=10) as client:
        login = client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        assert token
        client.post(
            "/admin/login/",
            data={
                "username": "admin",
                "password": app.password,
                "csrfmiddlewaretoken": token.group(1),
                "next": "/admin/",
            },
        )
        return client.get("/admin/leads/enrichedlead/").text


def test_through_make_run_another_user_sees_and_changes_none_of_the_local_users_rows(
    served: LocalApp, tmp_path: Path
) -> None:
    curl = next(line.strip() for line in served.lines if line.strip().startswith("curl "))
    answer = subprocess.run(  # noqa: S603 - the line `make run` printed
        shlex.split(curl), capture_output=True, text=True, timeout=30, check=True
    )
    assert '"run_id"' in answer.stdout, answer.stdout + answer.stderr
    deadline = time.monotonic() + 60
    page = ""
    while "20 enriched leads" not in page and time.monotonic() < deadline:
        time.sleep(0.5)
        page = admin_page(served)
    assert "20 enriched leads" in page and "Ada Lovelace" in page
    listed = table_of(page)

    data_dir = tmp_path / "data"
    key = manage_shell(
        data_dir,
        "from django.contrib.auth.models import User; "
        "from rest_framework.authtoken.models import Token; "
        "u = User.objects.create_user('bob', password='pw-bob-12345'); "
        "print(Token.objects.create(user=u).key)",
    )
    headers = {"Authorization": f"Token {key}"}
    with httpx.Client(base_url=served.base_url, headers=headers, timeout=10) as bob:

        def run(sql: str) -> dict[str, Any]:
            graph = {
                "blocks": [
                    {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
                    {"id": "q", "type": "database", "name": "q", "config": {"sql": sql}},
                ],
                "edges": [{"source": "webhook", "target": "q"}],
            }
            created = bob.post("/api/workflows/", json={"name": "probe", "graph": graph})
            assert created.status_code == 201, created.text
            started = bob.post(f"/api/workflows/{created.json()['id']}/runs/", json={"input": {}})
            assert started.status_code == 201, started.text
            run_id = started.json()["id"]
            until = time.monotonic() + 30
            while time.monotonic() < until:
                state = bob.get(f"/api/runs/{run_id}/").json()
                if state["status"] not in {"queued", "running"}:
                    return dict(state)
                time.sleep(0.2)
            raise AssertionError(f"run {run_id} did not end")

        seen = run("SELECT * FROM enriched_leads")
        assert seen["status"] == "succeeded" and seen["outputs"]["q"]["rows"] == [], seen
        changed = run("UPDATE enriched_leads SET name = 'pwned'")
        assert changed["status"] == "succeeded" and changed["outputs"]["q"]["rowcount"] == 0
        admin_file = data_dir / "owners" / "owner-1.sqlite3"
        assert admin_file.exists()
        for sql in [
            f"ATTACH DATABASE '{admin_file}' AS a",
            "CREATE TEMP TABLE enriched_leads (lead_id text)",
        ]:
            refused = run(sql)
            assert refused["status"] == "failed" and "authoriz" in refused["error"], refused

    assert table_of(admin_page(served)) == listed
