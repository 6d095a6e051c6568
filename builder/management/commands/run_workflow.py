"""python manage.py run_workflow <template-slug | workflow id | file.json> --input body.json

Runs a workflow as if body.json had been posted to its webhook. Progress goes to stderr (a bar
on a terminal); the last line of stdout is one JSON object with the outcome.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from builder import gallery, services
from builder.models import Workflow
from engine import leases, run_costs
from engine.core.events import Event
from engine.core.limits import (
    MAX_BUDGET_USD,
    MAX_RUN_PRIORITY,
    MAX_RUN_WEIGHT,
    MAX_SAMPLE_ITEMS,
    MIN_RUN_WEIGHT,
)
from engine.core.off_peak import DEFER_OFF_PEAK
from engine.models import RunStatus
from engine.runner import Claim, created_claimed, execute_run


class Command(BaseCommand):
    help = "Run a workflow from the command line, as if its webhook had received --input."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", help="template slug, workflow id, or a workflow JSON file")
        parser.add_argument(
            "--input", required=True, help="JSON file with the webhook body ('-' for stdin)"
        )
        parser.add_argument(
            "--sequential", action="store_true", help="run every loop one item at a time"
        )
        parser.add_argument(
            "--max-concurrent", type=int, default=None, help="override every loop's cap"
        )
        parser.add_argument(
            "--budget-usd",
            type=float,
            default=None,
            help="stop starting loop items once the run has spent this many dollars",
        )
        parser.add_argument(
            "--weight",
            type=float,
            default=None,
            help="the run's share of the providers it shares with other runs (default 1)",
        )
        parser.add_argument(
            "--priority",
            type=int,
            default=None,
            help="among runs waiting for a provider, higher goes first (default 0)",
        )
        parser.add_argument(
            "--defer",
            choices=[DEFER_OFF_PEAK],
            default=None,
            help="outside KLYNTOS_OFF_PEAK_HOURS, store the run deferred to the window and exit "
            "(the scheduler starts it then)",
        )
        parser.add_argument(
            "--estimate",
            type=int,
            default=None,
            metavar="N",
            help="run each top-level loop's first N items only and estimate the whole cost",
        )
        parser.add_argument("--user", default="admin", help="owner of the run (created if missing)")
        parser.add_argument(
            "--draft",
            action="store_true",
            help="run the saved draft (a test run) instead of the published version",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["max_concurrent"] is not None and options["max_concurrent"] < 1:
            raise CommandError("--max-concurrent must be at least 1")
        sample = options["estimate"]
        if sample is not None and not 1 <= sample <= MAX_SAMPLE_ITEMS:
            raise CommandError(f"--estimate must be between 1 and {MAX_SAMPLE_ITEMS}")
        budget = options["budget_usd"]
        if budget is not None and not 0 <= budget <= MAX_BUDGET_USD:
            raise CommandError(f"--budget-usd must be between 0 and {MAX_BUDGET_USD:g}")
        weight, priority = options["weight"], options["priority"]
        if weight is not None and not MIN_RUN_WEIGHT <= weight <= MAX_RUN_WEIGHT:
            raise CommandError(
                f"--weight must be between {MIN_RUN_WEIGHT:g} and {MAX_RUN_WEIGHT:g}"
            )
        if priority is not None and not -MAX_RUN_PRIORITY <= priority <= MAX_RUN_PRIORITY:
            raise CommandError(
                f"--priority must be between {-MAX_RUN_PRIORITY} and {MAX_RUN_PRIORITY}"
            )
        # What the process imported and set up is never garbage: frozen out of the collector's
        # passes before the run is created (a full one fell on the run's start: ~130 ms
        # scanning it to free 54 objects; one falling between the run's row and its start
        # still added ~50 ms, bench h). The run's end unfreezes it (engine/gc_freeze.py).
        gc.freeze()
        body = _read_input(options["input"])
        user = _user(options["user"])
        workflow = _workflow(user, options["target"])
        run_options = {
            "sequential": options["sequential"],
            "max_concurrent": options["max_concurrent"],
            "budget_usd": budget,
            "sample_items": sample,
            "weight": weight,
            "priority": priority,
            "defer": options["defer"],
        }
        try:
            run, _ = services.run_create(
                workflow=workflow,
                input=body,
                trigger="cli",
                options={k: v for k, v in run_options.items() if v is not None and v is not False},
                draft=options["draft"],
                announce=False,  # below, while the run starts
                lease_owner=leases.new_owner(),  # this process executes it
            )
        except services.NotPublished as exc:
            raise CommandError(f"{exc.errors[0].message} (or pass --draft)") from None
        except services.GraphInvalid as exc:
            raise CommandError(
                "the workflow is not valid:\n" + "\n".join(f"  - {e}" for e in exc.errors)
            ) from None
        except (services.RateLimited, services.CannotDefer) as exc:
            raise CommandError(str(exc)) from None
        except services.BodyMismatch as exc:
            raise CommandError(
                f"--input {options['input']} does not match the webhook's body schema:\n"
                + "\n".join(f"  - {problem}" for problem in exc.problems)
            ) from None
        if run.status == RunStatus.DEFERRED:  # the scheduler starts it when the window opens
            asyncio.run(services.announce_run(run))
            when = run.deferred_until.isoformat() if run.deferred_until else ""
            self.stderr.write(f"deferred until {when} (the off-peak window)")
            self.stdout.write(
                json.dumps({"run_id": str(run.pk), "status": run.status, "deferred_until": when})
            )
            return
        progress = Progress(sys.stderr)
        started = time.monotonic()
        claim = created_claimed(run)
        with asyncio.Runner() as runner:
            runner.run(_execute(run, claim, progress.update))
            # The run's wall time: until its end is stored, not until its cost line is summed
            # or the event loop is torn down (its worker threads joined: 2-10 ms here).
            wall = time.monotonic() - started
        progress.close()
        run.refresh_from_db()
        costs = _cost_summary(run)
        summary = {
            "run_id": str(run.pk),
            "status": run.status,
            "total": run.total,
            "succeeded": run.succeeded,
            "failed": run.failed,
            "wall_seconds": round(wall, 3),
            "summary": costs,
        }
        if run.error:
            self.stderr.write(f"error: {run.error}")
        self.stderr.write(cost_line(costs))
        if "estimate" in costs:
            found = costs["estimate"]
            self.stderr.write(
                f"estimate for every item: ${found['estimated_usd']:.4f} "
                f"± ${found['error_usd']:.4f} (from {found['sample_items']} items per loop)"
            )
        self.stdout.write(json.dumps(summary))


async def _execute(run: Any, claim: Claim, on_event: Callable[[Event], None]) -> None:
    """The run, announced to open editors while it starts rather than before (the announce
    is a round trip of the channel layer)."""
    announcing = asyncio.ensure_future(services.announce_run(run))
    try:
        await execute_run(run.pk, on_event=on_event, claim=claim)
    finally:
        await announcing


def _cost_summary(run: Any) -> dict[str, Any]:
    """The run's own cost line (engine/run_costs.py), as the REST API gives it."""
    found = run_costs.summary(run)
    keys = ("wall_seconds", "sequential_seconds", "speedup", "tokens", "llm_calls", "cost_usd")
    extra = ("estimate",) if "estimate" in found else ()
    return {key: found[key] for key in (*keys, "unpriced_models", *extra)}


