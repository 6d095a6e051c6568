// The graph being edited, in React Flow form, with undo/redo and the server's last validation.
// Kept apart from the run store: run updates never touch this store, so they never re-render
// the graph.
import { applyEdgeChanges, applyNodeChanges } from "@xyflow/react";
import type { Edge, EdgeChange, Node, NodeChange, Viewport, XYPosition } from "@xyflow/react";
import { create } from "zustand";
import type { BlockJson, CatalogueEntry, EdgeJson, GraphJson, ScopeEntry, ValidationError } from "../types";

export const LOOP_TYPE = "loop";
export const TRIGGER_TYPE = "webhook";
export const BODY_HANDLE = "body";
export const HISTORY_LIMIT = 100;
export const NODE_SIZE = { width: 220, height: 64 };
export const LOOP_SIZE = { width: 460, height: 260 };
/** Room a loop keeps for its header (top) and its body handle (left). */
export const LOOP_PADDING = { left: 40, top: 44, right: 24, bottom: 24 };
export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BLOCK_KEYS = new Set(["id", "type", "name", "parent", "config", "position"]);
const COALESCE_MS = 1200;

export interface BlockData extends Record<string, unknown> {
  blockType: string;
  name: string;
  config: Record<string, unknown>;
  /** Unknown keys of the block JSON, stored and returned as-is. */
  extra: Record<string, unknown>;
}

export type BlockNode = Node<BlockData>;
export type FlowEdge = Edge;

export interface ConnectionLike {
  source: string | null;
  target: string | null;
  sourceHandle?: string | null;
  targetHandle?: string | null;
}

interface Snapshot {
  nodes: BlockNode[];
  edges: FlowEdge[];
}

/** A short message over the canvas (refused connection, edges dropped by a move, …). */
export interface Notice {
  text: string;
  kind: "error" | "info";
  /** Offer an Undo button (the change can be undone in one step). */
  undo?: boolean;
  /** Bumped for every notice, so the same text shows again. */
  seq: number;
}

/**
 * A field whose text does not make a value yet (unparseable JSON, a response format with
 * duplicate names): the last valid value stays in the config, the text is kept here (so it
 * survives the settings panel closing) and Save refuses until it is fixed or cleared.
 */
export interface FieldDraft {
  blockId: string;
  field: string;
  message: string;
  draft: unknown;
}

export interface DropOptions {
  /** Where the pointer held the dragged palette entry (a Loop is held by its title bar there). */
  grab?: XYPosition | null;
  /** The visible part of the canvas, in flow coordinates: the new block is kept inside it. */
  bounds?: { x: number; y: number; width: number; height: number } | null;
}

export interface GraphState {
  nodes: BlockNode[];
  edges: FlowEdge[];
  viewport: Viewport | null;
  graphExtra: Record<string, unknown>;
  catalogue: Record<string, CatalogueEntry>;
  selectedId: string | null;
  dirty: boolean;
  /** Bumped on every edit; a save only clears `dirty` if nothing changed meanwhile. */
  revision: number;
  past: Snapshot[];
  future: Snapshot[];
  /** State before the drag/resize in progress (committed as one undo step when it ends). */
  pending: Snapshot | null;
  lastKey: string | null;
  lastTime: number;
  /** The last validation's errors that are shown (see `quiet`). */
  errors: ValidationError[];
  /** Every error of the last validation. */
  allErrors: ValidationError[];
  errorsByBlock: Record<string, ValidationError[]>;
  scopes: Record<string, ScopeEntry[]>;
  /**
   * Blocks added in this session whose errors stay hidden until the user edits a field (only
   * that field's errors then show) or saves / validates: block id → the fields edited so far.
   */
  quiet: Record<string, string[]>;
  fieldDrafts: Record<string, FieldDraft>;
  notice: Notice | null;

