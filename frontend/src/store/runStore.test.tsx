import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { BlockState, RunDeltaMessage, RunSnapshotMessage, RunSummary, StepState } from "../types";
import { ITEM_WINDOW, statusLabel, useRunStore, type RunItem } from "./runStore";
import { followDecision, KEPT_RUNS, useWorkflowRuns } from "./workflowRuns";

const T0 = "2025-01-01T00:00:00+00:00";

function run(over: Partial<RunSummary> = {}): RunSummary {
  return {
    id: "r1", workflow: 1, workflow_version: 3, status: "running", trigger: "api",
    progress: { total: 3, succeeded: 0, failed: 0, running: 0, cancelled: 0, not_started: 0 }, error: "",
    created_at: T0, started_at: T0, finished_at: null, duration: null, last_seq: 10, ...over,
  };
}

function item(index: number, over: Partial<RunItem> = {}): RunItem {
  return {
    key: `Loop[${index}]`, loop_block: "loop", parent_key: "", index, status: "running", error: "",
    failed_block: "", started_at: T0, finished_at: null, duration: null, ...over,
  };
}

function step(itemKey: string, blockId: string, status: StepState["status"], over: Partial<StepState> = {}): StepState {
  return {
    item_key: itemKey, block_id: blockId, name: blockId, status, error: "", attempts: 1,
    started_at: T0, finished_at: null, duration: null, ...over,
  };
}

function block(status: BlockState["status"], over: Partial<BlockState> = {}): BlockState {
  return { status, succeeded: 0, failed: 0, cancelled: 0, not_started: 0, running: 0, total: 0, ...over };
}

function snapshot(over: Partial<RunSnapshotMessage> = {}): RunSnapshotMessage {
  return {
    type: "snapshot", seq: 10, final: false, run: run(),
    items: [item(0), item(1), item(2)],
    steps: [step("", "trigger", "succeeded"), step("", "loop", "running")],
    blocks: {
      trigger: block("succeeded", { succeeded: 1, total: 1 }),
      loop: block("running", { running: 3, total: 3 }),
      agent: block("running", { running: 3, total: 3 }),
    },
    loops: { loop: { total: 3, succeeded: 0, failed: 0, cancelled: 0, not_started: 0, running: 3, max_concurrent: 10, limit: 10, peak_running: 3 } },
    ...over,
  };
}

function delta(seq: number, over: Partial<RunDeltaMessage> = {}): RunDeltaMessage {
  return { type: "delta", seq, run: { last_seq: seq }, items: [], steps: [], ...over };
}

const store = () => useRunStore.getState();

beforeEach(() => store().reset());

describe("applySnapshot", () => {
  it("takes the server's block states, loop counters, top-level steps and item window", () => {
    store().applySnapshot(snapshot());
    const s = store();
    expect(s.runId).toBe("r1");
    expect(s.seq).toBe(10);
    expect(s.final).toBe(false);
    expect(s.run?.status).toBe("running");
    expect(Object.keys(s.items)).toEqual(["Loop[0]", "Loop[1]", "Loop[2]"]);
    expect(s.steps.loop.status).toBe("running");
    expect(s.blocks.agent).toEqual(block("running", { running: 3, total: 3 }));
    expect(s.loops.loop.peak_running).toBe(3);
  });
});

