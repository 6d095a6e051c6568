import { beforeEach, describe, expect, it } from "vitest";
import type { GraphJson } from "../types";
import { problemsLabel } from "./validation";
import {
  BODY_HANDLE,
  HISTORY_LIMIT,
  LOOP_PADDING,
  TRIGGER_IN_LOOP,
  removedNotice,
  renameReferences,
  useGraphStore,
} from "./graphStore";

const store = () => useGraphStore.getState();
const node = (id: string) => store().nodes.find((n) => n.id === id);

const TEMPLATE: GraphJson = {
  blocks: [
    { id: "webhook", type: "webhook", name: "webhook", parent: null, position: { x: 0, y: 220 }, config: {} },
    {
      id: "loop",
      type: "loop",
      name: "loop",
      parent: null,
      position: { x: 260, y: 40 },
      style: { width: 980, height: 460 },
      config: { items: "<webhook.body.leads>", variable: "lead" },
    },
    {
      id: "agent_analysis",
      type: "agent",
      name: "agent_analysis",
      parent: "loop",
      position: { x: 40, y: 40 },
      config: { user_prompt: "Lead: <lead.name>" },
    },
    {
      id: "store_lead",
      type: "database",
      name: "store_lead",
      parent: "loop",
      position: { x: 700, y: 170 },
      config: { sql: "INSERT INTO t VALUES ('<agent_analysis.content>')" },
    },
    {
      id: "slack",
      type: "slack",
      name: "slack",
      parent: null,
      position: { x: 1600, y: 220 },
      config: { channel: "#x", text: "<loop.count>" },
      note: "kept as-is",
    } as GraphJson["blocks"][number],
  ],
  edges: [
    { source: "webhook", target: "loop" },
    { source: "loop", target: "agent_analysis", handle: "body" },
    { source: "agent_analysis", target: "store_lead" },
    { source: "loop", target: "slack" },
  ],
  viewport: { x: 10, y: -20, zoom: 0.8 },
};

beforeEach(() => {
  store().setCatalogue([
    {
      type: "http",
      label: "HTTP request",
      description: "",
      icon: "globe",
      config_schema: { type: "object", properties: { method: { enum: ["GET", "POST"], default: "GET" }, url: { type: "string" } } },
      outputs: {},
    },
  ]);
  store().load({ blocks: [], edges: [] });
});

describe("addBlock", () => {
  it("gives unique readable names and ids, schema defaults, and marks dirty", () => {
    const a = store().addBlock("http", { x: 0, y: 0 });
    const b = store().addBlock("http", { x: 50, y: 0 });
    expect(a).toBe("http_1");
    expect(b).toBe("http_2");
    expect(node(a)?.data.name).toBe("http_1");
    expect(node(a)?.data.config).toEqual({ method: "GET" });
    expect(store().dirty).toBe(true);
    expect(store().selectedId).toBe(b);
  });

  it("skips names that a renamed block already uses", () => {
    const a = store().addBlock("http", { x: 0, y: 0 });
    expect(store().rename(a, "http_2")).toBeNull();
    expect(store().addBlock("http", { x: 0, y: 0 })).toBe("http_3");
  });
});

describe("connect", () => {
  it("connects two top-level blocks", () => {
    const a = store().addBlock("http", { x: 0, y: 0 });
    const b = store().addBlock("transform", { x: 300, y: 0 });
    expect(store().connect({ source: a, target: b })).toBe(true);
    expect(store().edges).toHaveLength(1);
    expect(store().connect({ source: a, target: b })).toBe(false); // duplicate
    expect(store().connect({ source: a, target: a })).toBe(false);
  });

  it("refuses cycles", () => {
    const a = store().addBlock("http", { x: 0, y: 0 });
    const b = store().addBlock("http", { x: 300, y: 0 });
    const c = store().addBlock("http", { x: 600, y: 0 });
    expect(store().connect({ source: a, target: b })).toBe(true);
    expect(store().connect({ source: b, target: c })).toBe(true);
    expect(store().canConnect({ source: c, target: a })).toMatch(/cycle/);
    expect(store().connect({ source: c, target: a })).toBe(false);
    expect(store().edges).toHaveLength(2);
  });

  it("refuses inputs into the trigger", () => {
    const hook = store().addBlock("webhook", { x: 0, y: 0 });
    const a = store().addBlock("http", { x: 300, y: 0 });
    expect(store().connect({ source: a, target: hook })).toBe(false);
  });

  it("refuses edges that cross a loop boundary, allows loop → own child via the body handle", () => {
    const outside = store().addBlock("http", { x: 0, y: 0 });
    const loop = store().addBlock("loop", { x: 300, y: 0 });
    const inner = store().addBlock("http", { x: 60, y: 60 }, loop);
    const other = store().addBlock("loop", { x: 900, y: 0 });
    expect(store().canConnect({ source: outside, target: inner })).toMatch(/loop boundary/);
    expect(store().connect({ source: inner, target: outside })).toBe(false);
    expect(store().connect({ source: other, target: inner })).toBe(false);
    expect(store().connect({ source: inner, target: loop })).toBe(false);
    expect(store().connect({ source: outside, target: loop })).toBe(true);
    expect(store().connect({ source: loop, target: inner })).toBe(true);
    const edge = store().edges.find((e) => e.target === inner);
    expect(edge?.sourceHandle).toBe(BODY_HANDLE);
    // the body handle only feeds children
    expect(store().canConnect({ source: loop, target: other, sourceHandle: BODY_HANDLE })).not.toBeNull();
  });
});

