"""`manage.py serve [--addr 0.0.0.0:8000]`: the web side in production.

Unlike `run_local` (`make run`), it changes nothing: no migrations (run
`ensure_databases` once, before any process starts), no local login, no template, no
simulator, and it prints no webhook URL (a token is a credential). It refuses to start while
a database does not answer or a migration is not applied, so any number of web processes
can start at once behind a load balancer."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from builder.serving import serve
from engine.startup_checks import NotReady, ensure_ready


class Command(BaseCommand):
    help = "Serve Klyntos in production (no migrations, no local set-up)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="0.0.0.0:8000", help="host:port to listen on")  # noqa: S104 -- behind a load balancer

    def handle(self, *args: Any, addr: str, **options: Any) -> None:
        host, colon, port = addr.rpartition(":")
        if not (colon and host and port.isdigit() and 1 <= int(port) <= 65535):
            raise CommandError(
                f"--addr must be host:port with a port from 1 to 65535, got {addr!r}"
            )
        try:
            ensure_ready()
        except NotReady as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Klyntos serving on http://{addr}/ (Ctrl-C or SIGTERM stops)")
        self.stdout.flush()
        serve(addr)
