import { beforeEach, describe, expect, it } from "vitest";
import type { GraphJson } from "../types";
import { absoluteOf, nodeSize } from "./geometry";
import { useGraphStore } from "./graphStore";
import { LAYOUT_GAP } from "./layout";
import { LOOP_PADDING } from "./model";

const store = () => useGraphStore.getState();
const at = (id: string) => absoluteOf(store().nodes, id);
const size = (id: string) => nodeSize(store().nodes.find((n) => n.id === id)!);

const GRAPH: GraphJson = {
  blocks: [
    { id: "slack", type: "slack", name: "slack", parent: null, position: { x: -500, y: 900 }, config: {} },
    { id: "webhook", type: "webhook", name: "webhook", parent: null, position: { x: 700, y: 10 }, config: {} },
    { id: "loop", type: "loop", name: "loop", parent: null, position: { x: 0, y: 0 }, style: { width: 300, height: 150 }, config: {} },
    { id: "a", type: "http", name: "a", parent: "loop", position: { x: 200, y: 50 }, config: {} },
    { id: "b", type: "http", name: "b", parent: "loop", position: { x: 50, y: 60 }, config: {} },
    { id: "c", type: "agent", name: "c", parent: "loop", position: { x: 50, y: 200 }, config: {} },
    { id: "d", type: "agent", name: "d", parent: "loop", position: { x: 900, y: 10 }, config: {} },
  ],
  edges: [
    { source: "webhook", target: "loop" },
    { source: "loop", target: "slack" },
    { source: "loop", target: "a", handle: "body" },
    { source: "loop", target: "c", handle: "body" },
    { source: "a", target: "b" },
    { source: "c", target: "b" },
    { source: "b", target: "d" },
  ],
};

beforeEach(() => store().load(GRAPH));

function overlap(p: string, q: string): boolean {
  const [a, b] = [at(p), at(q)];
  const [sa, sb] = [size(p), size(q)];
  return a.x < b.x + sb.width && b.x < a.x + sa.width && a.y < b.y + sb.height && b.y < a.y + sa.height;
}

describe("auto-layout", () => {
  it("places every level left to right along its edges, loops laid out inside and fitted", () => {
    store().layout();
    // Top level: webhook → loop → slack.
    expect(at("webhook").x + size("webhook").width + LAYOUT_GAP.x).toBe(at("loop").x);
    expect(at("loop").x + size("loop").width + LAYOUT_GAP.x).toBe(at("slack").x);
    // Inside: a and c first, then b, then d.
    expect(at("a").x).toBe(at("c").x);
    expect(at("b").x).toBeGreaterThan(at("a").x + size("a").width);
    expect(at("d").x).toBeGreaterThan(at("b").x + size("b").width);
    for (const id of ["a", "b", "c", "d"]) {
      const node = store().nodes.find((n) => n.id === id)!;
      expect(node.parentId).toBe("loop");
      expect(node.position.x).toBeGreaterThanOrEqual(LOOP_PADDING.left);
      expect(node.position.y).toBeGreaterThanOrEqual(LOOP_PADDING.top);
      // Fully inside the loop, which grew to hold them.
      expect(node.position.x + size(id).width + LOOP_PADDING.right).toBeLessThanOrEqual(size("loop").width);
      expect(node.position.y + size(id).height + LOOP_PADDING.bottom).toBeLessThanOrEqual(size("loop").height);
    }
    const ids = store().nodes.map((n) => n.id);
    for (const p of ids) for (const q of ids) if (p < q && p !== "loop" && q !== "loop") expect(overlap(p, q)).toBe(false);
    // What is saved carries the loop's new size.
    const saved = store().serialize().blocks.find((b) => b.id === "loop")!;
    expect(saved.style).toEqual({ width: size("loop").width, height: size("loop").height });
  });

  it("is one undo step, and a second layout changes nothing", () => {
    const before = store().serialize();
    store().layout();
    expect(store().past).toHaveLength(1);
    store().layout();
    expect(store().past).toHaveLength(1);
    store().undo();
    expect(store().serialize()).toEqual(before);
  });

  it("survives a cycle (which validation reports)", () => {
    store().load({ ...GRAPH, edges: [...GRAPH.edges, { source: "d", target: "a" }] });
    store().layout();
    expect(store().nodes.every((n) => Number.isFinite(n.position.x) && Number.isFinite(n.position.y))).toBe(true);
  });
});
