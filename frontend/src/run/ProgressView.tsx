// Live (or replayed) progress of the run in the run store.
import { useCallback, useMemo, useState } from "react";
import { isFinalStatus, useRunStore } from "../store/runStore";
import { ItemDetailView } from "./ItemDetailView";
import { ItemTable } from "./ItemTable";
import { RunOutputs } from "./RunOutputs";
import { formatDuration, loopStats, measuredSpeedup, topLevelItems } from "./metrics";
import { TimelineView } from "./TimelineView";

function pct(part: number, total: number): string {
  return `${total > 0 ? (100 * part) / total : 0}%`;
}

export function ProgressView() {
  const runId = useRunStore((s) => s.runId);
  const run = useRunStore((s) => s.run);
  const items = useRunStore((s) => s.items);
  const final = useRunStore((s) => s.final);
  const [selection, setSelection] = useState<{ runId: string; key: string } | null>(null);
  const selected = selection && selection.runId === runId ? selection.key : null;

  const top = useMemo(() => topLevelItems(items), [items]);
  const finished = final || isFinalStatus(run?.status);
  const stats = useMemo(() => loopStats(run, top, finished), [run, top, finished]);
  // No speedup for a cancelled run: its items did not all get their chance.
  const cancelledRun = run?.status === "cancelled";
  const speedup = useMemo(() => (finished && !cancelledRun ? measuredSpeedup(top) : null), [finished, cancelledRun, top]);

  const onSelect = useCallback((key: string) => runId && setSelection({ runId, key }), [runId]);

  if (!runId) return <p className="kr-muted">Start a run, or open one from the history.</p>;

  return (
    <div className="kr-progress">
      <div className="kr-stats">
        <div className="kr-bar" role="progressbar" aria-valuemin={0} aria-valuemax={stats.total} aria-valuenow={stats.done}>
          <span className="kr-bar-ok" style={{ width: pct(stats.succeeded, stats.total) }} />
          <span className="kr-bar-failed" style={{ width: pct(stats.failed, stats.total) }} />
          <span className="kr-bar-running" style={{ width: pct(stats.running, stats.total) }} />
          <span className="kr-bar-cancelled" style={{ width: pct(stats.cancelled, stats.total) }} />
        </div>
        <div className="kr-row kr-small">
          <strong data-testid="progress">
            {stats.done}/{stats.total}
          </strong>
          <span>items done</span>
          {stats.failed > 0 && (
            <span className="kr-text-failed" data-testid="progress-failed">
              {stats.failed} failed
            </span>
          )}
          {stats.cancelled > 0 && (
            <span className="kr-text-cancelled" data-testid="progress-cancelled">
              {stats.cancelled} cancelled
            </span>
          )}
          <span data-testid="in-flight">{stats.running} in flight</span>
          {stats.throughput !== null && <span data-testid="throughput">{stats.throughput.toFixed(1)} items/s</span>}
          {!finished && stats.eta !== null && stats.eta > 0 && <span data-testid="eta">ETA {formatDuration(stats.eta)}</span>}
          {run?.duration != null && <span>run took {formatDuration(run.duration)}</span>}
        </div>
        {speedup && (
          <p className="kr-speedup" data-testid="speedup" title={`${formatDuration(speedup.sequentialSeconds)} of item time in ${formatDuration(speedup.wallSeconds)}`}>
            {speedup.speedup.toFixed(1)}× faster than sequential
          </p>
        )}
      </div>
      <TimelineView items={top} />
      <ItemTable selected={selected} onSelect={onSelect} />
      {selected && <ItemDetailView runId={runId} itemKey={selected} onClose={() => setSelection(null)} />}
      {finished && <RunOutputs runId={runId} />}
    </div>
  );
}
