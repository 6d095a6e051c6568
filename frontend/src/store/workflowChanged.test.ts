// `workflow.changed` on the workflow socket: another tab's save or publish reaches this tab's
// header at once (docs/run-protocol.md), without touching what this tab edits.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { headerStatus } from "../versions/liveStatus";
import { useWorkflowRuns } from "./workflowRuns";

class FakeSocket {
  static last: FakeSocket | null = null;
  static CLOSED = 3;
  static CLOSING = 2;
  readyState = 1;
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number }) => void) | null = null;
  constructor(public url: string) {
    FakeSocket.last = this;
  }
  close() {
    this.readyState = 3;
  }
  send(msg: unknown) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
}

describe("workflow.changed", () => {
  beforeEach(() => {
    vi.stubGlobal("WebSocket", FakeSocket);
  });
  afterEach(() => {
    useWorkflowRuns.getState().disconnect();
    vi.unstubAllGlobals();
  });

  it("keeps the numbers the socket tells, from hello and every save or publish", () => {
    const seen: string[] = [];
    useWorkflowRuns.getState().connect(7, (msg) => seen.push(msg.type));
    const ws = FakeSocket.last!;
    expect(ws.url).toMatch(/\/ws\/workflows\/7\/$/);
    ws.send({ type: "hello", last_run: null, version: 4, published_version: 1, draft_differs: true });
    expect(useWorkflowRuns.getState().numbers).toEqual({ workflow: 7, version: 4, published_version: 1, draft_differs: true });
    ws.send({ type: "workflow.changed", version: 4, published_version: 4, draft_differs: false });
    expect(useWorkflowRuns.getState().numbers).toEqual({ workflow: 7, version: 4, published_version: 4, draft_differs: false });
    expect(seen).toEqual(["hello", "workflow.changed"]);
    // Runs are untouched by it.
    expect(useWorkflowRuns.getState().lastRun).toBeNull();
  });

  it("the latest wins: this tab's own answer after a notice, and a notice after it", () => {
    useWorkflowRuns.getState().connect(7);
    const ws = FakeSocket.last!;
    ws.send({ type: "workflow.changed", version: 5, published_version: 4, draft_differs: true });
    useWorkflowRuns.getState().noteNumbers(7, { version: 6, published_version: 4, draft_differs: true });
    expect(useWorkflowRuns.getState().numbers?.version).toBe(6);
    ws.send({ type: "workflow.changed", version: 6, published_version: 6, draft_differs: false });
    expect(useWorkflowRuns.getState().numbers?.published_version).toBe(6);
  });

  it("a reconnect to the same workflow keeps the numbers; another workflow forgets them", () => {
    useWorkflowRuns.getState().noteNumbers(7, { version: 2, published_version: 1, draft_differs: true });
    useWorkflowRuns.getState().connect(7);
    expect(useWorkflowRuns.getState().numbers?.version).toBe(2);
    useWorkflowRuns.getState().connect(8);
    expect(useWorkflowRuns.getState().numbers).toBeNull();
  });
});

describe("headerStatus", () => {
  const editing = { version: 4, published_version: 1, draft_differs: true };

  it("shows the live version another tab published at once", () => {
    expect(headerStatus(editing, null).live.text).toBe("v1 live · draft v4 differs");
    const after = headerStatus(editing, { version: 4, published_version: 4, draft_differs: false });
    expect(after).toEqual({ live: { text: "v4 live", kind: "live" }, elsewhere: null });
  });

  it("says a newer draft was saved elsewhere, and that the next save merges", () => {
    const after = headerStatus({ version: 4, published_version: 4, draft_differs: false }, { version: 5, published_version: 4, draft_differs: true });
    expect(after.live).toEqual({ text: "v4 live · draft v5 differs", kind: "differs" });
    expect(after.elsewhere).toBe("v5 saved elsewhere — your next save merges");
    // Not while this tab saves (its own save's notice may come before its answer).
    expect(headerStatus(editing, { version: 5, published_version: 4, draft_differs: true }, true).elsewhere).toBeNull();
    // The same version as this tab's: nothing elsewhere.
    expect(headerStatus(editing, { ...editing }).elsewhere).toBeNull();
  });
});
