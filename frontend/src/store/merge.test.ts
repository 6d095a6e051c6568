import { describe, expect, it } from "vitest";
import type { BlockJson, GraphJson } from "../types";
import { describeConflict, mergeGraphs, mergeSummary, normalizeGraph, same } from "./merge";

function block(id: string, config: Record<string, unknown> = {}, extra: Partial<BlockJson> = {}): BlockJson {
  return { id, type: "transform", name: id, parent: null, config, position: { x: 0, y: 0 }, ...extra };
}

function graph(blocks: BlockJson[], edges: [string, string][] = [], extra: Record<string, unknown> = {}): GraphJson {
  return { ...extra, blocks, edges: edges.map(([source, target]) => ({ source, target })) } as GraphJson;
}

const clone = <T,>(value: T): T => structuredClone(value);
const find = (g: GraphJson, id: string) => g.blocks.find((b) => b.id === id);
const edgesOf = (g: GraphJson) => g.edges.map((e) => `${e.source}>${e.target}${e.handle ? `:${e.handle}` : ""}`).sort();

const BASE = graph(
  [block("hook", {}, { type: "webhook" }), block("a", { expression: "x", label: "A" }), block("b", { expression: "y" })],
  [["hook", "a"], ["a", "b"]],
);

describe("three-way merge of blocks", () => {
  it("takes a config change from each side on different blocks", () => {
    const mine = clone(BASE);
    find(mine, "a")!.config.expression = "mine";
    const theirs = clone(BASE);
    find(theirs, "b")!.config.expression = "theirs";
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.conflicts).toEqual([]);
    expect(find(result.graph, "a")!.config.expression).toBe("mine");
    expect(find(result.graph, "b")!.config.expression).toBe("theirs");
    expect(result.taken).toEqual(["block 'b' config"]);
  });

  it("merges different config fields of the same block", () => {
    const mine = clone(BASE);
    find(mine, "a")!.config.expression = "mine";
    const theirs = clone(BASE);
    find(theirs, "a")!.config.label = "Theirs";
    delete find(theirs, "a")!.config.missing;
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.conflicts).toEqual([]);
    expect(find(result.graph, "a")!.config).toEqual({ expression: "mine", label: "Theirs" });
  });

  it("takes a field removed on one side", () => {
    const theirs = clone(BASE);
    delete find(theirs, "a")!.config.label;
    const result = mergeGraphs(BASE, clone(BASE), theirs);
    expect(find(result.graph, "a")!.config).toEqual({ expression: "x" });
  });

  it("lists the same field changed differently as a conflict, and applies the choice", () => {
    const mine = clone(BASE);
    find(mine, "a")!.config.expression = "mine";
    const theirs = clone(BASE);
    find(theirs, "a")!.config.expression = "theirs";
    find(theirs, "b")!.config.expression = "other";
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.conflicts).toHaveLength(1);
    const [conflict] = result.conflicts;
    expect(conflict).toMatchObject({ key: "block:a:config.expression", kind: "field", name: "a", field: "config.expression", mine: "mine", theirs: "theirs" });
    expect(describeConflict(conflict)).toBe("block 'a' · config.expression: changed here and elsewhere");
    // Unchosen: mine is kept (nothing lost without a choice); the other change still comes in.
    expect(find(result.graph, "a")!.config.expression).toBe("mine");
    expect(find(result.graph, "b")!.config.expression).toBe("other");
    const chosen = mergeGraphs(BASE, mine, theirs, { [conflict.key]: "theirs" });
    expect(find(chosen.graph, "a")!.config.expression).toBe("theirs");
    expect(chosen.conflicts.map((c) => c.key)).toEqual([conflict.key]);
  });

  it("sees the same change on both sides as no conflict", () => {
    const mine = clone(BASE);
    find(mine, "a")!.config.expression = "same";
    find(mine, "b")!.position = { x: 50, y: 60 };
    const theirs = clone(BASE);
    find(theirs, "a")!.config.expression = "same";
    find(theirs, "b")!.position = { x: 50, y: 60 };
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.conflicts).toEqual([]);
    expect(result.taken).toEqual([]);
    expect(find(result.graph, "a")!.config.expression).toBe("same");
  });

  it("ignores key order (the server's JSON reorders keys)", () => {
    expect(same({ a: 1, b: { c: [1, { d: 2, e: 3 }] } }, { b: { c: [1, { e: 3, d: 2 }] }, a: 1 })).toBe(true);
    expect(same({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(same([1, 2], [2, 1])).toBe(false);
    const theirs = clone(BASE);
    theirs.blocks = theirs.blocks.map((b) => Object.fromEntries(Object.entries(b).reverse()) as unknown as BlockJson);
    expect(mergeGraphs(BASE, clone(BASE), theirs).taken).toEqual([]);
  });

  it("adds blocks added on either side, with their edges", () => {
    const mine = clone(BASE);
    mine.blocks.push(block("mine_new"));
    mine.edges.push({ source: "b", target: "mine_new" });
    const theirs = clone(BASE);
    theirs.blocks.push(block("their_new"));
    theirs.edges.push({ source: "a", target: "their_new" });
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.conflicts).toEqual([]);
    expect(result.graph.blocks.map((b) => b.id)).toEqual(["hook", "a", "b", "mine_new", "their_new"]);
    expect(edgesOf(result.graph)).toEqual(["a>b", "a>their_new", "b>mine_new", "hook>a"]);
    expect(result.taken).toEqual(["new block 'their_new'", "new connection a → their_new"]);
    expect(mergeSummary(result)).toBe("Merged 2 changes saved elsewhere (new block 'their_new', new connection a → their_new)");
  });

  it("removes a block deleted on one side and untouched on the other", () => {
    const theirs = clone(BASE);
    theirs.blocks = theirs.blocks.filter((b) => b.id !== "b");
    theirs.edges = theirs.edges.filter((e) => e.target !== "b");
    const mine = clone(BASE);
    find(mine, "a")!.config.expression = "mine";
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.conflicts).toEqual([]);
    expect(find(result.graph, "b")).toBeUndefined();
    expect(edgesOf(result.graph)).toEqual(["hook>a"]);
    expect(result.taken).toEqual(["block 'b' removed"]);
  });

  it("moves a block moved on one side", () => {
    const theirs = clone(BASE);
    find(theirs, "a")!.position = { x: 300, y: 40 };
    const result = mergeGraphs(BASE, clone(BASE), theirs);
    expect(find(result.graph, "a")!.position).toEqual({ x: 300, y: 40 });
    expect(result.taken).toEqual(["block 'a' moved"]);
  });

  it("makes an edit here against a delete there a conflict; taking theirs deletes it", () => {
    const mine = clone(BASE);
    find(mine, "b")!.config.expression = "edited";
    const theirs = clone(BASE);
    theirs.blocks = theirs.blocks.filter((b) => b.id !== "b");
    theirs.edges = theirs.edges.filter((e) => e.target !== "b");
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.conflicts).toEqual([
      expect.objectContaining({ key: "block:b:deleted", kind: "deleted-there", name: "b", field: null }),
    ]);
    expect(describeConflict(result.conflicts[0])).toBe("block 'b': edited here, deleted elsewhere");
    expect(find(result.graph, "b")!.config.expression).toBe("edited");
    expect(edgesOf(result.graph)).toEqual(["a>b", "hook>a"]); // kept with its block: mine still has it
    const taken = mergeGraphs(BASE, mine, theirs, { "block:b:deleted": "theirs" });
    expect(find(taken.graph, "b")).toBeUndefined();
    expect(edgesOf(taken.graph)).toEqual(["hook>a"]);
  });

  it("makes a delete here against an edit there a conflict", () => {
    const mine = clone(BASE);
    mine.blocks = mine.blocks.filter((b) => b.id !== "b");
    mine.edges = mine.edges.filter((e) => e.target !== "b");
    const theirs = clone(BASE);
    find(theirs, "b")!.config.expression = "edited there";
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.conflicts).toEqual([expect.objectContaining({ key: "block:b:deleted", kind: "deleted-here" })]);
    expect(find(result.graph, "b")).toBeUndefined();
    const taken = mergeGraphs(BASE, mine, theirs, { "block:b:deleted": "theirs" });
    expect(find(taken.graph, "b")!.config.expression).toBe("edited there");
  });

  it("makes a new edge here to a block deleted there a conflict", () => {
    const mine = clone(BASE);
    mine.edges.push({ source: "hook", target: "b" });
    const theirs = clone(BASE);
    theirs.blocks = theirs.blocks.filter((b) => b.id !== "b");
    theirs.edges = theirs.edges.filter((e) => e.target !== "b");
    expect(mergeGraphs(BASE, mine, theirs).conflicts.map((c) => c.key)).toEqual(["block:b:deleted"]);
  });

  it("takes a block deleted on both sides", () => {
    const mine = clone(BASE);
    mine.blocks = mine.blocks.filter((b) => b.id !== "b");
    const theirs = clone(mine);
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.conflicts).toEqual([]);
    expect(find(result.graph, "b")).toBeUndefined();
  });
});

