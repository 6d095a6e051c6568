// Three-way merge of a workflow graph, for a save refused because the workflow was saved
// elsewhere meanwhile: `base` is the graph the editor last loaded or saved, `mine` the canvas,
// `theirs` the server's current graph. Blocks and notes are matched by id and merged field by
// field (name, parent, position, size, each config key, pin, …); edges by source/target/handle;
// other top-level keys of the graph one by one; the viewport is always mine (it is a view).
// A change on one side is taken; the same change on both sides is one change; different
// changes of the same field (or an edit against a delete) are conflicts, which the caller
// resolves with a choice per conflict (mine by default, so nothing unchosen is lost silently).
import type { BlockJson, EdgeJson, GraphJson } from "../types";
import { renameReferences } from "./blocks";
import { flowToGraph, graphToFlow } from "./graphJson";

export type Side = "mine" | "theirs";
export type Choices = Readonly<Record<string, Side>>;

export interface Conflict {
  /** Stable across merges of the same three graphs: the key of its choice. */
  key: string;
  what: "block" | "note" | "workflow";
  /** "field": changed differently on both sides; "deleted-there"/"deleted-here": an edit against a delete. */
  kind: "field" | "deleted-there" | "deleted-here";
  id: string;
  /** The block's name (mine when it has one), the note's id or the graph key. */
  name: string;
  /** "config.user_prompt", "name", "position", … ; null for an edit against a delete. */
  field: string | null;
  mine: unknown;
  theirs: unknown;
}

export interface MergeResult {
  graph: GraphJson;
  conflicts: Conflict[];
  /** The changes saved elsewhere that came in without a conflict, for the notice. */
  taken: string[];
  /** Blocks of mine given a new id or name because theirs added the same one. */
  renamed: string[];
}

type Item = Record<string, unknown> & { id: string };
type Graph = GraphJson & Record<string, unknown>;
const GRAPH_KEYS = new Set(["blocks", "edges", "notes", "viewport"]);

/** The graph as the editor writes it, so a mere re-serialisation is never a change. */
export function normalizeGraph(graph: GraphJson | null | undefined): GraphJson {
  return flowToGraph(graphToFlow(graph));
}

/** Deep equality, blind to key order (PostgreSQL's jsonb reorders keys). */
export function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const list = b as unknown[];
    return a.length === list.length && a.every((v, i) => same(v, list[i]));
  }
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** A block's or note's fields: each top-level key but the id, each config key apart. */
function fieldsOf(item: Item | undefined): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!item) return out;
  for (const [key, value] of Object.entries(item)) {
    if (key === "id" || value === undefined) continue;
    if (key === "config" && value && typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) out.set(`config.${k}`, v);
      // An empty config still says "config": keep the key when a block has none.
      out.set("config", {});
    } else out.set(key, value);
  }
  return out;
}

function fromFields(id: string, fields: Map<string, unknown>): Item {
  const item: Item = { id };
  for (const [key, value] of fields) {
    if (value === undefined) continue;
    if (key.startsWith("config.")) {
      const config = (item.config ??= {}) as Record<string, unknown>;
      config[key.slice(7)] = value;
    } else if (key === "config") item.config ??= {};
    else item[key] = value;
  }
  return item;
}

const edgeKey = (e: EdgeJson) => JSON.stringify([e.source, e.target, e.handle ?? ""]);
const byId = <T extends { id: string }>(list: readonly T[]) => new Map(list.map((x) => [x.id, x]));
const blocksOf = (g: GraphJson) => (Array.isArray(g.blocks) ? g.blocks : []) as unknown as Item[];
const notesOf = (g: GraphJson) => (Array.isArray((g as Graph).notes) ? ((g as Graph).notes as Item[]) : []);