  load: (graph: GraphJson | null | undefined) => void;
  serialize: () => GraphJson;
  setCatalogue: (entries: CatalogueEntry[]) => void;
  addBlock: (type: string, position: XYPosition, parent?: string | null) => string;
  /** Adds a block centred on `point` (the pointer), inside the innermost loop under it. */
  dropBlock: (type: string, point: XYPosition, options?: DropOptions) => string;
  canConnect: (connection: ConnectionLike) => string | null;
  connect: (connection: ConnectionLike) => boolean;
  updateConfig: (id: string, field: string, value: unknown) => void;
  rename: (id: string, name: string) => string | null;
  deleteElements: (nodeIds: string[], edgeIds?: string[]) => void;
  moveBlock: (id: string, position: XYPosition) => void;
  reparent: (id: string, parent: string | null) => boolean;
  dropNode: (id: string, point: XYPosition) => void;
  releaseExtent: (id: string) => void;
  loopAt: (point: XYPosition, exclude?: string) => string | null;
  absolutePosition: (id: string) => XYPosition;
  onNodesChange: (changes: NodeChange<BlockNode>[]) => void;
  onEdgesChange: (changes: EdgeChange<FlowEdge>[]) => void;
  endGesture: () => void;
  select: (id: string | null) => void;
  undo: () => void;
  redo: () => void;
  markSaved: (revision: number) => void;
  setValidation: (errors: ValidationError[], scopes?: Record<string, ScopeEntry[]>) => void;
  /** Shows every error of the last validation (after Save / Validate). */
  revealErrors: () => void;
  setViewport: (viewport: Viewport) => void;
  /** Records (or with null clears) a field's text that does not make a value yet. */
  setFieldDraft: (blockId: string, field: string, draft: { message: string; draft: unknown } | null) => void;
  /** Drafts of existing blocks that keep Save from saving, with the block's name. */
  invalidFields: () => (FieldDraft & { block: string })[];
  notify: (text: string, kind?: Notice["kind"], undo?: boolean) => void;
}

export function draftKey(blockId: string, field: string): string {
  return `${blockId}\u0000${field}`;
}

// --- pure helpers -------------------------------------------------------------------------

const byId = (nodes: BlockNode[]) => new Map(nodes.map((n) => [n.id, n]));

export function nodeSize(node: BlockNode): { width: number; height: number } {
  const fallback = node.type === LOOP_TYPE ? LOOP_SIZE : NODE_SIZE;
  const style = (node.style ?? {}) as { width?: unknown; height?: unknown };
  const width = node.width ?? node.measured?.width ?? (typeof style.width === "number" ? style.width : fallback.width);
  const height =
    node.height ?? node.measured?.height ?? (typeof style.height === "number" ? style.height : fallback.height);
  return { width, height };
}

function absoluteOf(nodes: BlockNode[], id: string): XYPosition {
  const map = byId(nodes);
  let x = 0;
  let y = 0;
  const seen = new Set<string>();
  let current = map.get(id);
  while (current && !seen.has(current.id)) {
    seen.add(current.id);
    x += current.position.x;
    y += current.position.y;
    current = current.parentId ? map.get(current.parentId) : undefined;
  }
  return { x, y };
}

function isDescendant(nodes: BlockNode[], id: string, ancestor: string): boolean {
  const map = byId(nodes);
  let parent = map.get(id)?.parentId;
  const seen = new Set<string>();
  while (parent && !seen.has(parent)) {
    if (parent === ancestor) return true;
    seen.add(parent);
    parent = map.get(parent)?.parentId;
  }
  return false;
}

function depthOf(nodes: BlockNode[], id: string): number {
  const map = byId(nodes);
  let depth = 0;
  let parent = map.get(id)?.parentId;
  while (parent && depth < 100) {
    depth += 1;
    parent = map.get(parent)?.parentId;
  }
  return depth;
}

/** Parents before their children (React Flow needs it); otherwise the order is kept. */
export function sortParentsFirst(nodes: BlockNode[]): BlockNode[] {
  const ids = new Set(nodes.map((n) => n.id));
  const placed = new Set<string>();
  const out: BlockNode[] = [];
  let rest = nodes;
  while (rest.length) {
    const next: BlockNode[] = [];
    for (const node of rest) {
      if (!node.parentId || !ids.has(node.parentId) || placed.has(node.parentId)) {
        out.push(node);
        placed.add(node.id);
      } else {
        next.push(node);
      }
    }
    if (next.length === rest.length) {
      out.push(...next); // a parent cycle: give up ordering rather than loop forever
      break;
    }
    rest = next;
  }
  return out;
}

function loopAtIn(nodes: BlockNode[], point: XYPosition, exclude?: string): string | null {
  let best: { id: string; depth: number; index: number } | null = null;
  nodes.forEach((node, index) => {
    if (node.type !== LOOP_TYPE) return;
    if (exclude && (node.id === exclude || isDescendant(nodes, node.id, exclude))) return;
    const { x, y } = absoluteOf(nodes, node.id);
    const { width, height } = nodeSize(node);
    if (point.x < x || point.y < y || point.x > x + width || point.y > y + height) return;
    const depth = depthOf(nodes, node.id);
    if (!best || depth > best.depth || (depth === best.depth && index > best.index)) best = { id: node.id, depth, index };
  });
  return best ? (best as { id: string }).id : null;
}

