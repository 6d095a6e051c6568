"""`manage.py serve`: the production web command changes nothing (no migrations, no login,
no template, no webhook token printed) and, like the worker, refuses to start while a
database does not answer or a migration is not applied (engine/startup_checks.py)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from tests.e2e.conftest import ROOT, free_port


@pytest.mark.django_db(databases=["default", "data"])
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_migration_not_applied_stops_the_web_side_and_the_worker_before_they_start(
    command: str,
) -> None:
    [latest] = [n for n in MigrationLoader(connection).graph.leaf_nodes() if n[0] == "engine"]
    MigrationRecorder(connection).record_unapplied(*latest)  # rolled back after the test
    with pytest.raises(CommandError) as refused:
        call_command(command)
    assert str(refused.value) == (
        f"1 migration(s) not applied (default: engine.{latest[1]}): run "
        "`python manage.py ensure_databases` first"
    )


def manage(*args: str, data_dir: Path, **env: str) -> subprocess.Popen[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DATA_DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    environment.update(
        KLYNTOS_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="klyntos.settings",
        PYTHONUNBUFFERED="1",
        **env,
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_an_unreachable_database_is_said_at_start(tmp_path: Path) -> None:
    process = manage(
        "serve",
        data_dir=tmp_path,
        DATABASE_URL="postgres://root@127.0.0.1:1/nowhere",
        DATA_DATABASE_URL="postgres://root@127.0.0.1:1/nowhere_data",
    )
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1, output
    assert "cannot reach the database:" in output
    assert "check DATABASE_URL and DATA_DATABASE_URL" in output
    assert "Traceback" not in output


def test_serve_on_ready_databases_serves_and_creates_nothing(tmp_path: Path) -> None:
    ready = manage("ensure_databases", data_dir=tmp_path)
    output, _ = ready.communicate(timeout=180)
    assert ready.returncode == 0, output
    addr = f"127.0.0.1:{free_port()}"
    process = manage("serve", "--addr", addr, data_dir=tmp_path)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "Listening on TCP address" not in "".join(lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        assert "Listening on TCP address" in "".join(lines), "".join(lines)
        status = fetch(f"http://{addr}/api/workflows/")
        assert status in (401, 403)
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    # Nothing a newcomer's `make run` prepares: no login, no template, no token printed.
    assert "password" not in output and "/hooks/" not in output
    database = next(tmp_path.glob("*.sqlite3"))
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM auth_user").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM builder_workflow").fetchone() == (0,)


def fetch(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 -- local
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("addr", ["not an address", "127.0.0.1:99999", ":8000", "127.0.0.1:"])
def test_a_bad_address_is_refused_before_anything_starts(addr: str) -> None:
    with pytest.raises(CommandError) as refused:
        call_command("serve", addr=addr)
    assert str(refused.value) == (
        f"--addr must be host:port with a port from 1 to 65535, got {addr!r}"
    )
