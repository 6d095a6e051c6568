"""Who executes a run: a lease on the Run row, renewed while the run goes on.

Every execution claims the run first (one UPDATE that only succeeds when nobody else holds a
live lease), the run's store renews it with a write every tenth of the lease (engine/store.py),
and an execution that stops early releases it. A run whose lease ran out — its process was
killed, its machine lost — is found by `resumable()` and executed again from its stored rows
by whoever finds it (`make run` at start and every few seconds after, any worker): it is never
marked failed for having been interrupted.

An owner is `host:pid:token`, one token per execution, so two executions in one process
never share a lease. A lease held by a process of this host that no longer exists has run
out whatever its time says (`make run` killed with -9 and started again resumes at once).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from engine.models import FINAL_STATUSES, Run, RunStatus
from engine.row_updates import RowUpdate

HOST = socket.gethostname()[:80]
RENEWALS_PER_LEASE = 10


def new_owner() -> str:
    return f"{HOST}:{os.getpid()}:{secrets.token_hex(6)}"


def lease_seconds() -> float:
    return float(settings.KLYNTOS_RUN_LEASE_SECONDS)


def renew_seconds() -> float:
    """How often a run's writes renew its lease: a tenth of it, so a live run's lease has
    never less than nine tenths left."""
    return lease_seconds() / RENEWALS_PER_LEASE


def expiry() -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=lease_seconds())


def _unfinished() -> Any:
    """Runs a process may execute: not ended, and not deferred to the off-peak window (the
    scheduler queues those when it opens: nothing claims or resumes them before)."""
    return Run.objects.exclude(status__in=[*FINAL_STATUSES, RunStatus.DEFERRED])


def claim(run_id: Any, owner: str) -> bool:
    """Take the run if nobody holds a live lease on it (the first claim, or a resume). One
    statement when it is free, as a new run is: the holder is only looked at when it is not.
    Taking it again with the same owner succeeds (a retried statement whose answer was lost)."""
    free = Q(lease_owner="") | Q(lease_owner=owner) | Q(lease_expires__lt=timezone.now())
    if _take(run_id, owner, free):
        return True
    dead = dead_owners(run_id)
    return bool(dead) and _take(run_id, owner, Q(lease_owner__in=dead))


def _take(run_id: Any, owner: str, free: Q) -> bool:
    return bool(
        _unfinished()
        .filter(free, pk=run_id)
        .update(lease_owner=owner, lease_expires=expiry(), status=RunStatus.RUNNING)
    )


def release(run_id: Any, owner: str) -> None:
    """Give the run back unfinished (a graceful stop): the next finder resumes it at once."""
    rows, values = release_update(run_id, owner)
    rows.update(values)


def release_update(run_id: Any, owner: str) -> tuple[RowUpdate, dict[str, Any]]:
    """`release` as the rows and the values it sets (a store sends it with its last rows)."""
    return RowUpdate(Run.objects.filter(pk=run_id, lease_owner=owner)), {
        "lease_owner": "",
        "lease_expires": timezone.now(),
        "running": 0,
    }


def held(run_id: Any, owner: str) -> Any:
    """The run, while `owner` still holds it and it has not ended."""
    return _unfinished().filter(pk=run_id, lease_owner=owner)


def resumable(limit: int = 100, *, exclude: set[str] | frozenset[str] = frozenset()) -> list[Any]:
    """Unfinished runs nobody executes: their lease ran out, their process is gone, or they
    were never claimed by a process that stopped before starting them (queued for longer
    than a lease, with no job waiting for a worker)."""
    now = timezone.now()
    stale_queue = now - dt.timedelta(seconds=lease_seconds())
    candidates = (
        _unfinished()
        .filter(
            Q(lease_expires__lt=now)
            | Q(lease_owner="", created_at__lt=stale_queue)
            | Q(lease_owner__startswith=f"{HOST}:")
        )
        .order_by("created_at")
        .values_list("pk", "lease_owner", "lease_expires")[: limit * 4]
    )
    found, never_claimed = [], []
    for pk, owner, expires in candidates:
        if str(pk) in exclude:
            continue
        gone = bool(owner) and _process_gone(owner)
        if gone or not owner or (expires is not None and expires < now):
            found.append(pk)
            if not owner and expires is None:
                never_claimed.append(pk)
        if len(found) >= limit:
            break
    waiting = _waiting_for_a_worker(never_claimed) if never_claimed else set()
    return [pk for pk in found if str(pk) not in waiting]


def _waiting_for_a_worker(run_ids: list[Any]) -> set[str]:
    """Never-claimed runs whose job still waits in the queue or is being taken
    (KLYNTOS_EXECUTOR=workers): not interrupted, only waiting their turn. Resuming them here
    would run them past every worker's --concurrency (a backlog queued longer than a lease
    went to the look-outs all at once); a worker that died holding the job before claiming
    the run has it retried as a stalled job. A run claimed once is resumed by its lease."""
    if settings.KLYNTOS_EXECUTOR != "workers":
        return set()
    from procrastinate.contrib.django.models import ProcrastinateJob

    from engine.jobs import RUN_TASK

    jobs: Any = ProcrastinateJob._default_manager  # `objects` is a manager mypy cannot type
    return set(
        jobs.filter(
            task_name=RUN_TASK,
            status__in=["todo", "doing"],
            args__run_id__in=[str(pk) for pk in run_ids],
        ).values_list("args__run_id", flat=True)
    )


def dead_owners(run_id: Any) -> list[str]:
    owner = Run.objects.filter(pk=run_id).values_list("lease_owner", flat=True).first()
    return [owner] if owner and _process_gone(owner) else []


def _process_gone(owner: str) -> bool:
    """True for an owner of this host whose process no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # this process: its executions renew their own leases
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