/** Grow every enclosing loop so that `id` fits inside it with some margin. */
function growParents(nodes: BlockNode[], id: string): BlockNode[] {
  let out = nodes;
  let childId: string | undefined = id;
  for (let guard = 0; childId && guard < 50; guard++) {
    const map = byId(out);
    const child = map.get(childId);
    const parent = child?.parentId ? map.get(child.parentId) : undefined;
    if (!child || !parent) break;
    const size = nodeSize(child);
    const current = nodeSize(parent);
    const width = Math.max(current.width, child.position.x + size.width + LOOP_PADDING.right);
    const height = Math.max(current.height, child.position.y + size.height + LOOP_PADDING.bottom);
    if (width !== current.width || height !== current.height) {
      out = out.map((n) => (n.id === parent.id ? { ...n, width, height, style: { ...n.style, width, height } } : n));
    }
    childId = parent.id;
  }
  return out;
}

function placeInside(position: XYPosition): XYPosition {
  return { x: Math.max(position.x, LOOP_PADDING.left), y: Math.max(position.y, LOOP_PADDING.top) };
}

/** Why an edge may not exist (structure only: parents, handles, trigger), or null. */
function edgeProblem(nodes: BlockNode[], source: string, target: string, handle?: string | null): string | null {
  const map = byId(nodes);
  const s = map.get(source);
  const t = map.get(target);
  if (!s || !t) return "unknown block";
  if (s.id === t.id) return "a block cannot connect to itself";
  if (t.type === TRIGGER_TYPE) return "a trigger cannot have inputs";
  const intoBody = s.type === LOOP_TYPE && t.parentId === s.id;
  if (handle === BODY_HANDLE && !intoBody) return "a loop's body handle feeds the blocks inside that loop";
  if (intoBody) return null;
  if ((s.parentId ?? null) !== (t.parentId ?? null)) return "an edge cannot cross a loop boundary; connect to the loop itself";
  return null;
}

function reaches(edges: FlowEdge[], from: string, to: string): boolean {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.source, [...(next.get(e.source) ?? []), e.target]);
  const stack = [from];
  const seen = new Set<string>();
  while (stack.length) {
    const current = stack.pop() as string;
    if (current === to) return true;
    if (seen.has(current)) continue;
    seen.add(current);
    stack.push(...(next.get(current) ?? []));
  }
  return false;
}

function edgeId(source: string, target: string, handle?: string | null): string {
  return `e:${source}:${handle ?? ""}:${target}`;
}

function toFlowEdge(source: string, target: string, handle?: string | null): FlowEdge {
  return { id: edgeId(source, target, handle), source, target, sourceHandle: handle ?? null };
}

function uniqueName(nodes: BlockNode[], type: string): string {
  const base = type.replace(/[^A-Za-z0-9_]/g, "_").replace(/^([^A-Za-z_])/, "b_$1") || "block";
  const taken = new Set<string>();
  for (const n of nodes) {
    taken.add(n.id);
    taken.add(n.data.name);
  }
  for (let i = 1; ; i++) {
    const candidate = `${base}_${i}`;
    if (!taken.has(candidate)) return candidate;
  }
}

function defaultsOf(entry: CatalogueEntry | undefined): Record<string, unknown> {
  const props = (entry?.config_schema?.properties ?? {}) as Record<string, { default?: unknown }>;
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(props)) {
    if (schema && typeof schema === "object" && "default" in schema) out[key] = structuredClone(schema.default);
  }
  return out;
}

/** Rewrites `<old…>` references to `<new…>` in every string of a config value. */
export function renameReferences(value: unknown, oldName: string, newName: string): unknown {
  if (typeof value === "string") {
    const escaped = oldName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return value.replace(new RegExp(`<${escaped}(?=[.>])`, "g"), `<${newName}`);
  }
  if (Array.isArray(value)) return value.map((v) => renameReferences(v, oldName, newName));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, renameReferences(v, oldName, newName)]),
    );
  }
  return value;
}

function layoutKey(s: Snapshot): string {
  return JSON.stringify([
    s.nodes.map((n) => [n.id, n.parentId ?? null, n.position.x, n.position.y, n.width ?? null, n.height ?? null]),
    s.edges.map((e) => e.id),
  ]);
}

/**
 * Moves `id` under `parent` (null = top level) keeping its place on screen; drops edges that
 * became invalid (`removed` says how many).
 */
