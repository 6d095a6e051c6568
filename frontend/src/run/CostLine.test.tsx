import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { CostSummary } from "../types";
import { COST_FINAL_REREADS_MS, CostLine, reusedText, speedupText } from "./CostLine";
import { shownSpeedup } from "./metrics";

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
});

// A retry of a 1,000-lead run that ran its 25 failed leads again (the tester's case): its
// own calls only, and what it reused said apart.
const retry: CostSummary = {
  wall_seconds: 1.74, sequential_seconds: 17.1, items_measured: 25, speedup: 9.83,
  tokens: { prompt: 1200, completion: 300, total: 1500 }, llm_calls: 26, cost_usd: 0.00036,
  unpriced_models: [], models: [],
  cache: { hits: 0, misses: 0, calls_saved: 0, llm_calls_saved: 0, tokens_saved: 0, saved_usd: 0 },
  reused: { items: 975, steps: 3901, seconds: 656.7, llm_calls: 1950, tokens: 114259, cost_usd: 0.0231 },
};

describe("the cost line of a retry", () => {
  it("says what was reused in words, apart from what the run did", () => {
    expect(reusedText(retry)).toBe("reused 975 items from the retried run: 114,259 tokens in 1,950 LLM calls ($0.0231) not spent again");
    expect(reusedText({ ...retry, reused: { ...retry.reused!, items: 0, steps: 1, llm_calls: 0, tokens: 0, cost_usd: 0 } })).toBe("reused 1 step from the retried run");
    expect(reusedText({ ...retry, reused: { items: 0, steps: 0, seconds: 0, llm_calls: 0, tokens: 0, cost_usd: 0 } })).toBe("");
    expect(reusedText({ ...retry, reused: undefined })).toBe("");
  });

  it("shows the run's own figures, then the reused part", async () => {
    vi.stubGlobal("fetch", async () => ({ ok: true, status: 200, text: async () => JSON.stringify({ id: "r9", status: "succeeded", summary: retry }) }));
    act(() => root.render(<CostLine runId="r9" finished />));
    for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
    const $ = (id: string) => container.querySelector(`[data-testid="${id}"]`);
    expect($("cost-tokens")?.textContent).toBe("1,500 tokens in 26 LLM calls");
    expect($("speedup")?.textContent).toBe("9.8× faster than sequential");
    expect($("cost-reused")?.textContent).toBe("reused 975 items from the retried run: 114,259 tokens in 1,950 LLM calls ($0.0231) not spent again");
    expect(($("cost-reused") as HTMLElement).title).toContain("10m 57s of work not done again");
  });
});

describe("the cost line of a run that waited for its providers", () => {
  it("leaves the waits out of the sequential time and says so", async () => {
    // 200 leads through a 20-second Clearbit outage: 10 items waited it out side by side.
    const waited: CostSummary = { ...retry, reused: undefined, wall_seconds: 36.6, sequential_seconds: 17.2, items_measured: 200, speedup: 0.47, waited_seconds: 350 };
    vi.stubGlobal("fetch", async () => ({ ok: true, status: 200, text: async () => JSON.stringify({ id: "r8", status: "succeeded", summary: waited }) }));
    act(() => root.render(<CostLine runId="r8" finished />));
    for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
    const $ = (id: string) => container.querySelector(`[data-testid="${id}"]`);
    expect($("speedup")?.textContent).toBe("0.5× the sequential pace");
    expect($("cost-waited")?.textContent).toBe("5m 50s waiting for providers not counted");
    expect(speedupText(3)).toBe("3.0× faster than sequential");
  });

  it("shows no waiting part when nothing waited", async () => {
    vi.stubGlobal("fetch", async () => ({ ok: true, status: 200, text: async () => JSON.stringify({ id: "r7", status: "succeeded", summary: { ...retry, waited_seconds: 0 } }) }));
    act(() => root.render(<CostLine runId="r7" finished />));
    for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
    expect(container.querySelector('[data-testid="cost-waited"]')).toBeNull();
    expect(container.querySelector('[data-testid="speedup"]')?.textContent).toBe("9.8× faster than sequential");
  });
});

