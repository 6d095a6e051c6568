import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { CostSummary, RunSummary } from "../types";
import { useWorkflowRuns } from "../store/workflowRuns";
import { HistoryTab } from "./HistoryTab";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let root: Root;
let container: HTMLDivElement;

beforeEach(() => {
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
  vi.unstubAllGlobals();
  useWorkflowRuns.setState({ runs: {}, version: 0 });
});

async function flush() {
  for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
}

const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s)).toISOString();

function summary(over: Partial<CostSummary>): CostSummary {
  return {
    wall_seconds: 2, sequential_seconds: 20, items_measured: 100, speedup: 10,
    tokens: { prompt: 9000, completion: 1000, total: 10000 }, llm_calls: 201, cost_usd: 0.00196,
    unpriced_models: [], models: [], ...over,
  };
}

function run(id: string, trigger: string, over: Partial<RunSummary> = {}): RunSummary {
  return {
    id, workflow: 1, workflow_version: 1, status: "succeeded", trigger, error: "",
    progress: { total: 100, succeeded: 100, failed: 0, running: 0, cancelled: 0, not_started: 0 },
    created_at: at(0), started_at: at(0), finished_at: at(2), duration: 2, last_seq: 9, summary: summary({}), ...over,
  };
}

describe("HistoryTab", () => {
  it("shows each run's real trigger, its speedup and its dollars", async () => {
    const runs = [
      run("r-editor", "editor", { draft: true }),
      run("r-api", "api", { summary: summary({ speedup: 12.345, cost_usd: 2.5 }) }),
      run("r-webhook", "webhook", { summary: summary({ cost_usd: null, unpriced_models: ["house-model"] }) }),
      run("r-schedule", "schedule", { summary: summary({ tokens: { prompt: 0, completion: 0, total: 0 }, cost_usd: 0, speedup: null }) }),
      run("r-cli", "cli"),
      run("r-retry", "retry"),
    ];
    const urls: string[] = [];
    vi.stubGlobal("fetch", async (url: string) => {
      urls.push(url);
      const body = { count: runs.length, next: null, previous: null, results: runs };
      return { ok: true, status: 200, text: async () => JSON.stringify(body) };
    });
    act(() => root.render(<HistoryTab workflowId={1} refresh={0} currentRunId={null} onOpen={() => undefined} />));
    await flush();
    expect(urls).toEqual(["/api/workflows/1/runs/?page=1"]);
    const cells = (id: string) => Array.from(container.querySelectorAll<HTMLElement>(`[data-testid="${id}"]`));
    expect(cells("history-trigger").map((c) => c.textContent)).toEqual(["editor (draft)", "api", "webhook", "schedule", "cli", "retry"]);
    expect(cells("history-trigger")[3].title).toBe("the workflow's schedule trigger");
    expect(cells("history-speedup").map((c) => c.textContent)).toEqual(["10.0×", "12.3×", "10.0×", "", "10.0×", "10.0×"]);
    expect(cells("history-cost").map((c) => c.textContent)).toEqual(["$0.0020", "$2.50", "no price", "", "$0.0020", "$0.0020"]);
    expect(cells("history-cost")[2].title).toBe("10,000 tokens in 201 LLM calls; no price for house-model");
  });

  it("leaves out a running row's cost line once the socket says it ended, until the page is read again", async () => {
    const listed = run("r1", "webhook", { status: "running", finished_at: null, duration: null, summary: summary({ cost_usd: 0.0001, speedup: 0.1 }) });
    vi.stubGlobal("fetch", async () => ({
      ok: true, status: 200, text: async () => JSON.stringify({ count: 1, next: null, previous: null, results: [listed] }),
    }));
    act(() => root.render(<HistoryTab workflowId={1} refresh={0} currentRunId={null} onOpen={() => undefined} />));
    await flush();
    const cost = () => container.querySelector('[data-testid="history-cost"]')?.textContent;
    expect(cost()).toBe("$0.0001");
    // run.progress (no refetch) carries the final status before the page is read again.
    act(() => useWorkflowRuns.setState({ runs: { r1: { ...listed, status: "succeeded", summary: undefined } } }));
    expect(container.querySelector('[data-testid="history-status"]')?.textContent).toBe("succeeded");
    expect(cost()).toBe("");
  });

  it("says until when a deferred run waits for the off-peak window", async () => {
    const until = new Date(Date.UTC(2026, 11, 3, 21, 0, 0)).toISOString();
    const waiting = run("r-deferred", "api", {
      status: "deferred", started_at: null, finished_at: null, duration: null, deferred_until: until, summary: undefined,
      progress: { total: 0, succeeded: 0, failed: 0, running: 0 },
    });
    vi.stubGlobal("fetch", async () => ({
      ok: true, status: 200, text: async () => JSON.stringify({ count: 1, next: null, previous: null, results: [waiting] }),
    }));
    act(() => root.render(<HistoryTab workflowId={1} refresh={0} currentRunId={null} onOpen={() => undefined} />));
    await flush();
    expect(container.querySelector('[data-testid="history-status"]')?.textContent).toBe("deferred");
    expect(container.querySelector('[data-testid="history-deferred"]')?.textContent).toBe(
      ` until ${new Date(until).toLocaleString()}`,
    );
  });
});
