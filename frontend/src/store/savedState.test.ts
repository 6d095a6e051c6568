import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { GraphJson } from "../types";
import { useGraphStore } from "./graphStore";

const store = () => useGraphStore.getState();
const GRAPH = {
  blocks: [
    { id: "a", type: "http", name: "a", parent: null, position: { x: 0, y: 0 }, config: {} },
    { id: "b", type: "http", name: "b", parent: null, position: { x: 300, y: 0 }, config: {} },
  ],
  edges: [],
  notes: [{ id: "note_1", text: "why", position: { x: 0, y: 200 }, size: { width: 220, height: 120 } }],
} as GraphJson;

const nudge = (ids: string[], dx: number) =>
  store().onNodesChange(
    ids.map((id) => {
      const n = store().nodes.find((x) => x.id === id)!;
      return { id, type: "position" as const, position: { x: n.position.x + dx, y: n.position.y } };
    }),
  );

beforeEach(() => {
  vi.useFakeTimers();
  store().load(GRAPH);
});
afterEach(() => vi.useRealTimers());

describe("the saved state", () => {
  it("undo back to what was loaded (or saved) is not an unsaved change; redo is", () => {
    store().rename("a", "fetch");
    expect(store().dirty).toBe(true);
    store().undo();
    expect(store().dirty).toBe(false);
    store().redo();
    expect(store().dirty).toBe(true);
    store().markSaved(store().revision);
    store().rename("b", "post");
    store().undo();
    expect(store().dirty).toBe(false);
    store().undo();
    expect(store().dirty).toBe(true);
  });

  it("selection changes and moves that move nothing make no undo step", () => {
    store().onNodesChange([{ id: "note_1", type: "select", selected: true }]);
    nudge(["note_1"], 0);
    store().onNodesChange([{ id: "note_1", type: "dimensions", dimensions: { width: 220, height: 120 } }]);
    expect(store().past).toHaveLength(0);
    expect(store().dirty).toBe(false);
  });
});

describe("arrow-key nudges", () => {
  it("of the same selection within a second are one undo step", () => {
    for (let i = 0; i < 5; i++) {
      nudge(["a", "b"], 5);
      vi.advanceTimersByTime(100);
    }
    expect(store().nodes.find((n) => n.id === "a")!.position.x).toBe(25);
    expect(store().past).toHaveLength(1);
    nudge(["a"], 5); // another selection: another step
    expect(store().past).toHaveLength(2);
    vi.advanceTimersByTime(3000);
    nudge(["a"], 5); // after a pause: another step
    expect(store().past).toHaveLength(3);
    store().undo();
    store().undo();
    store().undo();
    expect(store().nodes.find((n) => n.id === "a")!.position.x).toBe(0);
    expect(store().dirty).toBe(false);
  });
});
