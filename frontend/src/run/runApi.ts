// REST reads the run panel needs beyond api/client.ts: one item with its step outputs, and a
// whole run rebuilt as a snapshot when the websocket cannot be reached.
import { api, request } from "../api/client";
import type { RunSnapshotMessage, StepState } from "../types";
import { isFinalStatus, type RunItem } from "../store/runStore";

export interface StepDetail extends Omit<StepState, "item_key"> {
  output: unknown;
  usage?: unknown;
}

export interface ItemDetail extends RunItem {
  steps: StepDetail[];
}

interface Page<T> {
  count: number;
  next: string | null;
  results: T[];
}

export async function fetchItem(runId: string, key: string): Promise<ItemDetail | null> {
  const page = await request<Page<ItemDetail>>(
    "GET",
    `/api/runs/${encodeURIComponent(runId)}/items/?key=${encodeURIComponent(key)}`,
  );
  return page.results.find((i) => i.key === key) ?? null;
}

const MAX_PAGES = 200;

/** The run's stored state as a snapshot message (REST fallback for a closed websocket). */
export async function fetchRunSnapshot(runId: string): Promise<RunSnapshotMessage> {
  const run = await api.run(runId);
  const items: RunItem[] = [];
  const steps: StepState[] = [];
  for (let page = 1; page <= MAX_PAGES; page += 1) {
    const data = await request<Page<ItemDetail>>("GET", `/api/runs/${encodeURIComponent(runId)}/items/?page=${page}`);
    for (const { steps: itemSteps, ...item } of data.results) {
      items.push(item);
      for (const { output: _output, usage: _usage, ...step } of itemSteps ?? []) steps.push({ ...step, item_key: item.key });
    }
    if (!data.next) break;
  }
  const { outputs: _outputs, ...summary } = run;
  return { type: "snapshot", seq: run.last_seq, final: isFinalStatus(run.status), run: summary, items, steps };
}
