"""`make run`: migrate the embedded databases, prepare the local login and the template,
start the provider simulator (sandbox mode), print a ready curl line, and serve."""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.urls import reverse

from builder.bootstrap import LEAD_TEMPLATE, ensure_local_setup
from builder.gallery import GALLERY_DIR
from builder.serving import serve

log = logging.getLogger("klyntos")


class Command(BaseCommand):
    help = "Start Klyntos locally with embedded defaults."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--no-serve", action="store_true", help="prepare everything, then exit")

    def handle(self, *args: Any, addr: str, no_serve: bool, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("migrate", database="data", interactive=False, verbosity=0)
        setup = ensure_local_setup()
        simulator = self.start_simulator() if settings.KLYNTOS_SANDBOX else None
        base = f"http://{addr}"
        sample = GALLERY_DIR / f"{LEAD_TEMPLATE}.sample.json"
        hook = base + reverse("webhook", args=[setup.workflow.webhook.token])
        out = self.stdout
        out.write(f"Klyntos on {base}/  (admin: {base}/admin/, API: {base}/api/docs/)")
        if setup.password:
            out.write(
                f"Local login created — user: {setup.username}  password: {setup.password}  (shown once)"
            )
        else:
            out.write(
                f"Log in as '{setup.username}' (reset with: python manage.py changepassword {setup.username})"
            )
        out.write(f"Webhook of '{setup.workflow.name}': {hook}")
        out.write("Post the sample batch:")
        out.write(
            f"  curl -sS -X POST -H 'Content-Type: application/json' --data @{shlex.quote(str(sample))} {hook}"
        )
        out.write(f"Enriched rows appear at {base}/admin/leads/enrichedlead/")
        if no_serve:
            if simulator:
                simulator.terminate()
            return
        try:
            serve(addr)
        finally:
            if simulator:
                simulator.terminate()

    def start_simulator(self) -> subprocess.Popen[bytes] | None:
        url = settings.KLYNTOS_SIMULATOR_URL
        log.warning(
            "SANDBOX MODE: providers (OpenAI, Clearbit, LinkedIn, Slack) are served by the built-in simulator at %s",
            url,
        )
        if _answers(url):
            return None
        port = url.rsplit(":", 1)[-1].strip("/")
        # Control calls need a token, so workflows reaching the simulator cannot reconfigure it.
        env = {**os.environ}
        env.setdefault("KLYNTOS_SIMULATOR_TOKEN", secrets.token_urlsafe(16))
        process = subprocess.Popen(  # noqa: S603 -- a fixed argv of our own module
            [
                *(sys.executable, "-m", "simulator", "--port", port, "--jitter-ms", "150,450"),
                *("--exit-with", str(os.getpid())),  # a kill -9 of this process stops it too
            ],
            cwd=Path(settings.BASE_DIR),
            env=env,
        )
        for _ in range(100):
            if _answers(url):
                return process
            if process.poll() is not None:
                break
            import time

            time.sleep(0.1)
        raise SystemExit(f"the provider simulator did not start on {url}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/_sim/health", timeout=0.5) as response:  # noqa: S310 -- our own http:// simulator URL
            return bool(response.status == 200)
    except OSError:
        return False