describe("loops", () => {
  const LOOPED = graph(
    [
      block("hook", {}, { type: "webhook" }),
      block("loop", { items: "<hook.leads>" }, { type: "loop", style: { width: 460, height: 260 } }),
      block("inner", { expression: "x" }, { parent: "loop", position: { x: 40, y: 60 } }),
      block("after", { expression: "<loop.results>" }),
    ],
    [["hook", "loop"], ["loop", "after"]],
  );

  it("takes a block moved into a loop on one side and its config changed on the other", () => {
    const mine = clone(LOOPED);
    Object.assign(find(mine, "after")!, { parent: "loop", position: { x: 60, y: 120 } });
    const theirs = clone(LOOPED);
    find(theirs, "after")!.config.expression = "<loop.count>";
    const result = mergeGraphs(LOOPED, mine, theirs);
    expect(result.conflicts).toEqual([]);
    expect(find(result.graph, "after")).toMatchObject({ parent: "loop", config: { expression: "<loop.count>" } });
  });

  it("treats a loop deleted there and a child edited here as one conflict over the whole loop", () => {
    const mine = clone(LOOPED);
    find(mine, "inner")!.config.expression = "edited";
    mine.blocks.push(block("added_inside", {}, { parent: "loop" }));
    const theirs = clone(LOOPED);
    theirs.blocks = theirs.blocks.filter((b) => b.id !== "loop" && b.id !== "inner");
    theirs.edges = theirs.edges.filter((e) => e.source !== "loop" && e.target !== "loop");
    const result = mergeGraphs(LOOPED, mine, theirs);
    expect(result.conflicts.map((c) => [c.key, c.kind, c.name])).toEqual([["block:loop:deleted", "deleted-there", "loop"]]);
    expect(result.graph.blocks.map((b) => b.id)).toEqual(["hook", "loop", "inner", "after", "added_inside"]);
    const taken = mergeGraphs(LOOPED, mine, theirs, { "block:loop:deleted": "theirs" });
    expect(taken.graph.blocks.map((b) => b.id)).toEqual(["hook", "after"]);
  });

  it("deletes a loop and its children deleted there when nothing inside was touched here", () => {
    const mine = clone(LOOPED);
    find(mine, "hook")!.config.path = "/x";
    const theirs = clone(LOOPED);
    theirs.blocks = theirs.blocks.filter((b) => b.id !== "loop" && b.id !== "inner");
    theirs.edges = [];
    const result = mergeGraphs(LOOPED, mine, theirs);
    expect(result.conflicts).toEqual([]);
    expect(result.graph.blocks.map((b) => b.id)).toEqual(["hook", "after"]);
    expect(result.graph.edges).toEqual([]);
    expect(result.taken).toContain("block 'loop' removed");
  });

  it("lists a child moved to different loops on both sides as a parent conflict", () => {
    const withTwo = clone(LOOPED);
    withTwo.blocks.push(block("loop2", {}, { type: "loop" }));
    const mine = clone(withTwo);
    find(mine, "inner")!.parent = "loop2";
    const theirs = clone(withTwo);
    find(theirs, "inner")!.parent = null;
    const result = mergeGraphs(withTwo, mine, theirs);
    expect(result.conflicts.map((c) => c.key)).toEqual(["block:inner:parent"]);
  });

  it("puts a block whose new loop was deleted elsewhere back where the other side has it", () => {
    const mine = clone(LOOPED);
    mine.blocks.push(block("loop2", {}, { type: "loop" }));
    find(mine, "inner")!.parent = "loop2";
    const theirs = clone(LOOPED);
    const result = mergeGraphs(LOOPED, mine, theirs, {});
    expect(find(result.graph, "inner")!.parent).toBe("loop2");
    // Mine dropped (undo of the new loop would do this): the child falls back to its loop there.
    const noLoop = clone(mine);
    noLoop.blocks = noLoop.blocks.filter((b) => b.id !== "loop2");
    expect(find(mergeGraphs(LOOPED, noLoop, theirs).graph, "inner")!.parent).toBe("loop");
  });
});

