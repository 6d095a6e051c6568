// Retry failed items in one call: a linked run that reuses every succeeded step of this one
// (no paid call repeated) and runs only the failed items again, from their failed step.
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
  const failed = run.progress.failed + (run.progress.cancelled ?? 0) + (run.progress.not_started ?? 0);
  const label = failed > 0 ? `Retry ${failed} failed` : "Retry from the failed step";
  return (
    <button
      type="button"
      className="kr-btn"
      data-testid="retry-failed-button"
      disabled={busy}
      title="Start a linked run that reuses every succeeded step and runs only what failed"
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
