// Retry failed items in one call: a linked run that reuses every succeeded step of this one
// (no paid call repeated) and runs only the failed, cancelled and never-started items again,
// from their failed step.
import { useState } from "react";
import { api } from "../api/client";
import type { RunSummary } from "../types";

const RETRYABLE = new Set(["partially_succeeded", "failed", "cancelled"]);

export function canRetry(run: RunSummary | null | undefined): boolean {
  return Boolean(run && RETRYABLE.has(run.status));
}

export function RetryFailedButton(props: { run: RunSummary; onStarted: (run: RunSummary) => void; onError: (message: string) => void }) {
  const { run, onStarted, onError } = props;
  const [busy, setBusy] = useState(false);
  if (!canRetry(run)) return null;
  const { label, parts } = retryLabel(run.progress);
  return (
    <button
      type="button"
      className="kr-btn"
      data-testid="retry-failed-button"
      disabled={busy}
      title={`${parts ? `${parts}. ` : ""}Start a linked run that reuses every succeeded step and runs only these again`}
      onClick={async () => {
        setBusy(true);
        try {
          onStarted(await api.retryFailed(run.id));
        } catch (err) {
          onError(err instanceof Error ? err.message : String(err));
        } finally {
          setBusy(false);
        }
      }}
    >
      {busy ? "Starting…" : label}
    </button>
  );
}

/**
 * What the retry runs again, truthfully named: "Retry 3 failed", "Retry 10 cancelled",
 * "Retry 746 unfinished" when kinds mix (failed, cancelled, never started), with the parts
 * spelled out for the button's title.
 */
export function retryLabel(progress: RunSummary["progress"]): { label: string; parts: string } {
  const counts: [number, string][] = [
    [progress.failed, "failed"],
    [progress.cancelled ?? 0, "cancelled"],
    [progress.not_started ?? 0, "not started"],
  ];
  const present = counts.filter(([n]) => n > 0);
  const total = present.reduce((sum, [n]) => sum + n, 0);
  const parts = present.map(([n, what]) => `${n} ${what}`).join(", ");
  if (total === 0) return { label: "Retry from the failed step", parts };
  return { label: `Retry ${total} ${present.length === 1 ? present[0][1] : "unfinished"}`, parts };
}

/** "retry of 1a2b3c4d" / "retried by 5e6f7a8b" for a run's row in History. */
export function RunLinks(props: { run: RunSummary }) {
  const { run } = props;
  if (!run.retry_of && !run.retries?.length) return null;
  return (
    <span className="kr-muted kr-links" data-testid="run-links">
      {run.retry_of && <span data-testid="run-retry-of"> · retry of {run.retry_of.slice(0, 8)}</span>}
      {run.retries?.length ? (
        <span data-testid="run-retried-by"> · retried by {run.retries.map((id) => id.slice(0, 8)).join(", ")}</span>
      ) : null}
    </span>
  );
}
