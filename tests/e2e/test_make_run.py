"""What `make run` promises on a bare machine: embedded defaults (SQLite, simulator), a local
login, and a printed curl line whose batch ends up as rows in the admin."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import LocalApp, start_local_app, stop_local_app


@pytest.fixture
def local_app(tmp_path: Path) -> Iterator[LocalApp]:
    app = start_local_app(tmp_path / "data")
    yield app
    stop_local_app(app)


def test_printed_curl_line_produces_rows_visible_in_the_admin(local_app: LocalApp) -> None:
    output = "\n".join(local_app.lines)
    assert "SANDBOX MODE" in output
    curl = next(line.strip() for line in local_app.lines if line.strip().startswith("curl "))

    answer = subprocess.run(
        shlex.split(curl), capture_output=True, text=True, timeout=30, check=True
    )
    assert '"run_id"' in answer.stdout, answer.stdout + answer.stderr

    with httpx.Client(base_url=local_app.base_url, follow_redirects=True, timeout=10) as client:
        login = client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
        client.post(
            "/admin/login/",
            data={
                "username": "admin",
                "password": local_app.password,
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