describe("applyDelta", () => {
  it("replaces whole block and loop entries and patches items and the run's counters", () => {
    store().applySnapshot(snapshot());
    const trigger = store().blocks.trigger;
    store().applyDelta(delta(11, {
      run: { last_seq: 11, progress: { total: 3, succeeded: 2, failed: 1, running: 0, cancelled: 0, not_started: 0 } },
      blocks: { agent: block("partially_succeeded", { succeeded: 2, failed: 1, total: 3 }) },
      items: [item(2, { status: "failed", error: "boom" }), item(1, { status: "succeeded" })],
    }));
    const s = store();
    expect(s.blocks.agent.status).toBe("partially_succeeded");
    expect(s.blocks.trigger).toBe(trigger); // untouched: same object, no re-render
    expect(s.run?.progress).toMatchObject({ succeeded: 2, failed: 1 });
    expect(s.items["Loop[2]"]).toMatchObject({ status: "failed", error: "boom" });
    // Newest first on the wire, kept newest last.
    expect(Object.keys(s.items).slice(-2)).toEqual(["Loop[1]", "Loop[2]"]);
    expect(s.itemsVersion).toBeGreaterThan(1);
  });

  it("tells the item table to re-read its rows when only a loop's counters moved", () => {
    // A loop spread over workers: the run's deltas carry its counts, not its items.
    store().applySnapshot(snapshot());
    const before = store().itemsVersion;
    store().applyDelta(delta(11, {
      loops: { loop: { total: 3, succeeded: 1, failed: 0, cancelled: 0, not_started: 0, running: 2, max_concurrent: 10, limit: 10, peak_running: 3 } },
    }));
    expect(store().itemsVersion).toBe(before + 1);
    store().applyDelta(delta(12, { run: { last_seq: 12 } }));
    expect(store().itemsVersion).toBe(before + 1); // nothing about items: no re-read
  });

  it("drops stale and duplicate deltas", () => {
    store().applySnapshot(snapshot());
    store().applyDelta(delta(12, { items: [item(0, { status: "succeeded" })] }));
    store().applyDelta(delta(12, { items: [item(0, { status: "failed" })] }));
    store().applyDelta(delta(9, { items: [item(0, { status: "failed" })] }));
    expect(store().items["Loop[0]"].status).toBe("succeeded");
    expect(store().seq).toBe(12);
  });

  it("never takes a final status from a delta (the final snapshot brings it)", () => {
    store().applySnapshot(snapshot());
    store().applyDelta(delta(11, { run: { last_seq: 11, status: "succeeded" } }));
    expect(store().run?.status).toBe("running");
  });

  it("bumps the items version for items the frame left out", () => {
    store().applySnapshot(snapshot());
    const v = store().itemsVersion;
    store().applyDelta(delta(11, { items_omitted: 800 }));
    expect(store().itemsVersion).toBe(v + 1);
    store().applyDelta(delta(12));
    expect(store().itemsVersion).toBe(v + 1);
  });

  it("keeps at most ITEM_WINDOW items, whatever the run's N", () => {
    store().applySnapshot(snapshot());
    for (let seq = 11; seq < 11 + 100; seq += 1) {
      const items = Array.from({ length: 50 }, (_, i) => item((seq - 11) * 50 + i, { status: "succeeded" })).reverse();
      store().applyDelta(delta(seq, { items }));
    }
    const keys = Object.keys(store().items);
    expect(keys).toHaveLength(ITEM_WINDOW);
    expect(keys.at(-1)).toBe("Loop[4999]");
  });
});

describe("final snapshot", () => {
  it("replaces state and ignores later deltas", () => {
    store().applySnapshot(snapshot());
    store().applyDelta(delta(11, { items: [{ key: "Loop[9]", status: "running" }] }));
    store().applySnapshot(snapshot({
      seq: 20, final: true,
      run: run({ status: "partially_succeeded", last_seq: 20, progress: { total: 2, succeeded: 1, failed: 1, running: 0 } }),
      items: [item(0, { status: "succeeded" }), item(1, { status: "failed", error: "x" })],
      blocks: { loop: block("partially_succeeded", { succeeded: 1, failed: 1, total: 2 }) },
    }));
    const s = store();
    expect(s.final).toBe(true);
    expect(s.seq).toBe(20);
    expect(s.run?.status).toBe("partially_succeeded");
    expect(Object.keys(s.items)).toEqual(["Loop[0]", "Loop[1]"]);
    expect(s.blocks).toEqual({ loop: block("partially_succeeded", { succeeded: 1, failed: 1, total: 2 }) });
    expect(statusLabel(s.blocks.loop.status)).toBe("partially succeeded");

    store().applyDelta(delta(21, { items: [{ key: "Loop[0]", status: "failed" }] }));
    expect(store().items["Loop[0]"].status).toBe("succeeded");
  });
});