def cost_line(found: dict[str, Any]) -> str:
    """'wall 2.31 s · sequential 24.1 s · 10.4× faster · 45,120 tokens · $0.0123'."""
    parts = [f"wall {found['wall_seconds'] or 0:.2f} s"]
    parts.append(f"sequential {found['sequential_seconds']:.2f} s")
    if found["speedup"] is not None:
        parts.append(f"{found['speedup']:.1f}× faster")
    parts.append(f"{found['tokens']['total']:,} tokens")
    if found["cost_usd"] is not None:
        parts.append(f"${found['cost_usd']:.4f}")
    if found["unpriced_models"]:
        parts.append("no price for " + ", ".join(found["unpriced_models"]))
    return " · ".join(parts)


def _read_input(path: str) -> Any:
    try:
        # JSON is UTF-8 (RFC 8259), whatever the locale says; a leading BOM is ignored.
        raw = _stdin_bytes() if path == "-" else Path(path).read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise CommandError(f"cannot read --input {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"--input {path} is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"--input {path} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _stdin_bytes() -> bytes:
    stream = getattr(sys.stdin, "buffer", None)  # absent when stdin was swapped for a StringIO
    return (
        stream.read() if stream is not None else sys.stdin.read().encode("utf-8", "surrogatepass")
    )


def _user(username: str) -> Any:
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username)
    return user


def _workflow(user: Any, target: str) -> Workflow:
    if target.isdigit():
        workflow = Workflow.objects.filter(owner=user, pk=int(target)).first()
        if workflow is None:
            raise CommandError(f"{user} has no workflow {target}")
        return workflow
    path = Path(target)
    if path.suffix == ".json":
        if not path.exists():
            raise CommandError(f"no such file: {target}")
        try:
            data = json.loads(path.read_bytes().decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise CommandError(f"{target} is not UTF-8 (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise CommandError(f"{target} is not JSON: {exc.msg}") from None
        graph = data.get("graph", data) if isinstance(data, dict) else data
        name = data.get("name") if isinstance(data, dict) and data.get("name") else path.stem
        try:
            return services.workflow_create(owner=user, name=str(name), graph=graph)
        except services.GraphInvalid as exc:
            raise CommandError(str(exc)) from None
    if target not in gallery.templates():
        known = ", ".join(sorted(gallery.templates()))
        raise CommandError(
            f"'{target}' is not a workflow id, a .json file, or a template ({known})"
        )
    existing = (
        Workflow.objects.filter(owner=user, template_slug=target).order_by("created_at").first()
    )
    if existing is not None:
        gallery.ensure_sandbox_secrets(user, gallery.template_get(target))
        return existing
    return gallery.template_instantiate(owner=user, slug=target)


class Progress:
    """Counts items from engine events; draws a bar when stderr is a terminal."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.counts = {"total": 0, "succeeded": 0, "failed": 0, "running": 0}
        self.last_draw = 0.0

    def update(self, event: Event) -> None:
        if event.type != "progress" or event.data.get("item"):
            return
        self.counts = {k: event.data[k] for k in self.counts}
        now = time.monotonic()
        if self.tty and now - self.last_draw > 0.1:
            self.last_draw = now
            self.draw()

    def draw(self) -> None:
        c = self.counts
        done = c["succeeded"] + c["failed"]
        width = 30
        filled = int(width * done / c["total"]) if c["total"] else width
        bar = "█" * filled + "·" * (width - filled)
        self.stream.write(
            f"\r{bar} {done}/{c['total']}  ok {c['succeeded']}  failed {c['failed']}  running {c['running']} "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.draw()
            self.stream.write("\n")