describe("edges", () => {
  it("keeps an edge removed here and removes one removed there", () => {
    const mine = clone(BASE);
    mine.edges = mine.edges.filter((e) => e.source !== "hook");
    const theirs = clone(BASE);
    theirs.edges = theirs.edges.filter((e) => e.source !== "a");
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.graph.edges).toEqual([]);
    expect(result.taken).toEqual(["connection a → b removed"]);
  });

  it("tells edges apart by their handle", () => {
    const mine = clone(BASE);
    mine.edges.push({ source: "a", target: "b", handle: "body" });
    const result = mergeGraphs(BASE, mine, clone(BASE));
    expect(edgesOf(result.graph)).toEqual(["a>b", "a>b:body", "hook>a"]);
  });

  it("adds the same new edge once", () => {
    const mine = clone(BASE);
    mine.edges.push({ source: "hook", target: "b" });
    const theirs = clone(mine);
    expect(edgesOf(mergeGraphs(BASE, mine, theirs).graph)).toEqual(["a>b", "hook>a", "hook>b"]);
  });
});

describe("colliding ids and names", () => {
  it("keeps one block when both sides added the same one", () => {
    const mine = clone(BASE);
    mine.blocks.push(block("http_1"));
    const theirs = clone(mine);
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.graph.blocks.filter((b) => b.id === "http_1")).toHaveLength(1);
    expect(result.renamed).toEqual([]);
  });

  it("renames my new block when theirs added another with the same id, references and edges following", () => {
    const mine = clone(BASE);
    mine.blocks.push(block("http_1", { url: "https://mine" }));
    mine.blocks.push(block("reader", { expression: "<http_1.body>" }));
    mine.edges.push({ source: "http_1", target: "reader" });
    const theirs = clone(BASE);
    theirs.blocks.push(block("http_1", { url: "https://theirs" }));
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.conflicts).toEqual([]);
    expect(find(result.graph, "http_1")!.config.url).toBe("https://theirs");
    expect(find(result.graph, "http_2")).toMatchObject({ name: "http_2", config: { url: "https://mine" } });
    expect(find(result.graph, "reader")!.config.expression).toBe("<http_2.body>");
    expect(edgesOf(result.graph)).toContain("http_2>reader");
    expect(result.renamed[0]).toContain("'http_1' is now 'http_2'");
    expect(mergeSummary(result)).toContain("is now 'http_2'");
  });

  it("renames my new block named like one theirs added", () => {
    const mine = clone(BASE);
    mine.blocks.push(block("t_9", {}, { name: "summary" }));
    const theirs = clone(BASE);
    theirs.blocks.push(block("t_3", {}, { name: "summary" }));
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.graph.blocks.map((b) => b.name).filter((n) => n.startsWith("summary"))).toEqual(["summary_2", "summary"]);
  });

  it("spreads a rename made elsewhere to the references edited here", () => {
    const mine = clone(BASE);
    find(mine, "b")!.config.expression = "<a.value> + 1";
    const theirs = clone(BASE);
    find(theirs, "a")!.name = "first";
    find(theirs, "b")!.config.label = "<first.x>"; // a rename rewrites the references it sees
    const result = mergeGraphs(BASE, mine, theirs);
    expect(result.conflicts).toEqual([]);
    expect(find(result.graph, "a")!.name).toBe("first");
    expect(find(result.graph, "b")!.config).toEqual({ expression: "<first.value> + 1", label: "<first.x>" });
    expect(result.taken[0]).toBe("block 'a' renamed 'first'");
  });
});

