// Pure numbers for the Progress view, from server timestamps only (no client clock, so a
// skewed laptop clock cannot distort throughput, the timeline or the speedup).
import type { CostSummary, LoopState, RunSummary } from "../types";
import type { RunItem } from "../store/runStore";

export function toMs(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

const LABEL_MAX = 80;
// Bidi embedding, override and isolate controls: shown as their code points, so an item
// named "\u202Egnp.exe" reads as such and not as "exe.png".
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;

/** `text` with its bidi controls made visible ("[U+202E]"). */
export function visibleControls(text: string): string {
  return text.replace(BIDI_CONTROLS, (c) => `[U+${c.charCodeAt(0).toString(16).toUpperCase()}]`);
}

/** `value` as indented JSON to read, its bidi controls written as JSON escapes ("\\u202e"):
 * data cannot reorder what is shown, and the text still parses back to the same value. */
export function shownJson(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value, null, 2) ?? "null";
  } catch {
    text = String(value);
  }
  return text.replace(BIDI_CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A short text label for an item: its `name`, else its `id`, else compact JSON; bidi
 * controls made visible. */
export function itemLabel(data: unknown): string {
  let label: string;
  if (data && typeof data === "object" && !Array.isArray(data)) {
    const record = data as Record<string, unknown>;
    const pick = [record.name, record.id].find((v) => typeof v === "string" || typeof v === "number");
    label = pick !== undefined ? String(pick) : compactJson(data);
  } else {
    label = typeof data === "string" ? data : compactJson(data);
  }
  label = visibleControls(label);
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

/** Decimal places that show multiples of `step` seconds apart: 3 for 8 ms, 2 for 250 ms. */
function placesFor(step: number): number {
  if (!(step > 0) || step >= 1) return 0;
  let places = Math.ceil(-Math.log10(step) - 1e-9);
  const scaled = step * 10 ** places;
  if (Math.abs(scaled - Math.round(scaled)) > 0.05 * scaled) places += 1;
  return Math.min(6, places);
}

/** A moment of a run (seconds since it started) precise enough to tell it from the one
 * `step` seconds later: a timeline bucket's ends, which `formatDuration` rounds together
 * once the buckets are short ("1.24 s–1.24 s" for an 8 ms bucket). */
export function formatMoment(seconds: number | null | undefined, step: number): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const places = placesFor(step);
  if (places === 0) return formatDuration(seconds);
  if (seconds < 1) return `${(seconds * 1000).toFixed(Math.max(0, places - 3))} ms`;
  if (seconds < 60) return `${seconds.toFixed(places)} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = (seconds - minutes * 60).toFixed(places);
  return `${minutes}m ${rest.padStart(places + 3, "0")}s`;
}

/** A mean count (items in flight on average) to a tenth: "4.5", "50". */
export function formatMean(value: number): string {
  return String(Math.round(value * 10) / 10);
}

/** The run's item counters as the server keeps them (docs/run-protocol.md `Counters`). */
export interface RunCounters {
  total: number;
  /** Items that ran to an end of their own: succeeded or failed. */
  done: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  not_started: number;
  running: number;
}

export function runCounters(run: RunSummary | null): RunCounters {
  const p = run?.progress;
  const succeeded = p?.succeeded ?? 0;
  const failed = p?.failed ?? 0;
  return {
    total: p?.total ?? 0,
    done: succeeded + failed,
    succeeded,
    failed,
    cancelled: p?.cancelled ?? 0,
    not_started: p?.not_started ?? 0,
    running: p?.running ?? 0,
  };
}

/**
 * Finished items per second: the items the run itself ran to an end over the time from its
 * start to the latest item end the socket reported (server clocks only). `reused`: a retry's
 * items taken as they were from the run it retries (succeeded there, not run again), counted
 * done but not run: left out. Null before two items finished.
 */
export function throughputOf(run: RunSummary | null, items: RunItem[], reused = 0): number | null {
  const start = toMs(run?.started_at);
  const c = runCounters(run);
  const ran = c.done - Math.max(0, reused);
  if (start === null || ran < 2) return null;
  let latest = -Infinity;
  for (const item of items) {
    if (item.status !== "succeeded" && item.status !== "failed") continue;
    const end = toMs(item.finished_at);
    if (end !== null) latest = Math.max(latest, end);
  }
  const span = (latest - start) / 1000;
  return span > 0 ? ran / span : null;
}

/** The ETA to show: "paused" while a provider's breaker holds the run (items wait for a
 * Resume or a cool-down, so no pace holds), else the remaining items at the current pace, or
 * null when there is none to tell. */
export function etaOf(throughput: number | null, remaining: number, paused: boolean): number | "paused" | null {
  if (remaining <= 0) return null;
  if (paused) return "paused";
  return throughput && throughput > 0 ? remaining / throughput : null;
}

/** The loop whose counters and limits the progress line shows: a top-level loop (its block
 * has no parent in the graph), never a nested one whose cap is per parent item. `parents`:
 * the graph's blocks to their parent (null at the top level); a loop the graph does not know
 * (a run of another version) is told by its items (a top-level item has no `parent_key`).
 * Among several top-level loops, the one that reached the highest peak. */
export function topLoopOf(
  loops: Record<string, LoopState>,
  parents: ReadonlyMap<string, string | null>,
  items: RunItem[],
): LoopState | null {
  const ids = Object.keys(loops);
  if (ids.length === 0) return null;
  const topByItems = new Set(items.filter((i) => !i.parent_key && i.loop_block).map((i) => i.loop_block));
  const nestedByItems = new Set(items.filter((i) => i.parent_key && i.loop_block).map((i) => i.loop_block));
  const isTop = (id: string): boolean | null => {
    if (parents.has(id)) return !parents.get(id);
    if (topByItems.has(id)) return true;
    if (nestedByItems.has(id)) return false;
    return null;
  };
  let candidates = ids.filter((id) => isTop(id) === true);
  if (candidates.length === 0) candidates = ids.filter((id) => isTop(id) !== false);
  if (candidates.length === 0) candidates = ids;
  let best = loops[candidates[0]];
  for (const id of candidates.slice(1)) if ((loops[id].peak_running ?? 0) > (best.peak_running ?? 0)) best = loops[id];
  return best;
}

/** US dollars: cents from $1, four decimals below (an item's LLM calls cost fractions of a cent). */
export function formatUsd(usd: number | null | undefined): string {
  if (usd === null || usd === undefined || !Number.isFinite(usd)) return "";
  if (usd === 0) return "$0.00";
  if (usd < 0.0001) return "<$0.0001";
  return usd < 1 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

export function formatTokens(tokens: number | null | undefined): string {
  if (tokens === null || tokens === undefined) return "";
  return `${tokens.toLocaleString("en-US")} token${tokens === 1 ? "" : "s"}`;
}

export function formatSpeedup(speedup: number | null | undefined): string {
  return speedup === null || speedup === undefined ? "" : `${speedup.toFixed(1)}×`;
}

/** The speedup worth showing: none for a run that measured no work (no sequential time, no
 * items measured, no wall time), whose ratio ("0.5× the sequential pace" of 0 ms) says nothing. */
export function shownSpeedup(summary: Pick<CostSummary, "speedup" | "sequential_seconds" | "items_measured" | "wall_seconds"> | null | undefined): number | null {
  if (!summary || summary.speedup === null || summary.speedup === undefined || !Number.isFinite(summary.speedup)) return null;
  if (!(summary.sequential_seconds > 0) || !(summary.items_measured > 0)) return null;
  if (!(summary.wall_seconds !== null && summary.wall_seconds > 0)) return null;
  return summary.speedup;
}
