// Live (or replayed) progress of the run in the run store: the server's counters (the same
// numbers as the header, the canvas and the table's filters), the timeline, and the item
// table with the item detail in a side panel beside it.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useGraphStore } from "../store/graphStore";
import { isFinalStatus, useRunStore } from "../store/runStore";
import type { CostSummary } from "../types";
import { CostLine } from "./CostLine";
import { ItemDetailView } from "./ItemDetailView";
import { ItemTable } from "./ItemTable";
import { RunOutputs } from "./RunOutputs";
import { etaOf, formatDuration, runCounters, throughputOf, topLoopOf, type RunCounters } from "./metrics";
import { PaceWindow } from "./pace";
import { pausedProviders } from "./Paused";
import type { ItemQuery } from "./runApi";
import { TimelineView } from "./TimelineView";

function pct(part: number, total: number): string {
  return `${total > 0 ? (100 * part) / total : 0}%`;
}

const STATUSES = ["running", "succeeded", "failed", "cancelled", "not_started"] as const;
const SEARCH_DELAY_MS = 300;

/** The counter a status filter's option shows. */
function counterOf(c: RunCounters, status: string): number {
  return (STATUSES as readonly string[]).includes(status) ? c[status as (typeof STATUSES)[number]] : 0;
}

export function ProgressView() {
  const runId = useRunStore((s) => s.runId);
  const run = useRunStore((s) => s.run);
  const final = useRunStore((s) => s.final);
  const items = useRunStore((s) => s.items);
  const loops = useRunStore((s) => s.loops);
  // Each block's parent, as one string so that moving blocks does not re-render the view.
  const graphParents = useGraphStore((s) => s.nodes.map((n) => `${n.id}\t${n.parentId ?? ""}`).join("\n"));
  const parents = useMemo(() => {
    const map = new Map<string, string | null>();
    for (const line of graphParents ? graphParents.split("\n") : []) {
      const [id, parent] = line.split("\t");
      map.set(id, parent || null);
    }
    return map;
  }, [graphParents]);
  // A retry's items reused from the run it retries (the cost summary's `reused.items`).
  const [reused, setReused] = useState<{ runId: string; items: number } | null>(null);
  const [selection, setSelection] = useState<{ runId: string; key: string } | null>(null);
  const selected = selection && selection.runId === runId ? selection.key : null;
  const [status, setStatus] = useState("");
  const [search, setSearch] = useState("");
  const [q, setQ] = useState("");
  const [pick, setPick] = useState<{ query: ItemQuery; label: string } | null>(null);

  // A new run starts with no filter.
  useEffect(() => {
    setStatus("");
    setSearch("");
    setQ("");
    setPick(null);
  }, [runId]);
  useEffect(() => {
    const timer = setTimeout(() => setQ(search.trim()), SEARCH_DELAY_MS);
    return () => clearTimeout(timer);
  }, [search]);

  const finished = final || isFinalStatus(run?.status);
  const c = runCounters(run);
  const reusedItems = reused && reused.runId === runId ? reused.items : null;
  // A retry's pace waits for its summary: until then its reused items would count as run.
  const throughput = useMemo(
    () => (run?.retry_of && reusedItems === null ? null : throughputOf(run, Object.values(items), reusedItems ?? 0)),
    [run, items, reusedItems],
  );
  const remaining = Math.max(0, c.total - c.done - c.cancelled - c.not_started);
  const paused = pausedProviders(run).length > 0 || (!finished && (run?.paused?.length ?? 0) > 0 && !run?.providers);
  // The ETA's pace: the recent one (pace.ts), the average only until a pause has happened.
  const paceWindow = useRef(new PaceWindow());
  const [pausedThisRun, setPausedThisRun] = useState(false);
  const [recentPace, setRecentPace] = useState<number | null>(null);
  const ran = run?.retry_of && reusedItems === null ? null : c.done - (reusedItems ?? 0);
  useEffect(() => {
    paceWindow.current.reset();
    setPausedThisRun(false);
    setRecentPace(null);
  }, [runId]);
  useEffect(() => {
    if (paused) {
      paceWindow.current.reset();
      setPausedThisRun(true);
    } else if (ran !== null) {
      paceWindow.current.observe(Date.now(), ran);
    }
    setRecentPace(paceWindow.current.pace());
  }, [paused, ran]);
  const pace = recentPace ?? (pausedThisRun ? null : throughput);
  const eta = etaOf(pace, remaining, paused);
  // The top-level loop's own peak and cap (a nested loop's cap is per parent item).
  const top = useMemo(() => topLoopOf(loops, parents, Object.values(items)), [loops, parents, items]);
  const peak = top?.peak_running ?? 0;
  const cap = top?.max_concurrent ?? 0;
  const waves = Object.values(loops).find((l) => (l.batches ?? 0) > 0);
  const query = useMemo<ItemQuery>(
    () => ({ ...(status ? { status } : {}), ...(q ? { q } : {}), ...pick?.query }),
    [status, q, pick],
  );

  // The filter's number while the run goes on, for the table to name beside its own (read from
  // the stored rows, it trails the live counters). Only where both count the same rows: one
  // loop (the counters are the top-level loop's, the list every loop's) and no other filter.
  const liveCount =
    !finished && !q && !pick && Object.keys(loops).length === 1 ? (status ? counterOf(c, status) : c.total) : null;

  const onSelect = useCallback((key: string) => runId && setSelection({ runId, key }), [runId]);
  const onPick = useCallback((picked: ItemQuery, label: string) => setPick({ query: picked, label }), []);
  const onSummary = useCallback(
    (summary: CostSummary) => {
      const n = summary.reused?.items ?? 0;
      if (runId) setReused((prev) => (prev && prev.runId === runId && prev.items === n ? prev : { runId, items: n }));
    },
    [runId],
  );

  if (!runId) return <p className="kr-muted">Start a run, or open one from the history.</p>;

  return (
    <div className="kr-progress">
      <div className="kr-stats">
        <div className="kr-bar" role="progressbar" aria-valuemin={0} aria-valuemax={c.total} aria-valuenow={c.done} data-testid="progress-bar">
          <span className="kr-bar-ok" style={{ width: pct(c.succeeded, c.total) }} />
          <span className="kr-bar-failed" style={{ width: pct(c.failed, c.total) }} />
          <span className="kr-bar-running" style={{ width: pct(c.running, c.total) }} />
          <span className="kr-bar-cancelled" style={{ width: pct(c.cancelled + c.not_started, c.total) }} />
        </div>
        <div className="kr-row kr-small" data-testid="counters">
          <strong data-testid="progress">
            {c.done}/{c.total}
          </strong>
          <span>items done</span>
          <span className="kr-text-ok" data-testid="progress-succeeded">
            {c.succeeded} succeeded
          </span>
          {c.failed > 0 && (
            <span className="kr-text-failed" data-testid="progress-failed">
              {c.failed} failed
            </span>
          )}
          {c.cancelled > 0 && (
            <span className="kr-text-cancelled" data-testid="progress-cancelled">
              {c.cancelled} cancelled
            </span>
          )}
          {c.not_started > 0 && (
            <span className="kr-text-cancelled" data-testid="progress-not-started">
              {c.not_started} not started
            </span>
          )}
          <span data-testid="in-flight">{c.running} in flight</span>
          {peak > 0 && (
            <span data-testid="max-concurrency" title="most items in flight at once so far, and the loop's cap">
              peak {peak}
              {cap ? ` of ${cap}` : ""} at once
            </span>
          )}
          {waves && (
            <span data-testid="batch" title="waves: each batch ends before the next starts">
              batch {waves.batch}/{waves.batches}
            </span>
          )}
          {throughput !== null && <span data-testid="throughput">{throughput.toFixed(1)} items/s</span>}
          {!finished && eta !== null && (
            <span data-testid="eta" title={eta === "paused" ? "a provider's breaker holds the run: no pace until it resumes" : undefined}>
              {eta === "paused" ? "ETA — paused" : `ETA ${formatDuration(eta)}`}
            </span>
          )}
          {run?.duration != null && <span>run took {formatDuration(run.duration)}</span>}
        </div>
      </div>
      <CostLine runId={runId} finished={finished} onSummary={onSummary} />
      <TimelineView runId={runId} finished={finished} onPick={onPick} />
      <div className="kr-row kr-small kr-filters">
        <strong>Items</strong>
        <select value={status} data-testid="item-filter" onChange={(e) => setStatus(e.target.value)}>
          <option value="">all ({c.total})</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s.replace("_", " ")} ({counterOf(c, s)})
            </option>
          ))}
        </select>
        <input
          type="search"
          className="kr-search"
          placeholder="search key or data"
          maxLength={200}
          value={search}
          data-testid="item-search"
          onChange={(e) => setSearch(e.target.value)}
        />
        {pick && (
          <span className="kr-chip" data-testid="item-pick">
            {pick.label}
            <button type="button" className="kr-chip-x" aria-label="clear" onClick={() => setPick(null)}>
              ×
            </button>
          </span>
        )}
      </div>
      <div className={selected ? "kr-items-area kr-with-detail" : "kr-items-area"}>
        <ItemTable runId={runId} query={query} selected={selected} onSelect={onSelect} liveCount={liveCount} />
        {selected && <ItemDetailView runId={runId} itemKey={selected} onClose={() => setSelection(null)} />}
      </div>
      {finished && <RunOutputs runId={runId} />}
    </div>
  );
}