/** Three values of one field: the merged value, or a conflict (then `pick` decides). */
function mergeValue(base: unknown, mine: unknown, theirs: unknown): { value: unknown; from: Side | "both" | "conflict" } {
  if (same(mine, theirs)) return { value: mine, from: "both" };
  if (same(mine, base)) return { value: theirs, from: "theirs" };
  if (same(theirs, base)) return { value: mine, from: "mine" };
  return { value: mine, from: "conflict" };
}

/** A fresh name like `stem_N` taken by no id or name of any graph. */
function freshName(name: string, taken: Set<string>): string {
  const stem = name.replace(/_\d+$/, "") || "block";
  for (let i = 2; ; i++) {
    const candidate = `${stem}_${i}`;
    if (!taken.has(candidate)) {
      taken.add(candidate);
      return candidate;
    }
  }
}

/** Renames block `id` (and/or its name) in a graph: edges, children and references follow. */
function renameIn(graph: Graph, id: string, newId: string, oldName: string, newName: string): Graph {
  const blocks = blocksOf(graph).map((b) => {
    let next: Item = b;
    if (b.id === id) next = { ...next, id: newId, name: newName };
    if (b.parent === id) next = { ...next, parent: newId };
    if (oldName !== newName && next.config) next = { ...next, config: renameReferences(next.config, oldName, newName) };
    return next;
  });
  const edges = (graph.edges ?? []).map((e) => ({
    ...e,
    source: e.source === id ? newId : e.source,
    target: e.target === id ? newId : e.target,
  }));
  return { ...graph, blocks: blocks as unknown as BlockJson[], edges };
}

function nameOf(item: Item | undefined): string {
  return item && typeof item.name === "string" ? item.name : (item?.id ?? "");
}

/**
 * Blocks both sides added with the same id but not the same content, or a new block of mine
 * named like another of theirs: mine gets a fresh id / name (its references follow), so
 * both are kept.
 */
function separateCollisions(base: Graph, mine: Graph, theirs: Graph, renamed: string[]): Graph {
  const baseIds = new Set(blocksOf(base).map((b) => b.id));
  const taken = new Set<string>();
  for (const g of [base, mine, theirs]) for (const b of blocksOf(g)) taken.add(b.id).add(nameOf(b));
  const theirBlocks = byId(blocksOf(theirs));
  const theirNames = new Map(blocksOf(theirs).map((b) => [nameOf(b), b.id]));
  let out = mine;
  for (const block of blocksOf(mine)) {
    if (baseIds.has(block.id)) continue;
    const twin = theirBlocks.get(block.id);
    const idClash = twin !== undefined && !same(twin, block);
    const nameOwner = theirNames.get(nameOf(block));
    // Once mine has a new id, even its twin's name is another block's.
    const nameClash = nameOwner !== undefined && (nameOwner !== block.id || idClash);
    if (!idClash && !nameClash) continue;
    const newId = idClash ? freshName(block.id, taken) : block.id;
    const newName = !nameClash ? nameOf(block) : idClash && nameOf(block) === block.id ? newId : freshName(nameOf(block), taken);
    out = renameIn(out, block.id, newId, nameOf(block), newName);
    renamed.push(`your new block '${nameOf(block)}' is now '${newName}' (another '${nameOf(block)}' was added elsewhere)`);
  }
  return out;
}

/**
 * A block renamed on one side only: its references are rewritten on the other side and in
 * the base too, so the rewrites a rename made elsewhere are not read as edits.
 */
function spreadRenames(base: Graph, mine: Graph, theirs: Graph, taken: string[]): [Graph, Graph, Graph] {
  const b = byId(blocksOf(base));
  let [nb, nm, nt] = [base, mine, theirs];
  const namesIn = (g: Graph) => new Set(blocksOf(g).map(nameOf));
  for (const [id, old] of b) {
    const m = byId(blocksOf(nm)).get(id);
    const t = byId(blocksOf(nt)).get(id);
    if (!m || !t) continue;
    const [oldName, mineName, theirName] = [nameOf(old), nameOf(m), nameOf(t)];
    if (mineName === theirName) continue;
    if (mineName === oldName && !namesIn(nm).has(theirName)) {
      nb = renameIn(nb, id, id, oldName, theirName);
      nm = renameIn(nm, id, id, oldName, theirName);
      taken.push(`block '${oldName}' renamed '${theirName}'`);
    } else if (theirName === oldName && !namesIn(nt).has(mineName)) {
      nb = renameIn(nb, id, id, oldName, mineName);
      nt = renameIn(nt, id, id, oldName, mineName);
    }
  }
  return [nb, nm, nt];
}

