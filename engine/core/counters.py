"""Per-block counters and the status the editor paints from them (docs/run-protocol.md,
`BlockState`). One place decides what "partially succeeded" means, for the store (live
counters), the final recount and the snapshot."""

from __future__ import annotations

from typing import Any

COUNTS = ("succeeded", "failed", "cancelled", "not_started", "running")
# Step row statuses as counted: a retrying step, or one waiting for its provider, still runs.
STEP_COUNT = {
    "running": "running",
    "retrying": "running",
    "waiting": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "not_started": "not_started",
}


def zero() -> dict[str, int]:
    return dict.fromkeys(COUNTS, 0)


def block_status(counts: dict[str, Any], *, ended: bool, running: bool = False) -> str:
    """`running` forces the running state (a loop whose own step is still going)."""
    if running or counts.get("running"):
        return "running"
    ok, failed, cancelled, skipped = (
        counts.get("succeeded", 0),
        counts.get("failed", 0),
        counts.get("cancelled", 0),
        counts.get("not_started", 0),
    )
    if ok:
        return "succeeded" if not (failed or cancelled or skipped) else "partially_succeeded"
    if failed:
        return "failed"
    if cancelled:
        return "cancelled"
    if skipped or ended:
        return "not_started"
    return "pending"


def block_state(
    counts: dict[str, Any] | None,
    *,
    ended: bool,
    total: int | None = None,
    running: bool = False,
) -> dict[str, Any]:
    """A whole `BlockState`: the counts, their total and the status."""
    values: dict[str, Any] = {
        **zero(),
        **{k: int(v) for k, v in (counts or {}).items() if k in COUNTS},
    }
    values["total"] = total if total is not None else sum(values[k] for k in COUNTS)
    values["status"] = block_status(values, ended=ended, running=running)
    return values