describe("loops", () => {
  it("dropping a block inside a loop makes it a child with a relative position", () => {
    const loop = store().addBlock("loop", { x: 100, y: 100 });
    const child = store().dropBlock("http", { x: 300, y: 220 });
    expect(node(child)?.parentId).toBe(loop);
    expect(node(child)?.extent).toBe("parent");
    // Centred on the pointer: (300 - 110, 220 - 32), relative to the loop at (100, 100).
    expect(node(child)?.position).toEqual({ x: 90, y: 88 });
    const outside = store().dropBlock("http", { x: 2000, y: 2000 });
    expect(node(outside)?.parentId).toBeUndefined();
    expect(store().serialize().blocks.find((b) => b.id === child)?.parent).toBe(loop);
  });

  it("chooses the innermost loop for nested loops", () => {
    const outer = store().addBlock("loop", { x: 0, y: 0 });
    const inner = store().dropBlock("loop", { x: 300, y: 200 });
    expect(node(inner)?.parentId).toBe(outer);
    expect(node(inner)?.position).toEqual({ x: 70, y: 70 }); // centred on the pointer
    // the outer loop grew to hold the inner one
    expect(node(outer)!.width!).toBeGreaterThanOrEqual(70 + node(inner)!.width! + LOOP_PADDING.right);
    const deep = store().dropBlock("http", { x: 300, y: 200 });
    expect(node(deep)?.parentId).toBe(inner);
    expect(store().absolutePosition(deep)).toEqual({ x: 190, y: 168 });
    // nodes are ordered parents first (React Flow requires it)
    const order = store().nodes.map((n) => n.id);
    expect(order.indexOf(outer)).toBeLessThan(order.indexOf(inner));
    expect(order.indexOf(inner)).toBeLessThan(order.indexOf(deep));
  });

  it("holds a dropped Loop by its title bar where the palette entry was grabbed, within the view", () => {
    const loop = store().dropBlock("loop", { x: 400, y: 300 }, { grab: { x: 90, y: 30 } });
    expect(node(loop)?.position).toEqual({ x: 310, y: 283 });
    const bounds = { x: 0, y: 0, width: 800, height: 600 };
    const corner = store().dropBlock("http", { x: 20, y: 590 }, { bounds });
    expect(node(corner)?.position).toEqual({ x: 8, y: 600 - 8 - 64 });
  });

  it("says how many connections a move into or out of a loop removed, and refuses triggers", () => {
    const loop = store().addBlock("loop", { x: 400, y: 0 });
    const a = store().addBlock("http", { x: 0, y: 0 });
    const b = store().addBlock("http", { x: 0, y: 200 });
    const c = store().addBlock("http", { x: 0, y: 400 });
    store().connect({ source: a, target: b });
    store().connect({ source: c, target: a });
    expect(store().notice).toBeNull();
    store().moveBlock(a, { x: 480, y: 80 });
    store().dropNode(a, { x: 500, y: 100 });
    expect(store().edges).toHaveLength(0);
    expect(store().notice).toMatchObject({ text: removedNotice(2), kind: "info", undo: true });
    expect(removedNotice(2)).toMatch(/^2 connections removed .*Undo to restore$/);
    store().undo();
    expect(store().edges).toHaveLength(2);

    const seq = store().notice!.seq;
    const hook = store().dropBlock("webhook", { x: 500, y: 100 });
    expect(node(hook)?.parentId).toBeUndefined();
    expect(store().notice).toMatchObject({ text: TRIGGER_IN_LOOP, kind: "error" });
    expect(store().notice!.seq).toBe(seq + 1);
    store().dropNode(hook, { x: 450, y: 50 });
    expect(store().notice!.seq).toBe(seq + 2);
    expect(node(loop)).toBeTruthy();
  });

  it("drops a block's 'after the loop' edge when it is moved into that loop (it would run per item)", () => {
    const loop = store().addBlock("loop", { x: 0, y: 0 });
    const inner = store().addBlock("http", { x: 60, y: 60 }, loop);
    const slack = store().addBlock("slack", { x: 900, y: 0 });
    store().connect({ source: loop, target: slack });
    store().connect({ source: loop, target: inner });
    expect(store().edges.find((e) => e.target === slack)?.sourceHandle ?? null).toBeNull();
    expect(store().reparent(slack, loop)).toBe(true);
    expect(store().edges.map((e) => e.target)).toEqual([inner]); // the body edge stays
    expect(store().notice).toMatchObject({ text: removedNotice(1) });
    expect(store().serialize().edges).toEqual([{ source: loop, target: inner, handle: BODY_HANDLE }]);
  });

  it("a dragged node is reparented on drop, keeping its place on screen", () => {
    const loop = store().addBlock("loop", { x: 400, y: 0 });
    const a = store().addBlock("http", { x: 0, y: 0 });
    const b = store().addBlock("http", { x: 0, y: 200 });
    store().connect({ source: a, target: b });
    store().moveBlock(a, { x: 480, y: 80 });
    store().dropNode(a, { x: 500, y: 100 });
    expect(node(a)?.parentId).toBe(loop);
    expect(node(a)?.position).toEqual({ x: 80, y: 80 });
    expect(store().edges).toHaveLength(0); // a→b now crosses the loop boundary
    // and out again
    store().releaseExtent(a);
    store().moveBlock(a, { x: 700, y: 600 });
    store().dropNode(a, { x: 1200, y: 700 });
    expect(node(a)?.parentId).toBeUndefined();
    expect(node(a)?.extent).toBeUndefined();
    expect(node(a)?.position).toEqual({ x: 1100, y: 600 });
  });

  it("refuses to put a loop inside itself and keeps the trigger at the top level", () => {
    const outer = store().addBlock("loop", { x: 0, y: 0 });
    const inner = store().addBlock("loop", { x: 50, y: 50 }, outer);
    expect(store().reparent(outer, inner)).toBe(false);
    expect(store().reparent(outer, outer)).toBe(false);
    const hook = store().dropBlock("webhook", { x: 100, y: 100 });
    expect(node(hook)?.parentId).toBeUndefined();
  });

  it("deleting a loop deletes its children (nested too) and their edges", () => {
    const outer = store().addBlock("loop", { x: 0, y: 0 });
    const inner = store().addBlock("loop", { x: 50, y: 50 }, outer);
    const deep = store().addBlock("http", { x: 50, y: 50 }, inner);
    const after = store().addBlock("http", { x: 2000, y: 0 });
    store().connect({ source: outer, target: after });
    store().connect({ source: inner, target: deep });
    store().deleteElements([outer]);
    expect(store().nodes.map((n) => n.id)).toEqual([after]);
    expect(store().edges).toHaveLength(0);
    expect(deep).toBeTruthy();
  });
});

