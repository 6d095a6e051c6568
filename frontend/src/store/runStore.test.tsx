import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RunDeltaMessage, RunSnapshotMessage, RunSummary, StepState } from "../types";
import { IDLE_BLOCK, deriveBlocks, stepKey, useRunStore, type RunItem } from "./runStore";

const T0 = "2025-01-01T00:00:00+00:00";

function run(over: Partial<RunSummary> = {}): RunSummary {
  return {
    id: "r1", workflow: 1, workflow_version: 3, status: "running", trigger: "manual",
    progress: { total: 3, succeeded: 0, failed: 0, running: 0 }, error: "",
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

function snapshot(over: Partial<RunSnapshotMessage> = {}): RunSnapshotMessage {
  return {
    type: "snapshot", seq: 10, final: false, run: run(),
    items: [item(0), item(1), item(2)],
    steps: [step("", "trigger", "succeeded"), step("", "loop", "running"), step("Loop[0]", "agent", "running")],
    ...over,
  };
}

function delta(seq: number, over: Partial<RunDeltaMessage> = {}): RunDeltaMessage {
  return { type: "delta", seq, run: { last_seq: seq }, items: [], steps: [], ...over };
}

const store = () => useRunStore.getState();

beforeEach(() => store().reset());

describe("applySnapshot", () => {
  it("loads run, items, steps and derives blocks", () => {
    store().applySnapshot(snapshot());
    const s = store();
    expect(s.runId).toBe("r1");
    expect(s.seq).toBe(10);
    expect(s.final).toBe(false);
    expect(s.run?.status).toBe("running");
    expect(Object.keys(s.items)).toEqual(["Loop[0]", "Loop[1]", "Loop[2]"]);
    expect(s.steps[stepKey("Loop[0]", "agent")].status).toBe("running");
    expect(s.blocks.trigger).toEqual({ status: "succeeded", running: 0, succeeded: 1, failed: 0, cancelled: 0 });
    expect(s.blocks.loop.status).toBe("running");
    expect(s.blocks.agent).toEqual({ status: "running", running: 1, succeeded: 0, failed: 0, cancelled: 0 });
  });
});

describe("applyDelta", () => {
  it("applies deltas in order", () => {
    store().applySnapshot(snapshot());
    store().applyDelta(delta(11, {
      run: { total: 3, succeeded: 1, failed: 0, running: 2, last_seq: 11 },
      items: [{ key: "Loop[0]", status: "succeeded", finished_at: T0, duration: 1.5 }],
      steps: [{ item_key: "Loop[0]", block_id: "agent", status: "succeeded", attempts: 2 }],
    }));
    store().applyDelta(delta(12, {
      run: { status: "succeeded", total: 3, succeeded: 3, failed: 0, running: 0, last_seq: 12, finished_at: T0 },
      items: [{ key: "Loop[1]", status: "succeeded" }, { key: "Loop[2]", status: "succeeded" }],
      steps: [{ item_key: "", block_id: "loop", status: "succeeded" }],
    }));
    const s = store();
    expect(s.seq).toBe(12);
    expect(s.run?.status).toBe("succeeded");
    expect(s.run?.progress).toEqual({ total: 3, succeeded: 3, failed: 0, running: 0 });
    expect(s.run?.last_seq).toBe(12);
    expect(s.run?.finished_at).toBe(T0);
    expect(Object.values(s.items).map((i) => i.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    expect(s.steps[stepKey("Loop[0]", "agent")]).toMatchObject({ status: "succeeded", attempts: 2, name: "agent" });
    expect(s.blocks.agent).toEqual({ status: "succeeded", running: 0, succeeded: 1, failed: 0, cancelled: 0 });
  });

  it("drops stale and duplicate deltas", () => {
    store().applySnapshot(snapshot());
    store().applyDelta(delta(9, { items: [{ key: "Loop[0]", status: "failed" }] }));
    store().applyDelta(delta(10, { items: [{ key: "Loop[0]", status: "failed" }] }));
    expect(store().items["Loop[0]"].status).toBe("running");
    expect(store().seq).toBe(10);

    store().applyDelta(delta(11, { steps: [{ item_key: "Loop[1]", block_id: "agent", status: "running" }] }));
    const afterFirst = store();
    store().applyDelta(delta(11, { steps: [{ item_key: "Loop[1]", block_id: "agent", status: "running" }] }));
    expect(store().blocks.agent.running).toBe(2);
    expect(store()).toBe(afterFirst);
  });

  it("merges partial item and step rows by key", () => {
    store().applySnapshot(snapshot({ items: [item(0, { data: { name: "Ada" } })] }));
    store().applyDelta(delta(11, { items: [{ key: "Loop[0]", status: "failed", error: "boom", failed_block: "agent" }] }));
    expect(store().items["Loop[0]"]).toMatchObject({
      key: "Loop[0]", index: 0, loop_block: "loop", started_at: T0, data: { name: "Ada" },
      status: "failed", error: "boom", failed_block: "agent",
    });
    // A row first seen in a delta gets defaults for what it does not say.
    store().applyDelta(delta(12, { items: [{ key: "Loop[5]", index: 5, loop_block: "loop" }] }));
    expect(store().items["Loop[5]"]).toMatchObject({ key: "Loop[5]", index: 5, status: "running", error: "" });
  });

  it("keeps untouched blocks' identity so per-block selectors do not re-render", () => {
    store().applySnapshot(snapshot());
    const trigger = store().blocks.trigger;
    store().applyDelta(delta(11, { steps: [{ item_key: "Loop[1]", block_id: "agent", status: "running" }] }));
    expect(store().blocks.trigger).toBe(trigger);
  });
});

describe("block derivation inside a loop", () => {
  it("counts a loop body block over its items", () => {
    store().applySnapshot(snapshot({ steps: [] }));
    expect(store().blocks.agent).toBeUndefined();
    store().applyDelta(delta(11, {
      steps: [0, 1, 2].map((i) => ({ item_key: `Loop[${i}]`, block_id: "agent", name: "agent", status: "running" as const })),
    }));
    expect(store().blocks.agent).toEqual({ status: "running", running: 3, succeeded: 0, failed: 0, cancelled: 0 });

    store().applyDelta(delta(12, {
      steps: [
        { item_key: "Loop[0]", block_id: "agent", status: "succeeded" },
        { item_key: "Loop[1]", block_id: "agent", status: "failed", error: "429" },
        { item_key: "Loop[2]", block_id: "agent", status: "retrying", attempts: 1 },
      ],
    }));
    // Still running while one item is retrying, even though one failed.
    expect(store().blocks.agent).toEqual({ status: "running", running: 1, succeeded: 1, failed: 1, cancelled: 0 });

    store().applyDelta(delta(13, { steps: [{ item_key: "Loop[2]", block_id: "agent", status: "succeeded" }] }));
    expect(store().blocks.agent).toEqual({ status: "failed", running: 0, succeeded: 2, failed: 1, cancelled: 0 });

    // Incremental counts agree with a full derivation.
    expect(deriveBlocks(store().steps, store().items)).toEqual(store().blocks);
  });

  it("reports succeeded when every item succeeded and idle when nothing ran", () => {
    store().applySnapshot(snapshot({
      steps: [step("Loop[0]", "slack", "succeeded"), step("Loop[1]", "slack", "succeeded")],
    }));
    expect(store().blocks.slack).toEqual({ status: "succeeded", running: 0, succeeded: 2, failed: 0, cancelled: 0 });
    expect(store().blocks.never ?? IDLE_BLOCK).toEqual({ status: "idle", running: 0, succeeded: 0, failed: 0, cancelled: 0 });
  });
});

describe("cancelled steps and running loops", () => {
  it("shows a block whose steps were cancelled as cancelled, not idle", () => {
    store().applySnapshot(snapshot({
      steps: [step("", "loop", "cancelled"), step("Loop[0]", "agent", "succeeded"), step("Loop[1]", "agent", "cancelled"), step("", "slack", "cancelled")],
    }));
    expect(store().blocks.agent).toEqual({ status: "cancelled", running: 0, succeeded: 1, failed: 0, cancelled: 1 });
    expect(store().blocks.slack.status).toBe("cancelled");
    expect(store().blocks.loop.status).toBe("cancelled");
    // A body block that succeeded for the items it ran, in a cancelled loop, did not finish either.
    store().applyDelta(delta(10.5, { steps: [{ item_key: "Loop[0]", block_id: "store", status: "succeeded" }] }));
    expect(store().blocks.store).toEqual({ status: "cancelled", running: 0, succeeded: 1, failed: 0, cancelled: 0 });
    // A failure still wins over cancellations.
    store().applyDelta(delta(11, { steps: [{ item_key: "Loop[2]", block_id: "agent", status: "failed" }] }));
    expect(store().blocks.agent).toEqual({ status: "failed", running: 0, succeeded: 1, failed: 1, cancelled: 1 });
    expect(deriveBlocks(store().steps, store().items)).toEqual(store().blocks);
  });

  it("keeps a loop's body blocks running until the loop's own step finishes", () => {
    store().applySnapshot(snapshot({
      steps: [step("", "loop", "running"), step("Loop[0]", "agent", "succeeded"), step("Loop[1]", "agent", "succeeded")],
    }));
    // Every started item is done, but the loop still has items to start.
    expect(store().blocks.agent).toEqual({ status: "running", running: 0, succeeded: 2, failed: 0, cancelled: 0 });
    const trigger = store().blocks.loop;
    store().applyDelta(delta(11, { steps: [{ item_key: "Loop[2]", block_id: "agent", status: "succeeded" }] }));
    expect(store().blocks.agent.status).toBe("running");
    expect(store().blocks.loop).toBe(trigger);
    store().applyDelta(delta(12, { steps: [{ item_key: "", block_id: "loop", status: "succeeded" }] }));
    expect(store().blocks.agent).toEqual({ status: "succeeded", running: 0, succeeded: 3, failed: 0, cancelled: 0 });
    expect(deriveBlocks(store().steps, store().items)).toEqual(store().blocks);
  });

  it("holds nested loop bodies running while the outer loop runs", () => {
    store().applySnapshot(snapshot({
      items: [
        item(0),
        { ...item(0), key: "Loop[0]/Inner[0]", loop_block: "inner", parent_key: "Loop[0]", status: "succeeded" },
      ],
      steps: [
        step("", "loop", "running"),
        step("Loop[0]", "inner", "succeeded"),
        step("Loop[0]/Inner[0]", "deep", "succeeded"),
      ],
    }));
    expect(store().blocks.inner.status).toBe("running");
    expect(store().blocks.deep.status).toBe("running");
    store().applyDelta(delta(11, { steps: [{ item_key: "", block_id: "loop", status: "succeeded" }] }));
    expect(store().blocks.inner.status).toBe("succeeded");
    expect(store().blocks.deep.status).toBe("succeeded");
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
      steps: [step("Loop[0]", "agent", "succeeded"), step("Loop[1]", "agent", "failed")],
    }));
    const s = store();
    expect(s.final).toBe(true);
    expect(s.seq).toBe(20);
    expect(s.run?.status).toBe("partially_succeeded");
    expect(Object.keys(s.items)).toEqual(["Loop[0]", "Loop[1]"]);
    expect(s.blocks).toEqual({ agent: { status: "failed", running: 0, succeeded: 1, failed: 1, cancelled: 0 } });

    store().applyDelta(delta(21, { items: [{ key: "Loop[0]", status: "failed" }] }));
    expect(store().items["Loop[0]"].status).toBe("succeeded");
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