describe("notes and workflow-level fields", () => {
  it("merges notes by id and other graph keys one by one, the viewport mine", () => {
    const base = graph([block("a")], [], { settings: { retries: 1 }, notes: [{ id: "note_1", text: "hi", position: { x: 0, y: 0 } }] });
    const mine = clone(base) as GraphJson & Record<string, unknown>;
    mine.viewport = { x: 1, y: 2, zoom: 1 };
    (mine.notes as { text: string }[])[0].text = "mine";
    const theirs = clone(base) as GraphJson & Record<string, unknown>;
    theirs.settings = { retries: 3 };
    theirs.viewport = { x: 9, y: 9, zoom: 2 };
    (theirs.notes as { position: unknown }[])[0].position = { x: 5, y: 5 };
    const result = mergeGraphs(base, mine, theirs);
    const merged = result.graph as GraphJson & Record<string, unknown>;
    expect(result.conflicts).toEqual([]);
    expect(merged.settings).toEqual({ retries: 3 });
    expect(merged.viewport).toEqual({ x: 1, y: 2, zoom: 1 });
    expect(merged.notes).toEqual([{ id: "note_1", text: "mine", position: { x: 5, y: 5 } }]);
    expect(result.taken).toEqual(["a note moved", "workflow settings"]);
  });

  it("lists a graph key changed differently on both sides", () => {
    const base = graph([], [], { settings: 1 });
    const result = mergeGraphs(base, graph([], [], { settings: 2 }), graph([], [], { settings: 3 }));
    expect(result.conflicts).toEqual([expect.objectContaining({ key: "workflow:settings", what: "workflow" })]);
    expect(describeConflict(result.conflicts[0])).toBe("workflow · settings: changed here and elsewhere");
    expect((mergeGraphs(base, graph([], [], { settings: 2 }), graph([], [], { settings: 3 }), { "workflow:settings": "theirs" }).graph as unknown as { settings: number }).settings).toBe(3);
  });
});

describe("normalizeGraph", () => {
  it("makes a graph read as the editor writes it, so the merge sees no change", () => {
    const raw = graph([block("loop", {}, { type: "loop", position: { x: 10.4, y: 3 } })]);
    const normal = normalizeGraph(raw);
    expect(find(normal, "loop")).toMatchObject({ position: { x: 10, y: 3 }, style: { width: 460, height: 260 } });
    expect(mergeGraphs(normal, normal, normalizeGraph(raw)).taken).toEqual([]);
  });

  it("summarises a long list of merged changes, bounded", () => {
    const taken = Array.from({ length: 9 }, (_, i) => `new block 'b${i}'`);
    expect(mergeSummary({ taken, renamed: [] })).toBe(
      "Merged 9 changes saved elsewhere (new block 'b0', new block 'b1', new block 'b2', new block 'b3', and 5 more)",
    );
  });
});