describe("config and names", () => {
  it("updates config keys and removes them with undefined", () => {
    const a = store().addBlock("http", { x: 0, y: 0 });
    store().updateConfig(a, "url", "https://x.test");
    expect(node(a)?.data.config.url).toBe("https://x.test");
    store().updateConfig(a, "url", undefined);
    expect(node(a)?.data.config).not.toHaveProperty("url");
  });

  it("renames with checks and rewrites references to the old name", () => {
    const a = store().addBlock("http", { x: 0, y: 0 });
    const b = store().addBlock("slack", { x: 300, y: 0 });
    store().connect({ source: a, target: b });
    store().updateConfig(b, "text", "got <http_1.body.x> and <http_10> <http_1>");
    expect(store().rename(a, "1bad")).toMatch(/letters/);
    expect(store().rename(a, "slack_1")).toMatch(/another block/);
    expect(store().rename(a, "env")).toMatch(/reserved/);
    expect(store().rename(a, "fetch")).toBeNull();
    expect(node(a)?.data.name).toBe("fetch");
    expect(node(a)?.id).toBe("http_1");
    expect(node(b)?.data.config.text).toBe("got <fetch.body.x> and <http_10> <fetch>");
    expect(renameReferences({ h: ["<a.b>", 1] }, "a", "z")).toEqual({ h: ["<z.b>", 1] });
  });
});

