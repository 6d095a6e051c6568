import { ReactFlowProvider } from "@xyflow/react";
import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BlockState, RunSummary } from "../types";
import { useRunStore } from "../store/runStore";
import { BlockShell, RunCounts, RunStatus, type BlockNodeProps } from "./BlockShell";
import { httpSummary } from "./HttpNode";
import { LoopNode } from "./LoopNode";

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

function nodeProps(id: string, name: string, blockType: string, parentId?: string): BlockNodeProps {
  return {
    id, type: blockType, parentId, selected: false, dragging: false, zIndex: 0, selectable: true, deletable: true,
    draggable: true, isConnectable: true, positionAbsoluteX: 0, positionAbsoluteY: 0,
    data: { blockType, name, config: {}, extra: {} },
  };
}

describe("a block on the canvas", () => {
  const finished = (blocks: Record<string, BlockState>) =>
    act(() => useRunStore.getState().applySnapshot({ type: "snapshot", seq: 9, final: true, run, items: [], steps: [], blocks }));

  it("titles it with its name (a long one ellipsised, whole in its tooltip), its type and summary under it", () => {
    const name = "enrich_the_lead_with_clearbit_company_data";
    act(() => root.render(
      <ReactFlowProvider>
        <BlockShell {...nodeProps("b1", name, "http", "loop")} summary="GET api.example.com/x" />
      </ReactFlowProvider>,
    ));
    const head = container.querySelector(".block-head");
    expect(head?.querySelector(".block-name")?.textContent).toBe(name);
    expect(head?.querySelector(".block-name")?.getAttribute("title")).toBe(name);
    const sub = container.querySelector(".block-sub");
    expect(sub?.querySelector(".block-label")?.textContent).toBe("http");
    expect(sub?.querySelector(".block-summary")?.getAttribute("title")).toBe("GET api.example.com/x");
    // Nothing ran: no run line (no "idle" on every block).
    expect(container.querySelector("[data-testid=block-run]")).toBeNull();
    expect(container.querySelector(".status-pill")).toBeNull();
  });

  it("shows a run's counters and state word on one line under the summary, and the loop's in its header", () => {
    act(() => root.render(
      <ReactFlowProvider>
        <LoopNode {...nodeProps("loop", "loop", "loop")} />
        <BlockShell {...nodeProps("agent", "agent", "agent", "loop")} summary="" />
        <BlockShell {...nodeProps("slack", "slack", "slack")} summary="" />
      </ReactFlowProvider>,
    ));
    expect(container.querySelector("[data-block-id=loop] .status-pill")).toBeNull();
    finished({
      loop: block("partially_succeeded", { succeeded: 18, failed: 2, total: 20 }),
      agent: block("partially_succeeded", { succeeded: 18, failed: 2, total: 20 }),
      slack: block("succeeded", { succeeded: 1, total: 1 }),
    });
    const loopHead = container.querySelector("[data-block-id=loop] .loop-head");
    expect(loopHead?.querySelector(".status-pill")?.textContent).toBe("partially succeeded");
    expect(loopHead?.querySelector("[data-testid=run-counts]")?.textContent).toBe("✓ 18✗ 2");
    const agentRun = container.querySelector("[data-block-id=agent] [data-testid=block-run]");
    expect(Array.from(agentRun?.children ?? []).map((el) => el.className)).toEqual(["run-counts", "run-status"]);
    expect(agentRun?.querySelector(".status-pill")?.textContent).toBe("partially succeeded");
    // A block outside a loop runs once: its state word, no counters.
    const slackRun = container.querySelector("[data-block-id=slack] [data-testid=block-run]");
    expect(slackRun?.textContent).toBe("succeeded");
    expect(slackRun?.querySelector("[data-testid=run-counts]")).toBeNull();
  });
});

describe("an HTTP block's summary", () => {
  it("leaves https:// out and keeps a plain http:// in view", () => {
    expect(httpSummary({ method: "POST", url: "https://api.clearbit.com/v2/x" })).toBe("POST api.clearbit.com/v2/x");
    expect(httpSummary({ url: "http://intranet/x" })).toBe("GET http://intranet/x");
    expect(httpSummary({})).toBe("");
  });
});
