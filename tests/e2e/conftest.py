"""Browser tests: the real app (`run_local`: daphne, SQLite, the simulator) in a subprocess,
driven in Debian's Chromium through Playwright's Python client. Marked `browser`: they run
in their own pytest invocation (Playwright's sync API leaves an event loop behind)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
MAX_KEPT_LINES = 10_000  # of the app's output, for the tests to read
# A graceful stop lets items in flight finish (KLYNTOS_DRAIN_SECONDS, 30 by default), then
# waits up to 10 s for the runs to store what they did.
STOP_SECONDS = 45
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalApp:
    process: subprocess.Popen[str]
    lines: list[str]
    base_url: str
    password: str
    simulator_url: str
    simulator_token: str


def _drain(stream: Any, lines: list[str]) -> None:
    for line in stream:
        if len(lines) < MAX_KEPT_LINES:
            lines.append(line.rstrip())


def start_local_app(
    data_dir: Path, env: dict[str, str] | None = None, *, restart: bool = False
) -> LocalApp:
    """`make run` in `data_dir`; `restart` for a second start there (no new password)."""
    extra = env or {}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DATA_DATABASE_URL", "REDIS_URL"}
    }
    simulator_url = f"http://127.0.0.1:{free_port()}"
    env.update(
        KLYNTOS_SANDBOX="1",
        KLYNTOS_DATA_DIR=str(data_dir),
        KLYNTOS_SIMULATOR_URL=simulator_url,
        DJANGO_SETTINGS_MODULE="klyntos.settings",
        PYTHONUNBUFFERED="1",
        # A stop that hangs is aborted with every thread's stack printed (`stop_local_app`).
        PYTHONFAULTHANDLER="1",
        KLYNTOS_SIMULATOR_TOKEN="browser-tests-control-token",
    )
    env.update(extra)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
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
    deadline = time.monotonic() + 90
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "Listening on TCP address" in line:
            break
    output = "\n".join(lines)
    if "Listening on TCP address" not in output:
        process.terminate()
        raise AssertionError(f"the app did not start:\n{output}")
    password = re.search(r"user: admin\s+password: (\S+)", output)
    if not (password or restart):
        process.terminate()  # never leave a server behind a failed start
        raise AssertionError(f"no login was printed:\n{output}")
    # Keep reading: the server logs every request, and once the pipe is full its next log
    # write blocks the server's event loop (the whole app freezes).
    threading.Thread(target=_drain, args=(process.stdout, lines), daemon=True).start()
    return LocalApp(
        process,
        lines,
        f"http://{addr}",
        password.group(1) if password else "",
        simulator_url,
        env["KLYNTOS_SIMULATOR_TOKEN"],
    )


def stop_local_app(app: LocalApp) -> None:
    """SIGTERM, as Ctrl-C or a container stop would; a server that has not exited after the
    longest graceful stop fails the test with its threads' stacks (SIGABRT makes Python's
    faulthandler print them) and the end of its output."""
    app.process.terminate()
    try:
        app.process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        app.process.send_signal(signal.SIGABRT)
        try:
            app.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.process.kill()
            app.process.wait(timeout=10)
        time.sleep(0.5)  # the reading thread takes the last lines
        tail = "\n".join(line for line in app.lines[-300:] if "HTTP " not in line)
        raise AssertionError(
            f"the app did not stop within {STOP_SECONDS} s of SIGTERM:\n{tail}"
        ) from None


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApp]:
    local = start_local_app(tmp_path_factory.mktemp("app"))
    yield local
    stop_local_app(local)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install -y chromium)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(app: LocalApp, browser: Any) -> Iterator[Any]:
    context = browser.new_context(base_url=app.base_url, viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto("/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", app.password)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))
    yield page
    context.close()


def sample_input(page: Any) -> Any:
    """The Run panel's input once the template's sample is in it: it arrives with the
    template list, after the editor opens (read at once, it was `{}` on a busy machine)."""
    page.wait_for_function(
        """() => {
          const box = document.querySelector('[data-testid="run-input"]');
          try { return Object.keys(JSON.parse(box?.value ?? "")).length > 0; }
          catch { return false; }
        }"""
    )
    return json.loads(page.locator('[data-testid="run-input"]').input_value())


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def select_block(page: Any, name: str) -> Any:
    """Click a block until the settings panel shows it (a click can land while the canvas is
    still fitting the view on a loaded machine), and return the panel."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    panel = page.locator(f'[data-testid="config-panel"][data-selected-block="{name}"]')
    for _ in range(5):
        page.locator(f'[data-block-name="{name}"]').first.click()
        try:
            panel.wait_for(timeout=4_000)
            return panel
        except PlaywrightTimeout:
            continue
    panel.wait_for()
    return panel


def save_draft(page: Any, version: int | None = None) -> str:
    """Press Save and return the status once the save has ended ("Saved vN …" or "Not
    saved: …"). With `version`, the save must have made that version: a failure says what
    the editor said instead and what the server holds, rather than timing out on a
    selector."""
    page.wait_for_selector('[data-testid="save-button"]:not([disabled])')
    page.click('[data-testid="save-button"]')
    page.wait_for_function(
        """() => {
            const text = document.querySelector('[data-testid="save-status"]')?.innerText ?? "";
            return text.startsWith("Saved v") || text.startsWith("Not saved");
        }""",
        timeout=30_000,
    )
    text = str(page.locator('[data-testid="save-status"]').inner_text())
    if version is not None:
        assert text.startswith(f"Saved v{version} "), (
            f"expected Saved v{version}, the editor says {text!r}; "
            f"unsaved changes shown: {page.locator('[data-testid=dirty-indicator]').count() > 0}"
        )
    else:
        assert text.startswith("Saved v"), text
    return text


def fill_field(panel: Any, field: str, text: str) -> None:
    """Type into a block's field and wait until the editor holds it as an unsaved change."""
    control = panel.locator(f'[data-field="{field}"]')
    control.fill(text)
    page = panel.page
    page.wait_for_function(
        """([field, text]) => {
            const el = document.querySelector(`[data-testid="config-panel"] [data-field="${field}"]`);
            return el?.value === text && document.querySelector('[data-testid="dirty-indicator"]');
        }""",
        arg=[field, text],
    )