describe("following runs of the workflow", () => {
  const started = run({ id: "r2", trigger: "webhook", status: "queued" });

  it("follows a new run unless the user looks at another one", () => {
    expect(followDecision({ runId: null, pinned: false, final: false, status: null }, started)).toBe("follow");
    expect(followDecision({ runId: "r2", pinned: false, final: false, status: "running" }, started)).toBe("already");
    // The last run ended: show the new one.
    expect(followDecision({ runId: "r1", pinned: false, final: true, status: "succeeded" }, started)).toBe("follow");
    // Opened from the History, or still running: offer it instead.
    expect(followDecision({ runId: "r1", pinned: true, final: true, status: "failed" }, started)).toBe("notify");
    expect(followDecision({ runId: "r1", pinned: false, final: false, status: "running" }, started)).toBe("notify");
  });

  it("keeps the latest summary of at most KEPT_RUNS runs and bumps the version on start and end", () => {
    const w = useWorkflowRuns.getState();
    w.heard({ type: "hello", last_run: run() });
    expect(useWorkflowRuns.getState().lastRun?.id).toBe("r1");
    const v = useWorkflowRuns.getState().version;
    w.heard({ type: "run.started", run: started });
    w.heard({ type: "run.progress", run: { ...started, status: "running" } });
    expect(useWorkflowRuns.getState().version).toBe(v + 1);
    expect(useWorkflowRuns.getState().runs.r2.status).toBe("running");
    w.heard({ type: "run.ended", run: { ...started, status: "succeeded" } });
    expect(useWorkflowRuns.getState().version).toBe(v + 2);
    expect(useWorkflowRuns.getState().lastRun?.status).toBe("succeeded");
    for (let i = 0; i < KEPT_RUNS + 10; i += 1) {
      w.heard({ type: "run.started", run: run({ id: `x${i}`, created_at: `2025-01-02T00:00:${String(i).padStart(2, "0")}Z` }) });
    }
    expect(Object.keys(useWorkflowRuns.getState().runs)).toHaveLength(KEPT_RUNS);
    expect(useWorkflowRuns.getState().runs.x59).toBeDefined();
    expect(useWorkflowRuns.getState().lastRun?.id).toBe("x59");
  });
});

// A fake WebSocket that records instances, so connect() can be driven by hand.
class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static instances: FakeSocket[] = [];
  readyState = 0;
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: ((e?: { code: number }) => void) | null = null;
  constructor(public url: string) {
    FakeSocket.instances.push(this);
  }
  refuse(code: number) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  send(msg: unknown) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  close() {
    this.readyState = 3;
    this.onclose?.();
  }
}

describe("connect", () => {
  beforeEach(() => {
    FakeSocket.instances = [];
    vi.stubGlobal("WebSocket", FakeSocket);
    vi.useFakeTimers();
  });
  afterEach(() => {
    store().reset();
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it("follows the run, reconnects from a snapshot after an early close, stops after the final one", () => {
    store().connect("r1");
    expect(FakeSocket.instances).toHaveLength(1);
    const first = FakeSocket.instances[0];
    expect(first.url).toBe(`ws://${location.host}/ws/runs/r1/`);
    expect(store().connection).toBe("connecting");
    first.open();
    first.send(snapshot());
    first.send(delta(11, { items: [{ key: "Loop[0]", status: "succeeded" }] }));
    expect(store().items["Loop[0]"].status).toBe("succeeded");
    expect(store().connection).toBe("open");

    first.close();
    expect(store().connection).toBe("reconnecting");
    vi.advanceTimersByTime(1000);
    expect(FakeSocket.instances).toHaveLength(2);
    const second = FakeSocket.instances[1];
    second.open();
    second.send(snapshot({ seq: 30, final: true, run: run({ status: "succeeded", last_seq: 30 }), items: [item(0, { status: "succeeded" })] }));
    expect(store().final).toBe(true);
    expect(Object.keys(store().items)).toEqual(["Loop[0]"]);
    second.close();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.instances).toHaveLength(2);
    expect(store().connection).toBe("closed");
  });

  it("gives up on a refused run (4404)", () => {
    store().connect("nope");
    FakeSocket.instances[0].refuse(4404);
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.instances).toHaveLength(1);
    expect(store().connection).toBe("failed");
  });

  it("disconnect stops reconnecting", () => {
    store().connect("r2");
    store().disconnect();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.instances).toHaveLength(1);
    expect(store().connection).toBe("idle");
  });
});
