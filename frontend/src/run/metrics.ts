// Pure numbers for the Progress view, from server timestamps only (no client clock, so a
// skewed laptop clock cannot distort throughput, the timeline or the speedup).
import type { RunSummary, StepState } from "../types";
import type { RunItem } from "../store/runStore";

export function toMs(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

const LABEL_MAX = 80;

/** A short text label for an item: its `name`, else its `id`, else compact JSON. */
export function itemLabel(data: unknown): string {
  let label: string;
  if (data && typeof data === "object" && !Array.isArray(data)) {
    const record = data as Record<string, unknown>;
    const pick = [record.name, record.id].find((v) => typeof v === "string" || typeof v === "number");
    label = pick !== undefined ? String(pick) : compactJson(data);
  } else {
    label = typeof data === "string" ? data : compactJson(data);
  }
  return label.length > LABEL_MAX ? `${label.slice(0, LABEL_MAX - 1)}…` : label;
}

function compactJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "";
  } catch {
    return String(value);
  }
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds - minutes * 60);
  return `${minutes}m ${String(rest).padStart(2, "0")}s`;
}

/** Items of top-level loops: the ones the run's progress counts and the speedup is about. */
export function topLevelItems(items: Record<string, RunItem>): RunItem[] {
  return Object.values(items).filter((i) => !i.parent_key);
}

export function sortItems(items: RunItem[]): RunItem[] {
  return [...items].sort(
    (a, b) =>
      a.parent_key.localeCompare(b.parent_key) || a.loop_block.localeCompare(b.loop_block) || a.index - b.index,
  );
}

function itemSeconds(item: RunItem): number | null {
  if (typeof item.duration === "number") return item.duration;
  const start = toMs(item.started_at);
  const end = toMs(item.finished_at);
  return start !== null && end !== null ? (end - start) / 1000 : null;
}

export interface LoopStats {
  total: number;
  /** Items that finished (succeeded or failed); cancelled ones are not done. */
  done: number;
  succeeded: number;
  failed: number;
  running: number;
  cancelled: number;
  /** Finished items per second since the first item started (cancelled ones not counted). */
  throughput: number | null;
  /** Seconds until every item still to run is done at the current throughput. */
  eta: number | null;
}

/** An item that ran to an end of its own: succeeded or failed (not cancelled, not running). */
export function isFinished(item: RunItem): boolean {
  return item.status === "succeeded" || item.status === "failed";
}

/**
 * Counts of the run's top-level items. Once the run is over (`final`), items it never
 * started count as cancelled too.
 */
export function loopStats(run: RunSummary | null, items: RunItem[], final = false): LoopStats {
  const p = run?.progress ?? { total: 0, succeeded: 0, failed: 0, running: 0 };
  const done = p.succeeded + p.failed;
  let first = Infinity;
  let last = -Infinity;
  let finished = 0;
  let cancelled = 0;
  for (const item of items) {
    if (item.status === "cancelled") {
      cancelled += 1;
      continue;
    }
    const start = toMs(item.started_at);
    if (start !== null) first = Math.min(first, start);
    const end = toMs(item.finished_at);
    if (end !== null && isFinished(item)) {
      last = Math.max(last, end);
      finished += 1;
    }
  }
  const span = (last - first) / 1000;
  const throughput = finished > 0 && span > 0 ? finished / span : null;
  if (final) cancelled = Math.max(cancelled, p.total - done - p.running);
  const remaining = Math.max(0, p.total - done - cancelled);
  const eta = throughput && remaining > 0 ? remaining / throughput : remaining === 0 && p.total > 0 ? 0 : null;
  return { total: p.total, done, succeeded: p.succeeded, failed: p.failed, running: p.running, cancelled, throughput, eta };
}

export interface TimelineBar {
  key: string;
  index: number;
  status: RunItem["status"];
  /** Milliseconds from the first start. */
  start: number;
  end: number;
  data: unknown;
}

export interface Timeline {
  bars: TimelineBar[];
  span: number;
  maxConcurrent: number;
}

/** One bar per started item; running items extend to the latest timestamp seen. */
export function timeline(items: RunItem[]): Timeline {
  const started = items.filter((i) => toMs(i.started_at) !== null);
  if (!started.length) return { bars: [], span: 0, maxConcurrent: 0 };
  let t0 = Infinity;
  let latest = -Infinity;
  for (const item of started) {
    const s = toMs(item.started_at)!;
    t0 = Math.min(t0, s);
    latest = Math.max(latest, s, toMs(item.finished_at) ?? s);
  }
  const bars = sortItems(started).map((item) => {
    const start = toMs(item.started_at)! - t0;
    const end = (item.status === "running" ? latest : (toMs(item.finished_at) ?? latest)) - t0;
    return { key: item.key, index: item.index, status: item.status, start, end: Math.max(start, end), data: item.data };
  });
  return { bars, span: latest - t0, maxConcurrent: maxConcurrent(bars) };
}

function maxConcurrent(bars: TimelineBar[]): number {
  // Ends sort before starts at the same instant: back-to-back items do not overlap.
  const events: [number, number][] = [];
  for (const bar of bars) {
    events.push([bar.start, 1]);
    events.push([bar.end, -1]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let max = 0;
  for (const [, d] of events) {
    now += d;
    max = Math.max(max, now);
  }
  return max;
}

export interface Speedup {
  speedup: number;
  sequentialSeconds: number;
  wallSeconds: number;
}

/** Fewer finished items than this give no speedup figure ("1.0× faster" is noise). */
export const SPEEDUP_MIN_ITEMS = 2;

/**
 * Sum of item durations over the loop's wall time (first item start → last item finish), over
 * the items that finished (succeeded or failed); null with fewer than two of them.
 */
export function measuredSpeedup(items: RunItem[]): Speedup | null {
  let first = Infinity;
  let last = -Infinity;
  let sum = 0;
  let count = 0;
  for (const item of items) {
    if (!isFinished(item)) continue;
    const start = toMs(item.started_at);
    const end = toMs(item.finished_at);
    const seconds = itemSeconds(item);
    if (start === null || end === null || seconds === null) continue;
    first = Math.min(first, start);
    last = Math.max(last, end);
    sum += seconds;
    count += 1;
  }
  const wall = (last - first) / 1000;
  if (count < SPEEDUP_MIN_ITEMS || !(wall > 0) || sum <= 0) return null;
  return { speedup: sum / wall, sequentialSeconds: sum, wallSeconds: wall };
}

/** The most attempts any step of the item needed (1 = no retry), by item key. */
export function attemptsByItem(steps: Record<string, StepState>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const step of Object.values(steps)) {
    if (!step.item_key) continue;
    out[step.item_key] = Math.max(out[step.item_key] ?? 0, step.attempts ?? 0);
  }
  return out;
}
