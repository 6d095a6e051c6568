import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RunSummary } from "../types";
import { canRetry, RetryFailedButton, retryLabel, RunLinks } from "./RetryFailed";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

function run(over: Partial<RunSummary> = {}): RunSummary {
  return {
    id: "aaaaaaaa-0000-0000-0000-000000000001", workflow: 1, workflow_version: 1, status: "partially_succeeded",
    trigger: "webhook", progress: { total: 100, succeeded: 90, failed: 10, running: 0, cancelled: 0, not_started: 0 },
    error: "", created_at: "", started_at: null, finished_at: null, duration: null, last_seq: 1, ...over,
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

describe("retry failed", () => {
  it("is offered for runs that ended with failures, never for a success or a run in flight", () => {
    expect(canRetry(run())).toBe(true);
    expect(canRetry(run({ status: "failed" }))).toBe(true);
    expect(canRetry(run({ status: "succeeded" }))).toBe(false);
    expect(canRetry(run({ status: "running" }))).toBe(false);
    act(() => root.render(<RetryFailedButton run={run({ status: "succeeded" })} onStarted={() => {}} onError={() => {}} />));
    expect(container.querySelector("[data-testid=retry-failed-button]")).toBeNull();
  });

  it("says how many items it retries and starts the linked run", async () => {
    const started = run({ id: "bbbbbbbb-0000-0000-0000-000000000002", status: "queued", retry_of: run().id });
    const fetchMock = vi.spyOn(globalThis, "fetch").mockResolvedValue(
      new Response(JSON.stringify(started), { status: 201, headers: { "Content-Type": "application/json" } }),
    );
    const onStarted = vi.fn();
    act(() => root.render(<RetryFailedButton run={run()} onStarted={onStarted} onError={() => {}} />));
    const button = container.querySelector<HTMLButtonElement>("[data-testid=retry-failed-button]")!;
    expect(button.textContent).toBe("Retry 10 failed");
    await act(async () => button.click());
    expect(String(fetchMock.mock.calls[0][0])).toContain(`/api/runs/${run().id}/retry-failed/`);
    expect(onStarted).toHaveBeenCalledWith(started);
  });

  it("names what it retries truthfully: failed, cancelled and never started are not all failed", () => {
    const progress = (failed: number, cancelled: number, not_started: number) => ({
      total: 1000, succeeded: 1000 - failed - cancelled - not_started, failed, running: 0, cancelled, not_started,
    });
    expect(retryLabel(progress(3, 0, 0))).toEqual({ label: "Retry 3 failed", parts: "3 failed" });
    expect(retryLabel(progress(0, 10, 0)).label).toBe("Retry 10 cancelled");
    expect(retryLabel(progress(0, 0, 736)).label).toBe("Retry 736 not started");
    expect(retryLabel(progress(0, 0, 0)).label).toBe("Retry from the failed step");
    // The tester's cancelled run: 0 failed, 10 cancelled, 736 never started.
    const cancelled = run({ status: "cancelled", progress: progress(0, 10, 736) });
    act(() => root.render(<RetryFailedButton run={cancelled} onStarted={() => {}} onError={() => {}} />));
    const button = container.querySelector<HTMLButtonElement>("[data-testid=retry-failed-button]")!;
    expect(button.textContent).toBe("Retry 746 unfinished");
    expect(button.title).toContain("10 cancelled, 736 not started");
    expect(button.textContent).not.toContain("failed");
  });

  it("shows the link both ways", () => {
    act(() => root.render(<RunLinks run={run({ retry_of: "cccccccc-1", retries: ["dddddddd-2", "eeeeeeee-3"] })} />));
    expect(container.textContent).toBe(" · retry of cccccccc · retried by dddddddd, eeeeeeee");
  });
});