describe("serialize and load", () => {
  it("round-trips a graph (relative child positions, loop size, handles, extra keys, viewport)", () => {
    store().load(TEMPLATE);
    expect(store().dirty).toBe(false);
    const child = node("agent_analysis");
    expect(child?.parentId).toBe("loop");
    expect(child?.extent).toBe("parent");
    expect(child?.position).toEqual({ x: 40, y: 40 });
    expect(node("loop")?.width).toBe(980);
    expect(store().viewport).toEqual({ x: 10, y: -20, zoom: 0.8 });
    const out = store().serialize();
    expect(out).toEqual(TEMPLATE);
    store().load(out);
    expect(store().serialize()).toEqual(TEMPLATE);
  });

  it("serializes what the user edited", () => {
    store().load(TEMPLATE);
    store().setViewport({ x: 1, y: 2, zoom: 1.5 });
    store().onNodesChange([{ id: "loop", type: "dimensions", dimensions: { width: 1000, height: 500 }, setAttributes: true, resizing: true }]);
    store().onNodesChange([{ id: "loop", type: "dimensions", resizing: false }]);
    const out = store().serialize();
    expect(out.viewport).toEqual({ x: 1, y: 2, zoom: 1.5 });
    expect(out.blocks.find((b) => b.id === "loop")?.style).toEqual({ width: 1000, height: 500 });
    expect(store().dirty).toBe(true);
    store().undo();
    expect(store().serialize().blocks.find((b) => b.id === "loop")?.style).toEqual({ width: 980, height: 460 });
  });

  it("markSaved clears dirty only when nothing changed since the save started", () => {
    store().addBlock("http", { x: 0, y: 0 });
    const revision = store().revision;
    store().addBlock("http", { x: 0, y: 0 });
    store().markSaved(revision);
    expect(store().dirty).toBe(true);
    store().markSaved(store().revision);
    expect(store().dirty).toBe(false);
  });
});

describe("undo/redo", () => {
  it("undoes and redoes adds, connects, config edits and deletes", () => {
    const a = store().addBlock("http", { x: 0, y: 0 });
    const b = store().addBlock("http", { x: 300, y: 0 });
    store().connect({ source: a, target: b });
    store().updateConfig(a, "url", "https://a.test");
    store().deleteElements([b]);
    expect(store().nodes).toHaveLength(1);
    store().undo();
    expect(store().nodes).toHaveLength(2);
    expect(store().edges).toHaveLength(1);
    store().undo();
    expect(node(a)?.data.config.url).toBeUndefined();
    store().undo();
    expect(store().edges).toHaveLength(0);
    store().redo();
    store().redo();
    expect(store().edges).toHaveLength(1);
    expect(node(a)?.data.config.url).toBe("https://a.test");
    store().redo();
    expect(store().nodes).toHaveLength(1);
    store().redo(); // nothing left
    expect(store().nodes).toHaveLength(1);
  });

  it("a new edit clears the redo stack; typing in one field is one step", () => {
    const a = store().addBlock("http", { x: 0, y: 0 });
    store().updateConfig(a, "url", "h");
    store().updateConfig(a, "url", "ht");
    store().updateConfig(a, "url", "htt");
    store().undo();
    expect(node(a)?.data.config.url).toBeUndefined();
    store().addBlock("http", { x: 0, y: 0 });
    expect(store().future).toHaveLength(0);
  });

  it("a drag is one undo step", () => {
    const a = store().addBlock("http", { x: 0, y: 0 });
    store().onNodesChange([{ id: a, type: "position", position: { x: 10, y: 0 }, dragging: true }]);
    store().onNodesChange([{ id: a, type: "position", position: { x: 20, y: 5 }, dragging: true }]);
    store().dropNode(a, { x: 30, y: 10 });
    expect(node(a)?.position).toEqual({ x: 20, y: 5 });
    store().undo();
    expect(node(a)?.position).toEqual({ x: 0, y: 0 });
  });

  it("a merge with a version saved elsewhere is one undo step", () => {
    store().load(TEMPLATE);
    store().updateConfig("slack", "text", "mine");
    const merged = store().serialize();
    merged.blocks = merged.blocks.map((b) => (b.id === "agent_analysis" ? { ...b, config: { user_prompt: "theirs" } } : b));
    merged.blocks.push({ id: "extra", type: "http", name: "extra", parent: null, position: { x: 0, y: 0 }, config: {} });
    const before = store().past.length;
    store().applyMerged(merged);
    expect(store().past.length).toBe(before + 1);
    expect(node("agent_analysis")?.data.config.user_prompt).toBe("theirs");
    expect(node("extra")).toBeDefined();
    expect(store().dirty).toBe(true);
    store().undo();
    expect(node("extra")).toBeUndefined();
    expect(node("agent_analysis")?.data.config.user_prompt).toBe("Lead: <lead.name>");
    expect(node("slack")?.data.config.text).toBe("mine");
    store().redo();
    expect(node("extra")).toBeDefined();
  });

  it("keeps a bounded history", () => {
    const a = store().addBlock("http", { x: 0, y: 0 });
    for (let i = 0; i < HISTORY_LIMIT + 20; i++) store().moveBlock(a, { x: i, y: 0 });
    expect(store().past.length).toBe(HISTORY_LIMIT);
  });
});

