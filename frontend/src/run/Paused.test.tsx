import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ProviderBreaker, RunSummary } from "../types";
import { PausedProviders, pausedProviders } from "./Paused";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const OPEN: ProviderBreaker = {
  state: "open",
  mode: "manual",
  reason: "9 of 20 calls failed",
  message: "paused: api.clearbit.com breaker open: 9 of 20 calls failed (manual: waits for Resume)",
  since: 1,
};

function run(over: Partial<RunSummary> = {}): RunSummary {
  return {
    id: "aaaaaaaa-0000-0000-0000-000000000001", workflow: 1, workflow_version: 1, status: "running",
    trigger: "editor", progress: { total: 300, succeeded: 90, failed: 0, running: 10, cancelled: 0, not_started: 0 },
    error: "", created_at: "", started_at: null, finished_at: null, duration: null, last_seq: 1,
    providers: { "api.clearbit.com": { limit: null, breaker: OPEN }, "api.openai.com": { limit: 4 } },
    ...over,
  };
}

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
  vi.restoreAllMocks();
});

describe("paused by a provider's breaker", () => {
  it("lists the open or probing breakers of a run in flight only", () => {
    expect(pausedProviders(run()).map((p) => [p.provider, p.mode, p.reason])).toEqual([
      ["api.clearbit.com", "manual", "9 of 20 calls failed"],
    ]);
    expect(pausedProviders(run({ status: "succeeded" }))).toEqual([]);
    const closed = run({ providers: { "api.clearbit.com": { breaker: { ...OPEN, state: "closed" } } } });
    expect(pausedProviders(closed)).toEqual([]);
    act(() => root.render(<PausedProviders run={closed} onError={() => {}} />));
    expect(container.querySelector("[data-testid=run-paused]")).toBeNull();
  });

  it("drops a breaker that gave up on its provider: the run waits for it no more", () => {
    const message = "api.clearbit.com unavailable for 900 s (breaker open: a probe call failed (5xx)); not retried";
    const gaveUp = run({ providers: { "api.clearbit.com": { breaker: { ...OPEN, mode: "auto", state: "gave_up", message } } } });
    expect(pausedProviders(gaveUp)).toEqual([]);
    act(() => root.render(<PausedProviders run={gaveUp} onError={() => {}} />));
    expect(container.querySelector("[data-testid=run-paused]")).toBeNull();
  });

  it("shows the provider and the reason, and Resume asks the server", async () => {
    const resumed = run({ providers: { "api.clearbit.com": { breaker: { ...OPEN, state: "closed", reason: "resumed" } } } });
    const fetchMock = vi.spyOn(globalThis, "fetch").mockResolvedValue(
      new Response(JSON.stringify(resumed), { status: 200, headers: { "Content-Type": "application/json" } }),
    );
    act(() => root.render(<PausedProviders run={run()} onError={() => {}} />));
    expect(container.querySelector("[data-testid=paused-reason]")!.textContent).toBe(
      "api.clearbit.com: 9 of 20 calls failed · waits for Resume",
    );
    await act(async () => container.querySelector<HTMLButtonElement>("[data-testid=resume-provider-button]")!.click());
    const [url, init] = fetchMock.mock.calls[0];
    expect(String(url)).toContain(`/api/runs/${run().id}/resume-provider/`);
    expect(JSON.parse(String((init as RequestInit).body))).toEqual({ provider: "api.clearbit.com" });
  });
});
