import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BlockState, RunSummary } from "../types";
import { useRunStore } from "../store/runStore";
import { RunCounts, RunStatus } from "./BlockShell";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const T0 = "2025-01-01T00:00:00+00:00";
const run: RunSummary = {
  id: "r1", workflow: 1, workflow_version: 1, status: "partially_succeeded", trigger: "api",
  progress: { total: 20, succeeded: 18, failed: 2, running: 0, cancelled: 0, not_started: 0 }, error: "",
  created_at: T0, started_at: T0, finished_at: T0, duration: 1, last_seq: 9,
};

function block(status: BlockState["status"], over: Partial<BlockState>): BlockState {
  return { status, succeeded: 0, failed: 0, cancelled: 0, not_started: 0, running: 0, total: 0, ...over };
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
  useRunStore.getState().reset();
});

describe("a block's run state on the canvas", () => {
  it("paints the server's counters: a partly failed loop and its body block", () => {
    act(() => root.render(
      <>
        <div id="loop"><RunStatus id="loop" /><RunCounts id="loop" /></div>
        <div id="agent"><RunStatus id="agent" /><RunCounts id="agent" /></div>
        <div id="idle"><RunStatus id="idle" /><RunCounts id="idle" /></div>
      </>,
    ));
    expect(container.querySelector("#loop")?.textContent).toBe("idle");
    act(() => useRunStore.getState().applySnapshot({
      type: "snapshot", seq: 9, final: true, run, items: [], steps: [],
      blocks: {
        loop: block("partially_succeeded", { succeeded: 18, failed: 2, total: 20 }),
        agent: block("partially_succeeded", { succeeded: 15, failed: 2, not_started: 2, cancelled: 1, total: 20 }),
      },
    }));
    const counts = (id: string) =>
      Array.from(container.querySelectorAll(`#${id} [data-count]`)).map((el) => el.textContent);
    expect(container.querySelector("#loop .status-pill")?.textContent).toBe("partially succeeded");
    expect(counts("loop")).toEqual(["✓ 18", "✗ 2"]);
    // Never "cancelled" when most items succeeded; stopped ones (cancelled + never started) are ⊘.
    expect(container.querySelector("#agent .status-pill")?.textContent).toBe("partially succeeded");
    expect(counts("agent")).toEqual(["✓ 15", "✗ 2", "⊘ 3"]);
    expect(container.querySelector("#agent [data-testid=run-counts]")?.getAttribute("title")).toContain("2 not started");
    expect(container.querySelector("#idle [data-testid=run-counts]")).toBeNull();
  });

  it("says skipped for a step run_if skipped, which the server stores as succeeded", () => {
    act(() => root.render(
      <>
        <div id="posted"><RunStatus id="posted" /></div>
        <div id="notify"><RunStatus id="notify" /></div>
      </>,
    ));
    const step = (id: string, skipped?: boolean) => ({
      item_key: "", block_id: id, name: id, status: "succeeded" as const, error: "", attempts: skipped ? 0 : 1,
      started_at: T0, finished_at: T0, duration: 0, ...(skipped ? { skipped } : {}),
    });
    act(() => useRunStore.getState().applySnapshot({
      type: "snapshot", seq: 9, final: true, run, items: [],
      steps: [step("posted"), step("notify", true)],
      blocks: { posted: block("succeeded", { succeeded: 1, total: 1 }), notify: block("succeeded", { succeeded: 1, total: 1 }) },
    }));
    expect(container.querySelector("#posted .status-pill")?.textContent).toBe("succeeded");
    expect(container.querySelector("#notify .status-pill")?.textContent).toBe("skipped");
    expect(container.querySelector("#notify [data-status]")?.getAttribute("data-status")).toBe("skipped");
  });
});
