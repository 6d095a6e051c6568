import { act } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { mountEach } from "../testing/mount";
import type { CostSummary, LoopState, RunSummary } from "../types";
import { useGraphStore } from "../store/graphStore";
import { useRunStore, type RunItem } from "../store/runStore";
import type { BlockNode } from "../store/model";
import { ProgressView } from "./ProgressView";

const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s)).toISOString();

const mount = mountEach();
let summary: CostSummary | null = null;

const cost: CostSummary = {
  wall_seconds: 10, sequential_seconds: 20, items_measured: 10, speedup: 2,
  tokens: { prompt: 0, completion: 0, total: 0 }, llm_calls: 0, cost_usd: null, unpriced_models: [], models: [],
};

beforeEach(() => {
  summary = null;
  vi.stubGlobal("fetch", async (url: string) => {
    if (String(url).includes("/summary/") && summary) {
      return { ok: true, status: 200, text: async () => JSON.stringify({ id: "r1", status: "running", summary }) };
    }
    return { ok: false, status: 404, text: async () => JSON.stringify({ detail: "not here" }) };
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
  useRunStore.getState().reset();
  useGraphStore.setState({ nodes: [] });
});

function run(over: Partial<RunSummary> = {}): RunSummary {
  return {
    id: "r1", workflow: 1, workflow_version: 1, status: "running", trigger: "editor",
    progress: { total: 20, succeeded: 4, failed: 0, running: 3, cancelled: 0, not_started: 0 }, error: "", created_at: at(0),
    started_at: at(0), finished_at: null, duration: null, last_seq: 5, ...over,
  };
}

function loop(over: Partial<LoopState>): LoopState {
  return { total: 0, succeeded: 0, failed: 0, cancelled: 0, not_started: 0, running: 0, max_concurrent: 0, limit: 0, peak_running: 0, ...over };
}

function item(index: number, end: number, over: Partial<RunItem> = {}): RunItem {
  return {
    key: `companies[${index}]`, loop_block: "companies", parent_key: "", index, status: "succeeded", error: "", failed_block: "",
    started_at: at(0), finished_at: at(end), duration: end, ...over,
  };
}

function node(id: string, parentId?: string): BlockNode {
  return { id, type: "loop", position: { x: 0, y: 0 }, data: { name: id, config: {} }, ...(parentId ? { parentId } : {}) } as unknown as BlockNode;
}

async function show() {
  mount.render(<ProgressView />);
  for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
}

const $ = (id: string) => mount.container.querySelector(`[data-testid="${id}"]`);

describe("the progress line's peak", () => {
  it("names the top-level loop's own peak and cap, not a nested loop's", async () => {
    // companies (cap 3) holds contacts (cap 4 per company): the nested loop reached 4.
    useGraphStore.setState({ nodes: [node("companies"), node("contacts", "companies")] });
    useRunStore.setState({
      runId: "r1", run: run(), items: { a: item(0, 2), b: item(1, 4) },
      loops: {
        companies: loop({ total: 20, max_concurrent: 3, limit: 3, peak_running: 3, running: 3 }),
        contacts: loop({ total: 60, max_concurrent: 4, limit: 4, peak_running: 4, running: 4 }),
      },
    });
    await show();
    expect($("max-concurrency")?.textContent).toBe("peak 3 of 3 at once");
  });

  it("tells the top-level loop by its items when the graph does not know the blocks", async () => {
    useRunStore.setState({
      runId: "r1", run: run(),
      items: { a: item(0, 2), n: item(0, 3, { key: "companies[0].contacts[0]", loop_block: "contacts", parent_key: "companies[0]" }) },
      loops: {
        contacts: loop({ max_concurrent: 4, peak_running: 4 }),
        companies: loop({ max_concurrent: 3, peak_running: 2 }),
      },
    });
    await show();
    expect($("max-concurrency")?.textContent).toBe("peak 2 of 3 at once");
  });
});

describe("the ETA during a provider pause", () => {
  const breaker = { state: "open" as const, mode: "manual" as const, reason: "5 errors in a row", message: "HTTP 503", since: 1 };

  it("shows no frozen ETA while a breaker holds the run, and after it a pace of the run since", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(0);
      useRunStore.setState({ runId: "r1", run: run({ providers: { clearbit: { breaker } } }), items: { a: item(0, 2), b: item(1, 4) }, loops: {} });
      await show();
      expect($("eta")?.textContent).toBe("ETA — paused");
      // Resumed after a long pause: the average since the start (4 done, the last at 4 s, but
      // minutes ago) says nothing of the pace now; no ETA until the run has moved a while.
      const closed = { clearbit: { breaker: { ...breaker, state: "closed" as const } } };
      const progress = (done: number) => ({ total: 20, succeeded: done, failed: 0, running: 3, cancelled: 0, not_started: 0 });
      vi.setSystemTime(300_000);
      act(() => useRunStore.setState({ run: run({ providers: closed, progress: progress(4) }) }));
      expect($("eta")).toBeNull();
      vi.setSystemTime(302_000);
      act(() => useRunStore.setState({ run: run({ providers: closed, progress: progress(6) }) }));
      expect($("eta")).toBeNull();
      // 4 more done in the 4 s since: 1 item/s, 12 to go.
      vi.setSystemTime(304_000);
      act(() => useRunStore.setState({ run: run({ providers: closed, progress: progress(8) }) }));
      expect($("eta")?.textContent).toBe("ETA 12.0 s");
    } finally {
      vi.useRealTimers();
    }
  });

  it("tells the ETA from the average until the run has a recent pace", async () => {
    useRunStore.setState({ runId: "r1", run: run(), items: { a: item(0, 2), b: item(1, 4) }, loops: {} });
    await show();
    // 4 done in 4 s, 16 to go: 16 s.
    expect($("eta")?.textContent).toBe("ETA 16.0 s");
  });
});

describe("a retry's throughput", () => {
  it("counts only the items the retry ran, not those it reused", async () => {
    // 10 items, 8 reused from the retried run (done at once), 2 run again in 4 s.
    summary = { ...cost, reused: { items: 8, steps: 16, seconds: 40, llm_calls: 0, tokens: 0, cost_usd: null } };
    useRunStore.setState({
      runId: "r1",
      run: run({ retry_of: "r0", progress: { total: 10, succeeded: 10, failed: 0, running: 0, cancelled: 0, not_started: 0 } }),
      items: { a: item(0, 2), b: item(1, 4) }, loops: {},
    });
    await show();
    expect($("throughput")?.textContent).toBe("0.5 items/s");
  });

  it("waits for the retry's summary before telling a pace", async () => {
    useRunStore.setState({
      runId: "r1",
      run: run({ retry_of: "r0", progress: { total: 10, succeeded: 10, failed: 0, running: 0, cancelled: 0, not_started: 0 } }),
      items: { a: item(0, 2), b: item(1, 4) }, loops: {},
    });
    await show();
    expect($("throughput")).toBeNull();
  });
});
