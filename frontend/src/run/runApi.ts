// REST reads the run panel needs beyond api/client.ts (docs/run-protocol.md): pages of items by
// cursor or offset with server-side filters and search, one item with its step outputs, the
// timeline, and the run's stored state as a snapshot when the websocket cannot be reached.
import { api, request } from "../api/client";
import type { CostSummary, ItemPage, RunSnapshotMessage, RunStatus, RunTimeline, StepState } from "../types";
import { isFinalStatus, type RunItem } from "../store/runStore";

export interface StepDetail extends Omit<StepState, "item_key"> {
  output: unknown;
  usage?: unknown;
  tokens?: number;
  cost_usd?: number | null;
}

export interface ItemDetail extends RunItem {
  steps: StepDetail[];
}

/** What the item list is narrowed to; every filter runs on the server. */
export interface ItemQuery {
  status?: string;
  q?: string;
  /** Seconds since the run started: items in flight at some moment of [from, to). */
  from?: number;
  to?: number;
  /** Seconds: items whose duration is in [min, max). */
  minDuration?: number;
  maxDuration?: number;
}

/** Rows per page asked of the server (its maximum is 200). */
export const PAGE_SIZE = 200;

function runPath(runId: string, tail: string): string {
  return `/api/runs/${encodeURIComponent(runId)}/${tail}`;
}

/**
 * Where a page starts: on after a page's `next` cursor (scrolling on, cheap at any depth), at
 * an offset (a jump far down the list, at most the count's cap), or at the top (null).
 */
export type PageStart = { cursor: string } | { offset: number } | null;

export function itemQueryString(query: ItemQuery, start: PageStart, limit = PAGE_SIZE): string {
  const params = new URLSearchParams();
  if (query.status) params.set("status", query.status);
  if (query.q) params.set("q", query.q);
  if (query.from !== undefined) params.set("from", String(query.from));
  if (query.to !== undefined) params.set("to", String(query.to));
  if (query.minDuration !== undefined) params.set("min_duration", String(query.minDuration));
  if (query.maxDuration !== undefined) params.set("max_duration", String(query.maxDuration));
  params.set("limit", String(limit));
  if (start && "cursor" in start) params.set("cursor", start.cursor);
  else if (start && start.offset > 0) params.set("offset", String(start.offset));
  return params.toString();
}

export function fetchItemPage(
  runId: string,
  query: ItemQuery,
  start: PageStart,
  limit = PAGE_SIZE,
  signal?: AbortSignal,
): Promise<ItemPage> {
  return request<ItemPage>("GET", runPath(runId, `items/?${itemQueryString(query, start, limit)}`), undefined, signal);
}

export async function fetchItem(runId: string, key: string): Promise<ItemDetail | null> {
  const page = await request<{ results: ItemDetail[] }>("GET", runPath(runId, `items/?key=${encodeURIComponent(key)}`));
  return page.results.find((i) => i.key === key) ?? null;
}

export function fetchTimeline(
  runId: string,
  window: { from?: number; to?: number } = {},
  buckets = 100,
  signal?: AbortSignal,
): Promise<RunTimeline> {
  const params = new URLSearchParams({ buckets: String(buckets) });
  if (window.from !== undefined) params.set("from", String(window.from));
  if (window.to !== undefined) params.set("to", String(window.to));
  return request<RunTimeline>("GET", runPath(runId, `timeline/?${params.toString()}`), undefined, signal);
}

/** The run's cost line alone (no outputs): re-read while the run goes on. */
export function fetchCostSummary(runId: string, signal?: AbortSignal): Promise<{ id: string; status: RunStatus; summary: CostSummary }> {
  return request("GET", runPath(runId, "summary/"), undefined, signal);
}

/**
 * The run's stored state as a snapshot message (REST fallback for a socket that cannot
 * connect): the summary and the first page of items; block counters come with the socket.
 */
export async function fetchRunSnapshot(runId: string): Promise<RunSnapshotMessage> {
  const run = await api.run(runId);
  const page = await fetchItemPage(runId, {}, null, 50);
  const { outputs: _outputs, ...summary } = run;
  return { type: "snapshot", seq: run.last_seq, final: isFinalStatus(run.status), run: summary, items: page.results, steps: [] };
}