describe("errors of new blocks and unapplied field text", () => {
  const err = (block_id: string, field: string) => ({ block_id, block: block_id, field, message: `${field} is wrong` });

  it("hides a new block's errors until its field is edited or the user saves / validates", () => {
    store().load({
      blocks: [{ id: "old", type: "http", name: "old", parent: null, position: { x: 0, y: 0 }, config: {} }],
      edges: [],
    });
    const fresh = store().addBlock("http", { x: 300, y: 0 });
    store().setValidation([err("old", "url"), err(fresh, "url"), err(fresh, "headers.X"), { ...err(fresh, "x"), block_id: null }]);
    expect(store().errors.map((e) => `${e.block_id}:${e.field}`)).toEqual(["old:url", "null:x"]);
    expect(store().errorsByBlock[fresh]).toBeUndefined();
    store().updateConfig(fresh, "headers", { X: "1" });
    expect(store().errorsByBlock[fresh]?.map((e) => e.field)).toEqual(["headers.X"]);
    store().revealErrors();
    expect(store().errorsByBlock[fresh]?.map((e) => e.field)).toEqual(["url", "headers.X"]);
    expect(store().errors).toHaveLength(4);
  });

  it("keeps warnings apart from errors, with the same rule for new blocks", () => {
    store().load({
      blocks: [{ id: "old", type: "agent", name: "old", parent: null, position: { x: 0, y: 0 }, config: {} }],
      edges: [],
    });
    const fresh = store().addBlock("agent", { x: 300, y: 0 });
    store().setValidation([err("old", "model")], undefined, [err("old", "user_prompt"), err(fresh, "user_prompt")]);
    expect(store().errors.map((e) => e.field)).toEqual(["model"]);
    expect(store().warnings.map((e) => `${e.block_id}:${e.field}`)).toEqual(["old:user_prompt"]);
    expect(store().warningsByBlock[fresh]).toBeUndefined();
    store().updateConfig(fresh, "user_prompt", "<loop.results>");
    expect(store().warningsByBlock[fresh]?.map((e) => e.field)).toEqual(["user_prompt"]);
    store().setValidation([], undefined, []);
    expect(store().warnings).toEqual([]);
    expect(problemsLabel(2, 1)).toBe("2 problems · 1 warning");
    expect(problemsLabel(0, 3)).toBe("3 warnings");
    expect(problemsLabel(1, 0)).toBe("1 problem");
  });

  it("keeps unparseable field text, marks the graph dirty and lists it for Save", () => {
    store().load({
      blocks: [{ id: "h", type: "http", name: "fetch", parent: null, position: { x: 0, y: 0 }, config: { body: { a: 1 } } }],
      edges: [],
    });
    expect(store().dirty).toBe(false);
    const revision = store().revision;
    store().setFieldDraft("h", "body", { message: "invalid JSON", draft: "{a:" });
    expect(store().dirty).toBe(true);
    expect(store().revision).toBe(revision + 1); // a save in flight does not clear dirty
    expect(store().invalidFields()).toEqual([{ blockId: "h", block: "fetch", field: "body", message: "invalid JSON", draft: "{a:" }]);
    expect(store().serialize().blocks[0].config).toEqual({ body: { a: 1 } }); // the last good value
    store().setFieldDraft("h", "body", null);
    expect(store().invalidFields()).toEqual([]);
    store().setFieldDraft("h", "body", { message: "invalid JSON", draft: "{" });
    store().deleteElements(["h"]);
    expect(store().invalidFields()).toEqual([]);
  });
});
