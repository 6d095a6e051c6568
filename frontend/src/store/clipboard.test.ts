import { beforeEach, describe, expect, it } from "vitest";
import { renameReferenceRoots } from "../panel/refs";
import type { GraphJson } from "../types";
import { copyBlocks, MAX_CLIP_BLOCKS, parseClip, pasteBlocks, type Clip } from "./clipboard";
import { useGraphStore } from "./graphStore";

const store = () => useGraphStore.getState();

const GRAPH: GraphJson = {
  blocks: [
    { id: "webhook_1", type: "webhook", name: "webhook_1", parent: null, position: { x: 0, y: 200 }, config: {} },
    {
      id: "loop_1",
      type: "loop",
      name: "loop_1",
      parent: null,
      position: { x: 300, y: 40 },
      style: { width: 700, height: 300 },
      config: { items: "<webhook_1.body.leads>", variable: "lead", aggregations: { best: "max_by(results, &outputs.agent_1.score)", failed_ai: "length(failed[?block=='agent_1'])" } },
    },
    {
      id: "agent_1",
      type: "agent",
      name: "agent_1",
      parent: "loop_1",
      position: { x: 60, y: 60 },
      config: { user_prompt: "Lead: <lead.name> <loop.index>" },
    },
    {
      id: "db_id",
      type: "database",
      name: "store_lead",
      parent: "loop_1",
      position: { x: 400, y: 60 },
      config: { sql: "INSERT INTO t VALUES (<agent_1.content>, '<env.KEY>')", params: ["<agent_1.content>"] },
    },
  ],
  edges: [
    { source: "webhook_1", target: "loop_1" },
    { source: "loop_1", target: "agent_1", handle: "body" },
    { source: "agent_1", target: "db_id" },
  ],
};

const TYPES = ["webhook", "loop", "agent", "database", "http"];

beforeEach(() => {
  store().setCatalogue(
    TYPES.map((type) => ({ type, label: type, description: "", icon: "x", config_schema: {}, outputs: {} })),
  );
  store().load(GRAPH);
});

function copyLoop(): Clip {
  store().select("loop_1");
  const clip = store().copySelection();
  expect(clip).not.toBeNull();
  return clip as Clip;
}

describe("copy", () => {
  it("takes a loop's children and only the edges among the copied blocks", () => {
    const clip = copyLoop();
    expect(clip.blocks.map((b) => b.name)).toEqual(["loop_1", "agent_1", "store_lead"]);
    expect(clip.edges).toEqual([
      { source: "loop_1", target: "agent_1", handle: "body" },
      { source: "agent_1", target: "db_id" },
    ]);
    // Travels as text.
    expect(parseClip(JSON.stringify(clip))).toEqual(clip);
  });

  it("gives a copied child its absolute position", () => {
    store().select("agent_1");
    const clip = store().copySelection() as Clip;
    expect(clip.blocks).toHaveLength(1);
    expect(clip.blocks[0].position).toEqual({ x: 360, y: 100 });
  });
});

