"""Run state as stored rows: a Run, one ItemRun per loop item, one StepRun per block run."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    # Waiting for the off-peak window (`Run.deferred_until`); the scheduler queues it then.
    DEFERRED = "deferred"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIALLY_SUCCEEDED = "partially_succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = {
    RunStatus.SUCCEEDED,
    RunStatus.PARTIALLY_SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
}


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs"
    )
    workflow = models.ForeignKey("builder.Workflow", on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(
        "builder.WorkflowVersion", on_delete=models.RESTRICT, related_name="runs"
    )
    status = models.CharField(max_length=24, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=16, default="api")
    input = models.JSONField(default=dict)
    options = models.JSONField(default=dict)
    outputs = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    input_hash = models.CharField(max_length=64, blank=True)
    total = models.IntegerField(default=0)
    succeeded = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    running = models.IntegerField(default=0)
    cancelled = models.IntegerField(default=0)
    not_started = models.IntegerField(default=0)
    # Per-block counters ({block id: {succeeded, failed, cancelled, not_started, running,
    # total}}) and per-loop state (counters + max_concurrent, limit, peak_running), kept by
    # engine/store.py in the same transactions as the rows they count.
    blocks = models.JSONField(default=dict)
    loops = models.JSONField(default=dict)
    # Per provider key this run called under an adaptive limit: {limit, cap, reason}, the last
    # `provider.limit` it heard (engine/core/provider_state.py).
    providers = models.JSONField(default=dict)
    last_seq = models.BigIntegerField(default=0)
    # The process executing the run holds a lease and renews it (engine/leases.py); a run
    # whose lease ran out is resumed by whoever finds it, never failed for being interrupted.
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires = models.DateTimeField(null=True, blank=True)
    resumes = models.IntegerField(default=0)
    # A run started by "retry failed items" reuses the succeeded steps of this one.
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # A deferred run (`defer: "off_peak"`): when it starts (the off-peak window's opening).
    deferred_until = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The resumer's look for runs nobody holds.
            models.Index(fields=["status", "lease_expires"], name="run_lease"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="unique_idempotency_key_per_workflow",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def progress(self) -> dict[str, int]:
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "not_started": self.not_started,
            "running": self.running,
        }


class ItemRun(models.Model):
    # No index of its own: every index below starts with the run (each row written costs an
    # entry in every index, and a loop writes thousands a second).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="items", db_index=False)
    key = models.CharField(max_length=500)
    loop_block = models.CharField(max_length=100)
    parent_key = models.CharField(max_length=500, blank=True)
    index = models.IntegerField()
    status = models.CharField(max_length=16, default="running")
    data = models.JSONField(null=True)
    error = models.TextField(blank=True)
    failed_block = models.CharField(max_length=100, blank=True)
    # The process that ran the item (host:pid): which worker, when several share the runs.
    worker = models.CharField(max_length=120, blank=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    duration = models.FloatField(null=True)
    # Seconds of `duration` its steps (and its inner items' steps) spent waiting for a
    # provider: a paused breaker, a concurrency slot, a rate grant (`step.waited`). Waiting is
    # not work: the run's sequential time leaves it out (engine/run_costs.py). Summed over
    # the steps, so steps that waited side by side may add up to more than `duration`.
    waited = models.FloatField(default=0.0)

    class Meta:
        ordering = ["run", "parent_key", "loop_block", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="unique_item_per_run")]
        indexes = [
            # The item pages' keyset order, and their status filter (docs/run-protocol.md).
            models.Index(
                fields=["run", "parent_key", "loop_block", "index", "id"], name="item_page_order"
            ),
            models.Index(fields=["run", "status", "index"], name="item_by_status"),
        ]


class StepRun(models.Model):
    # No index of its own: `unique_step_per_item` starts with the run (as ItemRun's).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps", db_index=False)
    item_key = models.CharField(max_length=500, blank=True)
    block_id = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, default="running")
    output = models.JSONField(null=True)
    error = models.TextField(blank=True)
    attempts = models.IntegerField(default=0)
    usage = models.JSONField(default=list)  # this run's calls (what it spent)
    # The result cache (a block's `cache`): "hit" (the output was reused, no call; what the
    # original call used is `saved_usage`), "miss" (called, then kept), "" (not cached); or
    # "reused": a retry's step taken from the run it repeats (engine/core/memo.REUSED), no
    # call of this run's, what that run's calls used is `saved_usage`.
    cache = models.CharField(max_length=8, blank=True, default="")
    saved_usage = models.JSONField(default=list)
    # The stored output had a secret masked: it is not what the block made, so a resumed run
    # or a retry runs the step again rather than reuse it.
    redacted = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    duration = models.FloatField(null=True)
    # Seconds of `duration` it spent waiting for a provider (as ItemRun's), over its attempts.
    waited = models.FloatField(default=0.0)

    class Meta:
        ordering = ["run", "item_key", "started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "item_key", "block_id"], name="unique_step_per_item"
            )
        ]


class LoopChunk(models.Model):
    """One slice of a loop's items, executed as a job on any worker (engine/distribute.py).

    The run's executor (the coordinator) creates a loop's chunks and defers their jobs in one
    transaction, then waits for every chunk to be `done`: the fan-in is these rows, counted
    in the database, so a failed item (terminal like any other) never blocks it. A chunk is
    executed under a lease like a run; one whose lease ran out, or that was given back by a
    stopping worker, is deferred again by the coordinator and resumes from its items' rows.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"  # its job is deferred
        RUNNING = "running"  # a worker holds its lease
        RELEASED = "released"  # given back unfinished (a graceful stop): to be deferred again
        DONE = "done"  # every item of it is terminal and stored

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="chunks")
    loop_block = models.CharField(max_length=100)
    number = models.IntegerField()
    # Its items' indexes, in the loop's dispatch order (engine/core/loop.dispatch_order).
    indexes = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires = models.DateTimeField(null=True)
    worker = models.CharField(max_length=120, blank=True)
    executions = models.IntegerField(default=0)
    error = models.TextField(blank=True)  # why its last execution ended without finishing
    # The chunk's item counts as its executor stored them (the coordinator's live progress).
    succeeded = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    running = models.IntegerField(default=0)
    cancelled = models.IntegerField(default=0)
    not_started = models.IntegerField(default=0)

    class Meta:
        ordering = ["run", "loop_block", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "loop_block", "number"], name="unique_chunk_per_loop"
            )
        ]


