// Runs of the workflow, kept live by the workflow socket (store/workflowRuns.ts): a run that
// starts (from any trigger) or ends refetches the page, a running one's counters update in
// place. Opening one shows its final snapshot (block states, counters) in the Progress view.
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { RunSummary } from "../types";
import { isFinalStatus, statusLabel } from "../store/runStore";
import { useWorkflowRuns } from "../store/workflowRuns";
import { formatDuration, formatSpeedup, formatTokens, formatUsd, shownSpeedup } from "./metrics";
import { RunLinks } from "./RetryFailed";

function when(iso: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** Who started a run, in words (the column shows the server's own name for it). */
export const TRIGGER_TITLES: Record<string, string> = {
  editor: "the editor's Run button (a test run of the draft)",
  api: "POST /api/workflows/<id>/runs/",
  webhook: "a POST to the workflow's webhook",
  schedule: "the workflow's schedule trigger",
  cli: "manage.py run_workflow",
  retry: "a retry of an earlier run's failed items",
};

/** A listed run patched with what the workflow socket said of it since: counters and status.
 * Its cost line stays the list's, left out once the socket says the run ended (the page is
 * read again then; until that answer the list's line would be the running run's). */
function withHeard(listed: RunSummary, heard: RunSummary | undefined): RunSummary {
  if (!heard) return listed;
  const ended = isFinalStatus(heard.status) && !isFinalStatus(listed.status);
  return { ...listed, ...heard, summary: ended ? undefined : listed.summary };
}

function historyCost(run: RunSummary): string {
  const summary = run.summary;
  if (!summary || summary.tokens.total === 0) return "";
  return summary.cost_usd === null ? "no price" : formatUsd(summary.cost_usd);
}

function costTitle(run: RunSummary): string | undefined {
  const summary = run.summary;
  if (!summary || summary.tokens.total === 0) return undefined;
  const unpriced = summary.unpriced_models.length ? `; no price for ${summary.unpriced_models.join(", ")}` : "";
  return `${formatTokens(summary.tokens.total)} in ${summary.llm_calls} LLM calls${unpriced}`;
}

export function HistoryTab(props: {
  workflowId: number;
  refresh: number;
  currentRunId: string | null;
  onOpen: (run: RunSummary) => void;
}) {
  const { workflowId, refresh, currentRunId, onOpen } = props;
  const [page, setPage] = useState(1);
  const [runs, setRuns] = useState<RunSummary[] | null>(null);
  const [hasNext, setHasNext] = useState(false);
  const [error, setError] = useState("");
  const heardVersion = useWorkflowRuns((s) => s.version);
  const heard = useWorkflowRuns((s) => s.runs);

  useEffect(() => {
    let ignore = false;
    setError("");
    api
      .runs(workflowId, page)
      .then((data) => {
        if (ignore) return;
        setRuns(data.results);
        setHasNext(Boolean(data.next));
      })
      .catch((err: unknown) => {
        if (!ignore) setError(err instanceof Error ? err.message : String(err));
      });
    return () => {
      ignore = true;
    };
  }, [workflowId, page, refresh, heardVersion]);

  if (error) return <p className="kr-error">{error}</p>;
  if (!runs) return <p className="kr-muted">Loading…</p>;
  if (!runs.length && page === 1) return <p className="kr-muted">No runs yet.</p>;

  return (
    <div className="kr-history">
      <div className="kr-table-wrap">
        <table className="kr-table" data-testid="history-table">
          <thead>
            <tr>
              <th>Started</th>
              <th>Status</th>
              <th>Trigger</th>
              <th>Items ok/failed/total</th>
              <th>Duration</th>
              <th title="sequential time ÷ wall time">Speedup</th>
              <th title="LLM tokens × price">Cost</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {runs.map((listed) => withHeard(listed, heard[listed.id])).map((run) => (
              <tr
                key={run.id}
                data-testid="history-row"
                data-run-id={run.id}
                className={run.id === currentRunId ? "kr-selected" : undefined}
              >
                <td title={run.id}>{when(run.started_at ?? run.created_at)}</td>
                <td>
                  <span className={`kr-badge kr-s-${run.status}`} data-testid="history-status">
                    {statusLabel(run.status)}
                  </span>
                  {run.status === "deferred" && run.deferred_until ? (
                    <span className="kr-muted" data-testid="history-deferred" title="the off-peak window (KLYNTOS_OFF_PEAK_HOURS)">
                      {" "}
                      until {when(run.deferred_until)}
                    </span>
                  ) : null}
                </td>
                <td data-testid="history-trigger" title={TRIGGER_TITLES[run.trigger]}>
                  {run.trigger}
                  {run.draft ? " (draft)" : ""}
                  <RunLinks run={run} />
                </td>
                <td className="kr-num">
                  {run.progress.succeeded}/{run.progress.failed}/{run.progress.total}
                </td>
                <td className="kr-num">{formatDuration(run.duration)}</td>
                <td className="kr-num" data-testid="history-speedup">
                  {formatSpeedup(shownSpeedup(run.summary))}
                </td>
                <td className="kr-num" data-testid="history-cost" title={costTitle(run)}>
                  {historyCost(run)}
                </td>
                <td>
                  <button type="button" className="kr-btn" data-testid="history-open" onClick={() => onOpen(run)}>
                    Open
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="kr-row">
        <button type="button" className="kr-btn" disabled={page <= 1} onClick={() => setPage((p) => p - 1)}>
          Newer
        </button>
        <span className="kr-muted">page {page}</span>
        <button type="button" className="kr-btn" disabled={!hasNext} onClick={() => setPage((p) => p + 1)}>
          Older
        </button>
      </div>
    </div>
  );
}