/** `root` and what `side` holds inside it that `other` lacks (deleted with it there, or added inside here). */
function subtree(side: Map<string, Item>, other: Map<string, Item>, root: string): Set<string> {
  const out = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [id, item] of side) {
      if (!out.has(id) && !other.has(id) && typeof item.parent === "string" && out.has(item.parent)) {
        out.add(id);
        grew = true;
      }
    }
  }
  return out;
}

interface ItemsMerge {
  items: Item[];
  conflicts: Conflict[];
  taken: string[];
}

/**
 * Blocks or notes by id. An item deleted on one side and kept on the other is deleted with
 * what it contains, unless the keeping side edited it or anything inside (or connected a new
 * edge to it): then that whole subtree is one conflict.
 */
function mergeItems(
  what: "block" | "note",
  base: Item[],
  mine: Item[],
  theirs: Item[],
  choices: Choices,
  added: { mine: EdgeJson[]; theirs: EdgeJson[] },
): ItemsMerge {
  const [b, m, t] = [byId(base), byId(mine), byId(theirs)];
  const conflicts: Conflict[] = [];
  const taken: string[] = [];
  const decided = new Map<string, Item | null>(); // id → kept item, or null: removed
  const label = (id: string) => (what === "block" ? `block '${nameOf(m.get(id) ?? t.get(id) ?? b.get(id))}'` : "a note");
  // Edits against deletes, both ways, a subtree at a time: a root is deleted on one side,
  // kept on the other, and not inside another block deleted there too.
  for (const [keeper, deleter, keeperSide] of [
    [m, t, "mine"],
    [t, m, "theirs"],
  ] as const) {
    const deletedWithAncestor = (id: string) => {
      let parent = keeper.get(id)?.parent;
      for (let depth = 0; typeof parent === "string" && depth < keeper.size; depth++) {
        if (b.has(parent) && !deleter.has(parent)) return true;
        parent = keeper.get(parent)?.parent;
      }
      return false;
    };
    for (const id of b.keys()) {
      if (!keeper.has(id) || deleter.has(id) || decided.has(id) || deletedWithAncestor(id)) continue;
      const ids = subtree(keeper, deleter, id);
      const edited = [...ids].some((x) => !b.has(x) || !same(b.get(x), keeper.get(x)));
      const connected = added[keeperSide].some((e) => ids.has(e.source) || ids.has(e.target));
      let keep = false;
      if (edited || connected) {
        const key = `${what}:${id}:deleted`;
        const kind = keeperSide === "mine" ? "deleted-there" : "deleted-here";
        conflicts.push({ key, what, kind, id, name: nameOf(keeper.get(id)), field: null, mine: m.get(id), theirs: t.get(id) });
        keep = (choices[key] ?? "mine") === keeperSide;
      } else if (keeperSide === "mine") taken.push(`${label(id)} removed`);
      for (const x of ids) decided.set(x, keep ? (keeper.get(x) ?? null) : null);
    }
  }
  const items: Item[] = [];
  const seen = new Set<string>();
  const add = (item: Item | null | undefined) => {
    if (!item || seen.has(item.id)) return;
    seen.add(item.id);
    items.push(item);
  };
  for (const id of [...m.keys(), ...[...t.keys()].filter((x) => !m.has(x))]) {
    if (decided.has(id)) {
      add(decided.get(id));
      continue;
    }
    const [old, mi, th] = [b.get(id), m.get(id), t.get(id)];
    if (!mi || !th) {
      // Added on one side (deleted on both, or in a decided subtree, never gets here).
      if (old) continue;
      if (th && !mi) taken.push(what === "block" ? `new block '${nameOf(th)}'` : "a new note");
      add(mi ?? th);
      continue;
    }
    const [fb, fm, ft] = [fieldsOf(old), fieldsOf(mi), fieldsOf(th)];
    const merged = new Map<string, unknown>();
    const theirFields: string[] = [];
    for (const field of new Set([...fm.keys(), ...ft.keys(), ...fb.keys()])) {
      const { value, from } = mergeValue(fb.get(field), fm.get(field), ft.get(field));
      if (from === "conflict") {
        const key = `${what}:${id}:${field}`;
        conflicts.push({ key, what, kind: "field", id, name: nameOf(mi), field, mine: fm.get(field), theirs: ft.get(field) });
        merged.set(field, (choices[key] ?? "mine") === "theirs" ? ft.get(field) : fm.get(field));
      } else {
        merged.set(field, value);
        if (from === "theirs" && old) theirFields.push(field);
      }
    }
    if (theirFields.length) taken.push(`${label(id)} ${describeFields(theirFields)}`);
    add(fromFields(id, merged));
  }
  return { items, conflicts, taken };
}