function reparentIn(
  nodes: BlockNode[],
  edges: FlowEdge[],
  id: string,
  parent: string | null,
): (Snapshot & { removed: number }) | null {
  const map = byId(nodes);
  const node = map.get(id);
  if (!node) return null;
  if (parent !== null) {
    const target = map.get(parent);
    if (!target || target.type !== LOOP_TYPE || parent === id || isDescendant(nodes, parent, id)) return null;
    if (node.type === TRIGGER_TYPE) return null;
  }
  if ((node.parentId ?? null) === parent) return null;
  const absolute = absoluteOf(nodes, id);
  const origin = parent ? absoluteOf(nodes, parent) : { x: 0, y: 0 };
  let position = { x: absolute.x - origin.x, y: absolute.y - origin.y };
  if (parent) position = placeInside(position);
  let next = nodes.map((n) =>
    n.id === id
      ? ({ ...n, position, parentId: parent ?? undefined, extent: parent ? ("parent" as const) : undefined } as BlockNode)
      : n,
  );
  next = sortParentsFirst(next);
  if (parent) next = growParents(next, id);
  const nextEdges = edges.filter(
    (e) => (e.source !== id && e.target !== id) || edgeProblem(next, e.source, e.target, e.sourceHandle) === null,
  );
  return { nodes: next, edges: nextEdges, removed: edges.length - nextEdges.length };
}

export function removedNotice(count: number): string {
  return `${count} connection${count === 1 ? "" : "s"} removed (they would cross the loop boundary) — Undo to restore`;
}

export const TRIGGER_IN_LOOP = "Triggers cannot go inside loops: it stays at the top level";

/** Top-left corner for a new block of `type` so that the pointer holds it at `anchor`. */
function dropAnchor(type: string, grab?: XYPosition | null): XYPosition {
  const size = type === LOOP_TYPE ? LOOP_SIZE : NODE_SIZE;
  if (type === LOOP_TYPE && grab) {
    // A Loop is a big container: held by its title bar where the palette entry was grabbed,
    // rather than centred (which would drop half of it over its neighbours).
    const x = Math.min(Math.max(grab.x, 12), size.width / 2);
    return { x, y: 17 };
  }
  return { x: size.width / 2, y: size.height / 2 };
}

function clampInto(position: XYPosition, type: string, bounds?: DropOptions["bounds"]): XYPosition {
  if (!bounds) return position;
  const size = type === LOOP_TYPE ? LOOP_SIZE : NODE_SIZE;
  const margin = 8;
  const clamp = (value: number, low: number, size_: number, span: number) =>
    size_ + 2 * margin > span ? value : Math.min(Math.max(value, low + margin), low + span - size_ - margin);
  return {
    x: clamp(position.x, bounds.x, size.width, bounds.width),
    y: clamp(position.y, bounds.y, size.height, bounds.height),
  };
}

function withSelection(nodes: BlockNode[], id: string | null): BlockNode[] {
  return nodes.map((n) => {
    const selected = n.id === id;
    return Boolean(n.selected) === selected ? n : { ...n, selected };
  });
}

function blockToNode(block: BlockJson): BlockNode {
  const isLoop = block.type === LOOP_TYPE;
  const extra: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(block)) {
    if (BLOCK_KEYS.has(key) || (isLoop && key === "style")) continue;
    extra[key] = value;
  }
  const node: BlockNode = {
    id: block.id,
    type: block.type,
    position: { x: Number(block.position?.x) || 0, y: Number(block.position?.y) || 0 },
    data: { blockType: block.type, name: block.name, config: { ...(block.config ?? {}) }, extra },
  };
  if (block.parent) {
    node.parentId = block.parent;
    node.extent = "parent";
  }
  if (isLoop) {
    const width = Number(block.style?.width) || LOOP_SIZE.width;
    const height = Number(block.style?.height) || LOOP_SIZE.height;
    node.width = width;
    node.height = height;
    node.style = { width, height };
  }
  return node;
}

function nodeToBlock(node: BlockNode): BlockJson {
  const block: BlockJson & Record<string, unknown> = {
    ...node.data.extra,
    id: node.id,
    type: node.data.blockType,
    name: node.data.name,
    parent: node.parentId ?? null,
    config: node.data.config,
    position: { x: Math.round(node.position.x), y: Math.round(node.position.y) },
  };
  if (node.type === LOOP_TYPE) {
    const { width, height } = nodeSize(node);
    block.style = { width: Math.round(width), height: Math.round(height) };
  }
  return block;
}