class Slot(models.Model):
    """One of a capped key's slots (engine/slots.py): free when `owner` is empty or its lease
    (`expires`) ran out; held by one hold of one process otherwise. Rows are made as a key
    first needs them and removed once long free."""

    pk = models.CompositePrimaryKey("key", "number")
    key = models.TextField()
    number = models.IntegerField()
    # The hold's token ('' when free) and its process (`host:pid:token`, for the heartbeat).
    owner = models.CharField(max_length=200, blank=True)
    process = models.CharField(max_length=200, blank=True)
    # Held: when the lease runs out unless renewed. Free: when it was given back.
    expires = models.DateTimeField()

    class Meta:
        indexes = [
            # The heartbeat's renewal of one process's holds.
            models.Index(fields=["process"], name="slot_held_by", condition=~models.Q(owner="")),
        ]

    def __str__(self) -> str:
        return f"slot {self.number} of {self.key}"


class ProviderBreaker(models.Model):
    """A provider key's breaker as the workers last decided it (engine/breaker_sharing.py):
    every worker applies the changes other workers wrote, so all pause and resume together.
    `version` comes from one sequence, so a reader asks for what is newer than it saw."""

    key = models.TextField(primary_key=True)
    state = models.CharField(max_length=20)  # open | closed
    reason = models.CharField(max_length=500, blank=True)
    trips = models.IntegerField(default=0)
    # Open, auto mode: the end of its cool-down (epoch seconds); manual: none, until Resume.
    until = models.FloatField(null=True, blank=True)
    policy = models.JSONField(default=dict)  # the BreakerPolicy it opened under
    process = models.CharField(max_length=200)  # who decided it (`host:pid`, `web:…`)
    # Open: when the outage began (epoch seconds), the earliest any worker wrote; every
    # worker's give-up clock runs from it. None while closed.
    outage_since = models.FloatField(null=True, blank=True)
    version = models.BigIntegerField(db_index=True)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key} breaker {self.state}"


class ProviderLimit(models.Model):
    """A provider key's adaptive (AIMD) limit as the workers last decided it
    (engine/breaker_sharing.py): a cut one worker makes bounds every worker, and the cluster
    slots of the key are held under it. `version` comes from the breakers' sequence."""

    key = models.TextField(primary_key=True)
    limit = models.IntegerField()
    # The limit that last failed (a 429 or a timeout): increases stay under it for a while.
    ceiling = models.IntegerField(null=True, blank=True)
    cut_at = models.FloatField(null=True, blank=True)  # epoch seconds of the last cut
    process = models.CharField(max_length=200)
    version = models.BigIntegerField(db_index=True)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key} limit {self.limit}"


class ProviderGrant(models.Model):
    """What one worker may spend of a provider key's requests and tokens per window
    (engine/breaker_sharing.py): the grants of a key never add up to more than its rate, a
    worker asks for more when its share is spent and gives back what it does not use. A
    grant stays until `expires` (renewed while its worker lives), since the calls it paid for
    count in the provider's window after they end."""

    key = models.TextField()
    process = models.CharField(max_length=200)
    requests = models.FloatField(default=0)
    tokens = models.FloatField(default=0)
    # Set while the worker asked for more than it got: holders share with it (fair share).
    wanted_at = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "process"], name="provider_grant_once"),
        ]

    def __str__(self) -> str:
        return f"{self.key} grant to {self.process}"


class CachedResult(models.Model):
    """A block's output kept by the result cache (engine/result_cache.py), per owner: the
    key hashes the block type and its resolved config with secrets named, never valued."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cached_results"
    )
    key = models.CharField(max_length=64)
    block_type = models.CharField(max_length=32)
    output = models.JSONField(null=True)
    usage = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="unique_cached_result")
        ]
        indexes = [models.Index(fields=["owner", "expires_at"], name="cached_result_expiry")]