const FIELD_WORDS: Record<string, string> = { position: "moved", style: "resized", size: "resized", parent: "moved", pin: "test data" };

function describeFields(fields: string[]): string {
  return [...new Set(fields.map((f) => (f.startsWith("config") ? "config" : (FIELD_WORDS[f] ?? f))))].join(", ");
}

/** Parents that did not survive the merge: the block's parent on another side, or the top level. */
function fixParents(blocks: Item[], ...sides: Map<string, Item>[]): Item[] {
  const ids = new Set(blocks.map((b) => b.id));
  return blocks.map((block) => {
    if (typeof block.parent !== "string" || ids.has(block.parent)) return block;
    const other = sides.map((s) => s.get(block.id)?.parent).find((p) => typeof p === "string" && ids.has(p));
    return { ...block, parent: (other as string | undefined) ?? null };
  });
}

/** Merges `base → mine` and `base → theirs`; conflicts take `choices` (mine when unchosen). */
export function mergeGraphs(
  baseGraph: GraphJson,
  mineGraph: GraphJson,
  theirsGraph: GraphJson,
  choices: Choices = {},
): MergeResult {
  const renamed: string[] = [];
  const taken: string[] = [];
  const mineSeparated = separateCollisions(baseGraph as Graph, mineGraph as Graph, theirsGraph as Graph, renamed);
  const [base, mine, theirs] = spreadRenames(baseGraph as Graph, mineSeparated, theirsGraph as Graph, taken);
  const baseEdges = new Set((base.edges ?? []).map(edgeKey));
  const added = {
    mine: (mine.edges ?? []).filter((e) => !baseEdges.has(edgeKey(e))),
    theirs: (theirs.edges ?? []).filter((e) => !baseEdges.has(edgeKey(e))),
  };
  const blocks = mergeItems("block", blocksOf(base), blocksOf(mine), blocksOf(theirs), choices, added);
  const notes = mergeItems("note", notesOf(base), notesOf(mine), notesOf(theirs), choices, { mine: [], theirs: [] });
  const conflicts = [...blocks.conflicts, ...notes.conflicts];
  taken.push(...blocks.taken, ...notes.taken);

  const kept = fixParents(blocks.items, byId(blocksOf(mine)), byId(blocksOf(theirs)), byId(blocksOf(base)));
  const ids = new Set(kept.map((b) => b.id));
  // Edges: kept where both sides kept them, or added on either side; never dangling.
  const mineKeys = new Set((mine.edges ?? []).map(edgeKey));
  const theirKeys = new Set((theirs.edges ?? []).map(edgeKey));
  const edges: EdgeJson[] = [];
  const seen = new Set<string>();
  const names = byId(kept);
  const idSets = new Map<Graph, Set<string>>();
  const sideIds = (g: Graph) => idSets.get(g) ?? idSets.set(g, new Set(blocksOf(g).map((x) => x.id))).get(g)!;
  for (const edge of [...(mine.edges ?? []), ...(theirs.edges ?? [])]) {
    const key = edgeKey(edge);
    if (seen.has(key) || !ids.has(edge.source) || !ids.has(edge.target)) continue;
    seen.add(key);
    const inBoth = mineKeys.has(key) && theirKeys.has(key);
    // Gone with a block one side deleted but the merge kept: it comes back with the block.
    const cascaded = (side: Graph) => !sideIds(side).has(edge.source) || !sideIds(side).has(edge.target);
    if (!inBoth && baseEdges.has(key) && !cascaded(mineKeys.has(key) ? theirs : mine)) {
      if (!mineKeys.has(key) && theirKeys.has(key)) continue; // removed here
      taken.push(`connection ${nameOf(names.get(edge.source))} → ${nameOf(names.get(edge.target))} removed`);
      continue;
    }
    if (!mineKeys.has(key)) taken.push(`new connection ${nameOf(names.get(edge.source))} → ${nameOf(names.get(edge.target))}`);
    edges.push(edge);
  }

  // Other keys of the graph (the workflow-level fields), one by one; the viewport is mine.
  const graph = {} as Graph;
  for (const key of new Set([...Object.keys(mine), ...Object.keys(theirs), ...Object.keys(base)])) {
    if (GRAPH_KEYS.has(key)) continue;
    const { value, from } = mergeValue(base[key], mine[key], theirs[key]);
    if (from === "conflict") {
      const ck = `workflow:${key}`;
      conflicts.push({ key: ck, what: "workflow", kind: "field", id: key, name: "workflow", field: key, mine: mine[key], theirs: theirs[key] });
      graph[key] = (choices[ck] ?? "mine") === "theirs" ? theirs[key] : mine[key];
    } else {
      if (from === "theirs") taken.push(`workflow ${key}`);
      if (value !== undefined) graph[key] = value;
    }
  }
  graph.blocks = kept as unknown as BlockJson[];
  graph.edges = edges;
  if (notes.items.length) graph.notes = notes.items;
  if (mine.viewport) graph.viewport = mine.viewport;
  return { graph, conflicts, taken, renamed };
}

