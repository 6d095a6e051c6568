import { beforeEach, describe, expect, it } from "vitest";
import type { GraphJson } from "../types";
import { useGraphStore } from "./graphStore";

const store = () => useGraphStore.getState();

const NOTE = { id: "note_1", text: "Why this loop is sequential", position: { x: 10, y: 300 }, size: { width: 240, height: 90 } };
const GRAPH = {
  blocks: [
    { id: "webhook_1", type: "webhook", name: "webhook_1", parent: null, position: { x: 0, y: 0 }, config: {} },
    { id: "http_1", type: "http", name: "http_1", parent: null, position: { x: 300, y: 0 }, config: {} },
  ],
  edges: [{ source: "webhook_1", target: "http_1" }],
  notes: [NOTE],
} as GraphJson;

beforeEach(() => store().load(GRAPH));

describe("sticky notes", () => {
  it("load and save with the graph, apart from the blocks", () => {
    const graph = store().serialize() as GraphJson & { notes?: unknown };
    expect(graph.blocks.map((b) => b.id)).toEqual(["webhook_1", "http_1"]);
    expect(graph.notes).toEqual([NOTE]);
    store().load({ blocks: [], edges: [] });
    expect("notes" in store().serialize()).toBe(false);
  });

  it("a note whose id a block has gets a free one", () => {
    store().load({ ...GRAPH, notes: [{ ...NOTE, id: "http_1" }] } as GraphJson);
    const graph = store().serialize() as GraphJson & { notes: { id: string }[] };
    expect(graph.notes[0].id).not.toBe("http_1");
    expect(new Set([...graph.blocks.map((b) => b.id), graph.notes[0].id]).size).toBe(3);
  });

  it("are added, edited (typing is one undo step) and deleted with undo", () => {
    const id = store().addNote({ x: 5, y: 6 });
    expect(id).toBe("note_2");
    store().updateNote(id, "H");
    store().updateNote(id, "Hello");
    expect(store().nodes.find((n) => n.id === id)?.data.config.text).toBe("Hello");
    store().undo();
    expect(store().nodes.find((n) => n.id === id)?.data.config.text).toBe("");
    store().deleteElements([id]);
    expect(store().nodes.some((n) => n.id === id)).toBe(false);
  });

  it("never open the settings panel, are not copied, and stay put in a layout", () => {
    store().select("note_1");
    store().onNodesChange([{ type: "select", id: "note_1", selected: true }]);
    expect(store().selectedId).toBeNull();
    expect(store().copySelection()).toBeNull();
    const before = store().nodes.find((n) => n.id === "note_1")?.position;
    store().layout();
    expect(store().nodes.find((n) => n.id === "note_1")?.position).toEqual(before);
  });

  it("never drop into a loop", () => {
    store().load({
      ...GRAPH,
      blocks: [...GRAPH.blocks, { id: "loop_1", type: "loop", name: "loop_1", parent: null, position: { x: 0, y: 200 }, config: {} }],
    } as GraphJson);
    store().dropNode("note_1", { x: 50, y: 320 });
    expect(store().nodes.find((n) => n.id === "note_1")?.parentId).toBeUndefined();
  });
});