/** The errors to show: all but those of quiet blocks' fields the user has not edited yet. */
function shownErrors(errors: ValidationError[], quiet: Record<string, string[]>): ValidationError[] {
  if (!Object.keys(quiet).length) return errors;
  return errors.filter((e) => {
    const touched = e.block_id ? quiet[e.block_id] : undefined;
    if (!touched) return true;
    return touched.some((field) => e.field === field || e.field.startsWith(`${field}.`));
  });
}

function groupErrors(errors: ValidationError[]): Record<string, ValidationError[]> {
  const out: Record<string, ValidationError[]> = {};
  for (const e of errors) {
    if (!e.block_id) continue;
    (out[e.block_id] ??= []).push(e);
  }
  return out;
}

// --- the store ----------------------------------------------------------------------------

export const useGraphStore = create<GraphState>()((set, get) => {
  /** Applies an edit as one undo step; `key` coalesces rapid edits of the same field. */
  const commit = (next: Partial<Snapshot> & Partial<GraphState>, key?: string) => {
    const state = get();
    const now = Date.now();
    const coalesce = key !== undefined && key === state.lastKey && now - state.lastTime < COALESCE_MS;
    const past = coalesce ? state.past : [...state.past, { nodes: state.nodes, edges: state.edges }].slice(-HISTORY_LIMIT);
    set({
      ...next,
      past,
      future: [],
      dirty: true,
      revision: state.revision + 1,
      lastKey: key ?? null,
      lastTime: now,
      pending: null,
    });
  };

  const snapshot = (): Snapshot => ({ nodes: get().nodes, edges: get().edges });

  /** Marks a field of a quiet (new) block as edited: its errors show from now on. */
  const touch = (id: string, field: string): Partial<GraphState> => {
    const { quiet, allErrors } = get();
    const fields = quiet[id];
    if (!fields || fields.includes(field)) return {};
    const nextQuiet = { ...quiet, [id]: [...fields, field] };
    const shown = shownErrors(allErrors, nextQuiet);
    return { quiet: nextQuiet, errors: shown, errorsByBlock: groupErrors(shown) };
  };

  return {
    nodes: [],
    edges: [],
    viewport: null,
    graphExtra: {},
    catalogue: {},
    selectedId: null,
    dirty: false,
    revision: 0,
    past: [],
    future: [],
    pending: null,
    lastKey: null,
    lastTime: 0,
    errors: [],
    allErrors: [],
    errorsByBlock: {},
    scopes: {},
    quiet: {},
    fieldDrafts: {},
    notice: null,

    load: (graph) => {
      const blocks = Array.isArray(graph?.blocks) ? graph.blocks : [];
      const ids = new Set(blocks.map((b) => b.id));
      const nodes = sortParentsFirst(
        blocks.map((b) => blockToNode(b.parent && !ids.has(b.parent) ? { ...b, parent: null } : b)),
      );
      const seen = new Set<string>();
      const edges: FlowEdge[] = [];
      for (const e of Array.isArray(graph?.edges) ? graph.edges : []) {
        const edge = toFlowEdge(e.source, e.target, e.handle);
        if (seen.has(edge.id)) edge.id = `${edge.id}:${edges.length}`;
        seen.add(edge.id);
        edges.push(edge);
      }
      const { blocks: _b, edges: _e, viewport, ...graphExtra } = (graph ?? {}) as GraphJson & Record<string, unknown>;
      void _b;
      void _e;
      set({
        nodes,
        edges,
        viewport: viewport && typeof viewport === "object" ? viewport : null,
        graphExtra,
        selectedId: null,
        dirty: false,
        revision: get().revision + 1,
        past: [],
        future: [],
        pending: null,
        lastKey: null,
        errors: [],
        allErrors: [],
        errorsByBlock: {},
        scopes: {},
        quiet: {},
        fieldDrafts: {},
        notice: null,
      });
    },

    serialize: () => {
      const { nodes, edges, viewport, graphExtra } = get();
      const graph: GraphJson & Record<string, unknown> = {
        ...graphExtra,
        blocks: nodes.map(nodeToBlock),
        edges: edges.map(
          (e): EdgeJson => ({ source: e.source, target: e.target, ...(e.sourceHandle ? { handle: e.sourceHandle } : {}) }),
        ),
      };
      if (viewport) graph.viewport = { x: viewport.x, y: viewport.y, zoom: viewport.zoom };
      return graph;
    },

    setCatalogue: (entries) => set({ catalogue: Object.fromEntries(entries.map((e) => [e.type, e])) }),

    addBlock: (type, position, parent = null) => {
      const { nodes, catalogue } = get();
      const map = byId(nodes);
      let parentId = parent;
      let pos = { ...position };
      if (parentId && (map.get(parentId)?.type !== LOOP_TYPE || type === TRIGGER_TYPE)) {
        // Triggers stay at the top level; a non-loop cannot hold blocks.
        const origin = map.has(parentId) ? absoluteOf(nodes, parentId) : { x: 0, y: 0 };
        pos = { x: pos.x + origin.x, y: pos.y + origin.y };
        parentId = null;
      }
      const id = uniqueName(nodes, type);
      const node: BlockNode = {
        id,
        type,
        position: parentId ? placeInside(pos) : pos,
        selected: true,
        data: { blockType: type, name: id, config: defaultsOf(catalogue[type]), extra: {} },
      };
      if (parentId) {
        node.parentId = parentId;
        node.extent = "parent";
      }
      if (type === LOOP_TYPE) {
        node.width = LOOP_SIZE.width;
        node.height = LOOP_SIZE.height;
        node.style = { ...LOOP_SIZE };
      }
      let next = sortParentsFirst([...withSelection(nodes, null), node]);
      if (parentId) next = growParents(next, id);
      // A new block's errors wait until the user edits it (or saves / validates).
      commit({ nodes: next, selectedId: id, quiet: { ...get().quiet, [id]: [] } });
      return id;
    },

    dropBlock: (type, point, options = {}) => {
      const nodes = get().nodes;
      const under = loopAtIn(nodes, point);
      const parent = type === TRIGGER_TYPE ? null : under;
      const anchor = dropAnchor(type, options.grab);
      const topLeft = clampInto({ x: point.x - anchor.x, y: point.y - anchor.y }, type, options.bounds);
      const origin = parent ? absoluteOf(nodes, parent) : { x: 0, y: 0 };
      const id = get().addBlock(type, { x: topLeft.x - origin.x, y: topLeft.y - origin.y }, parent);
      if (type === TRIGGER_TYPE && under) get().notify(TRIGGER_IN_LOOP);
      return id;
    },

    canConnect: ({ source, target, sourceHandle }) => {
      if (!source || !target) return "pick two blocks";
      const { nodes, edges } = get();
      const problem = edgeProblem(nodes, source, target, sourceHandle);
      if (problem) return problem;
      if (edges.some((e) => e.source === source && e.target === target)) return "these blocks are already connected";
      if (reaches(edges, target, source)) return "this connection would make a cycle";
      return null;
    },

    connect: (connection) => {
      if (get().canConnect(connection) !== null) return false;
      const { nodes, edges } = get();
      const map = byId(nodes);
      const source = connection.source as string;
      const target = connection.target as string;
      const handle = map.get(source)?.type === LOOP_TYPE && map.get(target)?.parentId === source ? BODY_HANDLE : null;
      commit({ edges: [...edges, toFlowEdge(source, target, handle)] });
      return true;
    },

    updateConfig: (id, field, value) => {
      const nodes = get().nodes;
      const node = nodes.find((n) => n.id === id);
      if (!node) return;
      const config = { ...node.data.config };
      if (value === undefined) delete config[field];
      else config[field] = value;
      commit(
        { nodes: nodes.map((n) => (n.id === id ? { ...n, data: { ...n.data, config } } : n)), ...touch(id, field) },
        `config:${id}:${field}`,
      );
    },

    rename: (id, raw) => {
      const name = raw.trim();
      const nodes = get().nodes;
      const node = nodes.find((n) => n.id === id);
      if (!node) return "no such block";
      if (name === node.data.name) return null;
      if (!NAME_PATTERN.test(name)) return "a name is letters, digits and _ and starts with a letter";
      if (name === "env") return "'env' is reserved for secrets";
      if (nodes.some((n) => n.id !== id && n.data.name === name)) return `another block is named '${name}'`;
      const old = node.data.name;
      const next = nodes.map((n) => {
        if (n.id === id) return { ...n, data: { ...n.data, name } };
        const config = renameReferences(n.data.config, old, name) as Record<string, unknown>;
        return JSON.stringify(config) === JSON.stringify(n.data.config) ? n : { ...n, data: { ...n.data, config } };
      });
      commit({ nodes: next, ...touch(id, "name") });
      return null;
    },

    deleteElements: (nodeIds, edgeIds = []) => {
      const { nodes, edges, selectedId } = get();
      const doomed = new Set(nodeIds.filter((id) => nodes.some((n) => n.id === id)));
      for (const n of nodes) if (nodeIds.some((id) => isDescendant(nodes, n.id, id))) doomed.add(n.id);
      const edgeSet = new Set(edgeIds);
      const nextEdges = edges.filter((e) => !edgeSet.has(e.id) && !doomed.has(e.source) && !doomed.has(e.target));
      if (doomed.size === 0 && nextEdges.length === edges.length) return;
      const fieldDrafts = Object.fromEntries(Object.entries(get().fieldDrafts).filter(([, d]) => !doomed.has(d.blockId)));
      commit({
        nodes: nodes.filter((n) => !doomed.has(n.id)),
        edges: nextEdges,
        selectedId: selectedId && doomed.has(selectedId) ? null : selectedId,
        fieldDrafts,
      });
    },

    moveBlock: (id, position) => {
      const nodes = get().nodes;
      if (!nodes.some((n) => n.id === id)) return;
      let next = nodes.map((n) => (n.id === id ? { ...n, position: { ...position } } : n));
      next = growParents(next, id);
      commit({ nodes: next });
    },

    reparent: (id, parent) => {
      const result = reparentIn(get().nodes, get().edges, id, parent);
      if (!result) return false;
      const { removed, ...next } = result;
      commit(next);
      if (removed) get().notify(removedNotice(removed), "info", true);
      return true;
    },

    dropNode: (id, point) => {
      const state = get();
      const base = state.pending ?? snapshot();
      let nodes = state.nodes;
      let edges = state.edges;
      const node = nodes.find((n) => n.id === id);
      let removed = 0;
      let triggerRefused = false;
      if (node) {
        const under = loopAtIn(nodes, point, id);
        triggerRefused = node.type === TRIGGER_TYPE && under !== null;
        const target = node.type === TRIGGER_TYPE ? null : under;
        const moved = reparentIn(nodes, edges, id, target);
        if (moved) {
          nodes = moved.nodes;
          edges = moved.edges;
          removed = moved.removed;
        } else if (node.parentId) {
          // Stayed in its loop: back inside the rectangle, and clamped to it again.
          nodes = nodes.map((n) =>
            n.id === id ? { ...n, position: placeInside(n.position), extent: "parent" as const } : n,
          );
          nodes = growParents(nodes, id);
        }
      }
      if (layoutKey(base) !== layoutKey({ nodes, edges })) {
        set({
          nodes,
          edges,
          past: [...state.past, base].slice(-HISTORY_LIMIT),
          future: [],
          dirty: true,
          revision: state.revision + 1,
          pending: null,
          lastKey: null,
        });
      } else {
        set({ nodes, edges, pending: null });
      }
      if (removed) get().notify(removedNotice(removed), "info", true);
      else if (triggerRefused) get().notify(TRIGGER_IN_LOOP);
    },

    releaseExtent: (id) => {
      const nodes = get().nodes;
      const node = nodes.find((n) => n.id === id);
      if (!node || node.extent !== "parent") return;
      set({
        pending: get().pending ?? snapshot(),
        nodes: nodes.map((n) => (n.id === id ? { ...n, extent: undefined } : n)),
      });
    },

    loopAt: (point, exclude) => loopAtIn(get().nodes, point, exclude),

    absolutePosition: (id) => absoluteOf(get().nodes, id),

    onNodesChange: (changes) => {
      const kept = changes.filter((c) => c.type !== "remove");
      if (!kept.length) return;
      const state = get();
      let pending = state.pending;
      let discrete = false;
      let resizeEnded = false;
      for (const c of kept) {
        if (c.type === "position" && c.dragging) pending ??= snapshot();
        else if (c.type === "position" && c.position && !pending) discrete = true;
        if (c.type === "dimensions" && c.resizing) pending ??= snapshot();
        if (c.type === "dimensions" && c.resizing === false) resizeEnded = true;
      }
      let nodes = applyNodeChanges(kept, state.nodes);
      // Keep a loop's size in style too (what is saved), as NodeResizer sets width/height.
      if (kept.some((c) => c.type === "dimensions" && c.setAttributes)) {
        nodes = nodes.map((n) =>
          n.type === LOOP_TYPE && (n.width !== (n.style as { width?: number })?.width || n.height !== (n.style as { height?: number })?.height)
            ? { ...n, style: { ...n.style, width: n.width, height: n.height } }
            : n,
        );
      }
      const patch: Partial<GraphState> = { nodes, pending };
      if (kept.some((c) => c.type === "select")) {
        const selected = nodes.filter((n) => n.selected);
        patch.selectedId = selected.length === 1 ? selected[0].id : selected.length ? state.selectedId : null;
        if (patch.selectedId && !selected.some((n) => n.id === patch.selectedId)) patch.selectedId = selected[0].id;
      }
      if (discrete) {
        set({ ...patch, pending: null });
        const before = { nodes: state.nodes, edges: state.edges };
        set({
          past: [...state.past, before].slice(-HISTORY_LIMIT),
          future: [],
          dirty: true,
          revision: state.revision + 1,
          lastKey: null,
        });
        return;
      }
      set(patch);
      if (resizeEnded) get().endGesture();
    },

    onEdgesChange: (changes) => {
      const kept = changes.filter((c) => c.type !== "remove");
      if (kept.length) set({ edges: applyEdgeChanges(kept, get().edges) });
    },

    endGesture: () => {
      const state = get();
      const base = state.pending;
      if (!base) return;
      if (layoutKey(base) !== layoutKey({ nodes: state.nodes, edges: state.edges })) {
        set({
          past: [...state.past, base].slice(-HISTORY_LIMIT),
          future: [],
          dirty: true,
          revision: state.revision + 1,
          pending: null,
          lastKey: null,
        });
      } else {
        set({ pending: null });
      }
    },

    select: (id) => set({ nodes: withSelection(get().nodes, id), selectedId: id }),

    undo: () => {
      const state = get();
      const previous = state.past[state.past.length - 1];
      if (!previous) return;
      set({
        nodes: previous.nodes,
        edges: previous.edges,
        past: state.past.slice(0, -1),
        future: [{ nodes: state.nodes, edges: state.edges }, ...state.future].slice(0, HISTORY_LIMIT),
        dirty: true,
        revision: state.revision + 1,
        pending: null,
        lastKey: null,
        selectedId: previous.nodes.some((n) => n.id === state.selectedId) ? state.selectedId : null,
      });
    },

    redo: () => {
      const state = get();
      const next = state.future[0];
      if (!next) return;
      set({
        nodes: next.nodes,
        edges: next.edges,
        past: [...state.past, { nodes: state.nodes, edges: state.edges }].slice(-HISTORY_LIMIT),
        future: state.future.slice(1),
        dirty: true,
        revision: state.revision + 1,
        pending: null,
        lastKey: null,
        selectedId: next.nodes.some((n) => n.id === state.selectedId) ? state.selectedId : null,
      });
    },

    markSaved: (revision) => {
      if (get().revision === revision) set({ dirty: false });
    },

    setValidation: (errors, scopes) => {
      const shown = shownErrors(errors, get().quiet);
      set({ allErrors: errors, errors: shown, errorsByBlock: groupErrors(shown), ...(scopes ? { scopes } : {}) });
    },

    revealErrors: () => {
      const all = get().allErrors;
      set({ quiet: {}, errors: all, errorsByBlock: groupErrors(all) });
    },

    setViewport: (viewport) => set({ viewport }),

    setFieldDraft: (blockId, field, draft) => {
      const key = draftKey(blockId, field);
      const state = get();
      const had = key in state.fieldDrafts;
      if (!draft) {
        if (!had) return;
        const { [key]: _gone, ...rest } = state.fieldDrafts;
        void _gone;
        set({ fieldDrafts: rest });
        return;
      }
      const fieldDrafts = { ...state.fieldDrafts, [key]: { blockId, field, ...draft } };
      // Unsaved work: dirty (and a new revision, so a save in flight does not clear it).
      set(had ? { fieldDrafts, dirty: true } : { fieldDrafts, dirty: true, revision: state.revision + 1, ...touch(blockId, field) });
    },

    invalidFields: () => {
      const { fieldDrafts, nodes } = get();
      const map = byId(nodes);
      return Object.values(fieldDrafts)
        .filter((d) => map.has(d.blockId))
        .map((d) => ({ ...d, block: map.get(d.blockId)!.data.name }));
    },

    notify: (text, kind = "error", undo = false) => set({ notice: { text, kind, undo, seq: (get().notice?.seq ?? 0) + 1 } }),
  };
});

/** Errors of one config field: its own name, or a dotted path starting with it. */
export function fieldErrors(errors: ValidationError[] | undefined, field: string): ValidationError[] {
  return (errors ?? []).filter((e) => e.field === field || e.field.startsWith(`${field}.`));
}