/** "Merged 2 changes saved elsewhere (block 'X' config, new block 'Y')", bounded. */
export function mergeSummary(result: Pick<MergeResult, "taken" | "renamed">, limit = 4): string {
  const { taken, renamed } = result;
  const parts: string[] = [];
  if (taken.length) {
    const listed = taken.slice(0, limit).join(", ") + (taken.length > limit ? `, and ${taken.length - limit} more` : "");
    parts.push(`Merged ${taken.length} change${taken.length === 1 ? "" : "s"} saved elsewhere (${listed})`);
  } else parts.push("Merged with the version saved elsewhere (no other changes)");
  if (renamed.length) parts.push(renamed.slice(0, limit).join("; "));
  return parts.join("; ");
}

/** One line for a conflict: "agent_summary · config.user_prompt: changed here and there". */
export function describeConflict(conflict: Conflict): string {
  const where = conflict.what === "workflow" ? `workflow · ${conflict.field}` : conflict.what === "note" ? "a note" : `block '${conflict.name}'`;
  if (conflict.kind === "deleted-there") return `${where}: edited here, deleted elsewhere`;
  if (conflict.kind === "deleted-here") return `${where}: deleted here, edited elsewhere`;
  return `${conflict.what === "workflow" ? where : `${where} · ${conflict.field}`}: changed here and elsewhere`;
}