describe("paste", () => {
  it("into a workflow that has the names: unique names, new ids, references inside renamed", () => {
    const clip = copyLoop();
    const ids = store().paste(clip);
    expect(ids).toHaveLength(3);
    const graph = store().serialize();
    const names = graph.blocks.map((b) => b.name);
    expect(new Set(names).size).toBe(names.length);
    expect(new Set(graph.blocks.map((b) => b.id)).size).toBe(graph.blocks.length);
    const byName = Object.fromEntries(graph.blocks.map((b) => [b.name, b]));
    const loop = byName.loop_2;
    const agent = byName.agent_2;
    const db = byName.store_lead_1;
    expect(loop && agent && db).toBeTruthy();
    expect(agent.parent).toBe(loop.id);
    expect(db.parent).toBe(loop.id);
    // Inside the pasted blocks, references follow the renames; others are left alone.
    expect(db.config).toEqual({
      sql: "INSERT INTO t VALUES (<agent_2.content>, '<env.KEY>')",
      params: ["<agent_2.content>"],
    });
    expect(agent.config.user_prompt).toBe("Lead: <lead.name> <loop.index>");
    expect(loop.config.items).toBe("<webhook_1.body.leads>");
    // The loop's expressions read its children's outputs by name: renamed too.
    expect(loop.config.aggregations).toEqual({
      best: "max_by(results, &outputs.agent_2.score)",
      failed_ai: "length(failed[?block=='agent_2'])",
    });
    // The originals are untouched.
    expect(byName.store_lead.config.sql).toContain("<agent_1.content>");
    // Edges among the copies, pointing at the new ids.
    expect(graph.edges).toEqual(
      expect.arrayContaining([
        { source: loop.id, target: agent.id, handle: "body" },
        { source: agent.id, target: db.id },
      ]),
    );
    expect(graph.edges).toHaveLength(5);
    // One undo step; the pasted loop is selected.
    expect(store().selectedId).toBe(loop.id);
    store().undo();
    expect(store().nodes).toHaveLength(4);
  });

  it("into an empty workflow keeps the names", () => {
    const clip = copyLoop();
    store().load({ blocks: [], edges: [] });
    store().paste(clip);
    const graph = store().serialize();
    expect(graph.blocks.map((b) => b.name)).toEqual(["loop_1", "agent_1", "store_lead"]);
    expect(graph.blocks.find((b) => b.name === "store_lead")?.config.sql).toContain("<agent_1.content>");
  });

  it("renames all at once: a → b and b → c never turn a into c", () => {
    const clip: Clip = {
      kind: "klyntos/blocks",
      version: 1,
      blocks: [
        { id: "a", type: "http", name: "http_1", parent: null, position: { x: 0, y: 0 }, config: {} },
        { id: "b", type: "http", name: "http_2", parent: null, position: { x: 0, y: 0 }, config: { url: "<http_1.body>" } },
        { id: "c", type: "http", name: "http_3", parent: null, position: { x: 0, y: 0 }, config: { url: "<http_1.x>/<http_2.y>" } },
      ],
      edges: [],
    };
    store().load({
      blocks: [
        { id: "http_1", type: "http", name: "http_1", parent: null, position: { x: 0, y: 0 }, config: {} },
        { id: "http_2", type: "http", name: "http_2", parent: null, position: { x: 0, y: 0 }, config: {} },
      ],
      edges: [],
    });
    const pasted = pasteBlocks(store().nodes, clip);
    const byOld = Object.fromEntries(clip.blocks.map((b, i) => [b.name, pasted.nodes[i].data]));
    const names = [byOld.http_1.name, byOld.http_2.name, byOld.http_3.name];
    expect(new Set([...names, "http_1", "http_2"]).size).toBe(5);
    expect(byOld.http_2.config.url).toBe(`<${byOld.http_1.name}.body>`);
    expect(byOld.http_3.config.url).toBe(`<${byOld.http_1.name}.x>/<${byOld.http_2.name}.y>`);
  });

  it("at the pointer, inside the loop under it", () => {
    store().select("agent_1");
    const clip = store().copySelection() as Clip;
    // Loop_1 spans x 300..1000, y 40..340.
    const [id] = store().paste(clip, { at: { x: 700, y: 250 } });
    const node = store().nodes.find((n) => n.id === id);
    expect(node?.parentId).toBe("loop_1");
    expect(node?.position).toEqual({ x: 400, y: 210 });
  });

  it("refuses unknown block types with a notice", () => {
    const clip = copyLoop();
    clip.blocks[1] = { ...clip.blocks[1], type: "nope" };
    expect(store().paste(clip)).toEqual([]);
    expect(store().notice?.text).toContain("'nope'");
    expect(store().nodes).toHaveLength(4);
  });
});

describe("duplicate", () => {
  it("copies the selected block next to it, in its loop, with a new name", () => {
    store().select("agent_1");
    const [id] = store().duplicate();
    const copy = store().nodes.find((n) => n.id === id);
    expect(copy?.data.name).toBe("agent_2");
    expect(copy?.parentId).toBe("loop_1");
    expect(copy?.position).toEqual({ x: 100, y: 100 });
    expect(store().selectedId).toBe(id);
  });

  it("does nothing without a selection", () => {
    store().select(null);
    expect(store().duplicate()).toEqual([]);
    expect(store().past).toHaveLength(0);
  });
});

describe("parseClip", () => {
  it("ignores text that is not a clip and explains a damaged one", () => {
    expect(parseClip("hello")).toBeNull();
    expect(parseClip('{"kind": "other"}')).toBeNull();
    expect(parseClip('{"kind": "klyntos/blocks", "blocks": {}}')).toBe("the copied blocks are damaged");
    expect(parseClip('{"kind": "klyntos/blocks", "blocks": [{"id": 1}], "edges": []}')).toBe("the copied blocks are damaged");
    const many = { kind: "klyntos/blocks", blocks: Array.from({ length: MAX_CLIP_BLOCKS + 1 }, () => ({})), edges: [] };
    expect(parseClip(JSON.stringify(many))).toContain(`more than ${MAX_CLIP_BLOCKS}`);
  });
});

describe("pasting an exported workflow's text", () => {
  it("pastes its blocks and edges, renamed where they clash", () => {
    const exported = { kind: "klyntos/workflow", format: 1, name: "x", secrets: [], graph: GRAPH };
    const clip = parseClip(JSON.stringify(exported));
    expect(clip).not.toBeNull();
    expect(typeof clip).not.toBe("string");
    const ids = store().paste(clip as Clip);
    expect(ids).toHaveLength(4);
    const names = store().nodes.map((n) => n.data.name);
    expect(new Set(names).size).toBe(8);
    const db = store().nodes.find((n) => n.data.name === "store_lead_1");
    expect(db?.data.config.sql).toContain("<agent_2.content>");
    expect(parseClip(JSON.stringify({ ...exported, graph: { blocks: 3 } }))).toBe("the copied blocks are damaged");
  });
});

describe("renameReferenceRoots", () => {
  it("renames whole references only, at any depth", () => {
    const names = new Map([["a", "b"]]);
    expect(renameReferenceRoots({ x: ["<a.y> <ab.y> <a> a.y <a.>"] }, names)).toEqual({ x: ["<b.y> <ab.y> <b> a.y <a.>"] });
  });
});

// Keep the copy fixture honest: it is what copyBlocks makes.
it("copyBlocks returns null for nothing", () => {
  expect(copyBlocks(store().nodes, store().edges, [])).toBeNull();
});