describe("the cost line of a run that did nothing", () => {
  it("shows no speedup with no sequential time or no item measured", async () => {
    // A run that failed before any item: the server still sent a ratio.
    const nothing: CostSummary = { ...retry, reused: undefined, wall_seconds: 0, sequential_seconds: 0, items_measured: 0, speedup: 0.5, llm_calls: 0, tokens: { prompt: 0, completion: 0, total: 0 } };
    vi.stubGlobal("fetch", async () => ({ ok: true, status: 200, text: async () => JSON.stringify({ id: "r6", status: "failed", summary: nothing }) }));
    act(() => root.render(<CostLine runId="r6" finished />));
    for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
    expect(container.querySelector('[data-testid="cost-wall"]')?.textContent).toBe("wall 0 ms");
    expect(container.querySelector('[data-testid="speedup"]')).toBeNull();
    expect(container.textContent).not.toContain("sequential pace");
  });

  it("keeps the speedup out when either the sequential time or the items are missing", () => {
    const base = { wall_seconds: 2, sequential_seconds: 20, items_measured: 10, speedup: 10 };
    expect(shownSpeedup(base)).toBe(10);
    expect(shownSpeedup({ ...base, sequential_seconds: 0 })).toBeNull();
    expect(shownSpeedup({ ...base, items_measured: 0 })).toBeNull();
    expect(shownSpeedup({ ...base, wall_seconds: 0 })).toBeNull();
    expect(shownSpeedup({ ...base, speedup: null })).toBeNull();
    expect(shownSpeedup(undefined)).toBeNull();
  });
});

describe("the cost line when the run ends", () => {
  afterEach(() => vi.useRealTimers());

  it("reads the summary again at once and once more shortly after, so the final view agrees", async () => {
    vi.useFakeTimers();
    // The server's rows trail the counters: 2,886 calls mid-run, 4,538 at the end, 5,000 a moment later.
    const answers = [2886, 4538, 5000];
    let calls = 0;
    vi.stubGlobal("fetch", async () => {
      const llm = answers[Math.min(calls, answers.length - 1)];
      calls += 1;
      return { ok: true, status: 200, text: async () => JSON.stringify({ id: "r5", status: "running", summary: { ...retry, reused: undefined, llm_calls: llm } }) };
    });
    const flush = async () => {
      for (let i = 0; i < 5; i += 1) await act(async () => await vi.advanceTimersByTimeAsync(0));
    };
    const tokens = () => container.querySelector('[data-testid="cost-tokens"]')?.textContent;
    act(() => root.render(<CostLine runId="r5" finished={false} />));
    await flush();
    expect(tokens()).toBe("1,500 tokens in 2886 LLM calls");
    // The run ends (a final status): no waiting for the next 3-second tick.
    act(() => root.render(<CostLine runId="r5" finished />));
    await flush();
    expect(calls).toBe(2);
    expect(tokens()).toBe("1,500 tokens in 4538 LLM calls");
    // ...and once more a moment later, when the last rows are written.
    await act(async () => await vi.advanceTimersByTimeAsync(COST_FINAL_REREADS_MS[0]));
    await flush();
    expect(calls).toBe(3);
    expect(tokens()).toBe("1,500 tokens in 5000 LLM calls");
    // Then it stops reading.
    await act(async () => await vi.advanceTimersByTimeAsync(60_000));
    expect(calls).toBe(2 + COST_FINAL_REREADS_MS.length);
  });

  it("reads a run opened already finished once", async () => {
    vi.useFakeTimers();
    let calls = 0;
    vi.stubGlobal("fetch", async () => {
      calls += 1;
      return { ok: true, status: 200, text: async () => JSON.stringify({ id: "r4", status: "succeeded", summary: retry }) };
    });
    act(() => root.render(<CostLine runId="r4" finished />));
    await act(async () => await vi.advanceTimersByTimeAsync(60_000));
    expect(calls).toBe(1);
  });
});
