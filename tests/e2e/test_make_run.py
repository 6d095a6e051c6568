"""What `make run` promises on a bare machine: embedded defaults (SQLite, simulator), a local
login, and a printed curl line whose batch ends up as rows in the admin."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def local_app(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DATA_DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        KLYNTOS_SANDBOX="1",
        KLYNTOS_DATA_DIR=str(tmp_path / "data"),
        KLYNTOS_SIMULATOR_URL=f"http://127.0.0.1:{free_port()}",
        DJANGO_SETTINGS_MODULE="klyntos.settings",
        PYTHONUNBUFFERED="1",
    )
    addr = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_local", "--addr", addr],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if "Listening on TCP address" in line:
                break
        assert any("Listening on TCP address" in line for line in lines), "\n".join(lines)
        yield process, lines
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_printed_curl_line_produces_rows_visible_in_the_admin(
    local_app: tuple[subprocess.Popen[str], list[str]],
) -> None:
    _, lines = local_app
    output = "\n".join(lines)
    assert "SANDBOX MODE" in output
    password = re.search(r"user: admin\s+password: (\S+)", output).group(1)  # type: ignore[union-attr]
    curl = next(line.strip() for line in lines if line.strip().startswith("curl "))
    base = re.search(r"Klyntos on (http://[\d.:]+)/", output).group(1)  # type: ignore[union-attr]

    answer = subprocess.run(
        shlex.split(curl), capture_output=True, text=True, timeout=30, check=True
    )
    assert '"run_id"' in answer.stdout, answer.stdout + answer.stderr

    with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as client:
        login = client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
        client.post(
            "/admin/login/",
            data={
                "username": "admin",
                "password": password,
                "csrfmiddlewaretoken": token,
                "next": "/admin/",
            },
        )
        deadline = time.monotonic() + 60
        page = ""
        while time.monotonic() < deadline:
            page = client.get("/admin/leads/enrichedlead/").text
            if "20 enriched leads" in page:
                break
            time.sleep(0.5)
        assert "20 enriched leads" in page, page[-2000:]
        assert "Ada Lovelace" in page and "Acme Analytics" in page
