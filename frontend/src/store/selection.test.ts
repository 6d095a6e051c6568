import { beforeEach, describe, expect, it } from "vitest";
import type { GraphJson } from "../types";
import { useGraphStore } from "./graphStore";

const store = () => useGraphStore.getState();
const selectedNodes = () => store().nodes.filter((n) => n.selected).map((n) => n.id);

const GRAPH: GraphJson = {
  blocks: [
    { id: "webhook_1", type: "webhook", name: "webhook_1", parent: null, position: { x: 0, y: 0 }, config: {} },
    { id: "loop_1", type: "loop", name: "loop_1", parent: null, position: { x: 300, y: 0 }, config: { items: "[]" } },
    { id: "http_1", type: "http", name: "http_1", parent: "loop_1", position: { x: 60, y: 60 }, config: {} },
    { id: "inner", type: "loop", name: "inner", parent: "loop_1", position: { x: 60, y: 160 }, config: { items: "[]" } },
    { id: "agent_1", type: "agent", name: "agent_1", parent: "inner", position: { x: 60, y: 60 }, config: {} },
    { id: "slack_1", type: "slack", name: "slack_1", parent: null, position: { x: 900, y: 0 }, config: {} },
    { id: "empty", type: "loop", name: "empty", parent: null, position: { x: 900, y: 300 }, config: { items: "[]" } },
  ],
  edges: [
    { source: "webhook_1", target: "loop_1" },
    { source: "webhook_1", target: "slack_1" },
  ],
};

beforeEach(() => store().load(GRAPH));

describe("undo and redo restore the selection with the graph", () => {
  it("Undo after Delete brings the block back selected, with the panel on it", () => {
    store().select("slack_1");
    store().deleteElements(["slack_1"]);
    expect(store().selectedId).toBeNull();
    store().undo();
    expect(store().selectedId).toBe("slack_1");
    expect(selectedNodes()).toEqual(["slack_1"]);
    store().redo();
    expect(store().selectedId).toBeNull();
    expect(selectedNodes()).toEqual([]);
  });

  it("never leaves a selected flag without the panel, nor the panel on a missing block", () => {
    store().select("http_1");
    store().updateConfig("http_1", "url", "https://a.example");
    store().select("slack_1");
    store().undo();
    // The state restored is the one the edit left: http_1 was selected then.
    expect(store().selectedId).toBe("http_1");
    expect(selectedNodes()).toEqual(["http_1"]);
    store().select(null);
    store().deleteElements(["webhook_1"]);
    store().undo();
    expect(store().selectedId).toBeNull();
    expect(selectedNodes()).toEqual([]);
  });
});

describe("selectEdge", () => {
  it("selects the edge alone", () => {
    store().select("loop_1");
    store().selectEdge("e:webhook_1::slack_1");
    expect(store().selectedId).toBeNull();
    expect(selectedNodes()).toEqual([]);
    expect(store().edges.filter((e) => e.selected).map((e) => e.id)).toEqual(["e:webhook_1::slack_1"]);
    store().deleteElements([], ["e:webhook_1::slack_1"]);
    expect(store().nodes).toHaveLength(7);
    expect(store().edges.map((e) => e.id)).toEqual(["e:webhook_1::loop_1"]);
  });
});

describe("loopsWithChildren", () => {
  it("counts everything inside, nested loops included, and skips empty loops and blocks", () => {
    expect(store().loopsWithChildren(["loop_1", "empty", "slack_1"])).toEqual([{ name: "loop_1", count: 3 }]);
    expect(store().loopsWithChildren(["inner"])).toEqual([{ name: "inner", count: 1 }]);
    expect(store().loopsWithChildren(["http_1"])).toEqual([]);
  });
});
