// The graph being edited, in React Flow form, with undo/redo and the server's last validation.
// Kept apart from the run store: run updates never touch this store, so they never re-render
// the graph. The rules live in the modules imported below; this file only wires them to state.
import { applyEdgeChanges, applyNodeChanges } from "@xyflow/react";
import type { EdgeChange, NodeChange, Viewport, XYPosition } from "@xyflow/react";
import { create } from "zustand";
import type { BlockPin, CatalogueEntry, GraphJson, ScopeEntry, ValidationError } from "../types";
import { nameProblem, newBlock, renamed, uniqueName, variableOf, withVariableRenamed } from "./blocks";
import { autoLayout } from "./layout";
import { copyBlocks, pasteBlocks, withPasted, type Clip, type PasteOptions } from "./clipboard";
import {
  connectionProblem,
  edgeFor,
  removedNotice,
  TRIGGER_IN_LOOP,
  type ConnectionLike,
} from "./connections";
import { absoluteOf, clampInto, dropAnchor, growParents, loopAtIn, placeInside, type DropOptions } from "./geometry";
import { flowToGraph, graphToFlow } from "./graphJson";
import { isDescendant, sortParentsFirst } from "./hierarchy";
import {
  coalesces,
  commitPatch,
  layoutChanged,
  redoPatch,
  snapshotOf,
  stepPatch,
  undoPatch,
  type HistoryState,
  type Snapshot,
} from "./history";
import {
  byId,
  isTrigger,
  isNote,
  LOOP_TYPE,
  MAX_NOTE_CHARS,
  NOTE_SIZE,
  NOTE_TYPE,
  withSelection,
  type BlockNode,
  type FlowEdge,
} from "./model";
import { reparentIn } from "./reparent";
import { draftKey, groupErrors, invalidDrafts, shownErrors, touchField, type FieldDraft } from "./validation";

// The public API, unchanged by the split into modules.
export { NAME_PATTERN, renameReferences } from "./blocks";
export { removedNotice, TRIGGER_IN_LOOP, type ConnectionLike } from "./connections";
export { nodeSize, type DropOptions } from "./geometry";
export { sortParentsFirst } from "./hierarchy";
export { HISTORY_LIMIT } from "./history";
export {
  BODY_HANDLE,
  LOOP_PADDING,
  LOOP_SIZE,
  LOOP_TYPE,
  MAX_NOTE_CHARS,
  NODE_SIZE,
  NOTE_TYPE,
  TRIGGER_TYPE,
  isNote,
  type BlockData,
  type BlockNode,
  type FlowEdge,
} from "./model";
export { draftKey, fieldErrors, type FieldDraft } from "./validation";
export { CLIP_KIND, parseClip, type Clip, type PasteOptions } from "./clipboard";

/** What a graph saves (blocks, edges, notes; not the selection or the viewport). */
function contentKey(s: Snapshot): string {
  return JSON.stringify(flowToGraph({ nodes: s.nodes, edges: s.edges, viewport: null, graphExtra: {} }));
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

export interface GraphState extends HistoryState {
  viewport: Viewport | null;
  graphExtra: Record<string, unknown>;
  catalogue: Record<string, CatalogueEntry>;
  /** The last validation's errors that are shown (see `quiet`). */
  errors: ValidationError[];
  /** Every error of the last validation. */
  allErrors: ValidationError[];
  errorsByBlock: Record<string, ValidationError[]>;
  /** The last validation's warnings that are shown (same `quiet` rule): never block a save or run. */
  warnings: ValidationError[];
  /** Every warning of the last validation. */
  allWarnings: ValidationError[];
  warningsByBlock: Record<string, ValidationError[]>;
  scopes: Record<string, ScopeEntry[]>;
  /**
   * Blocks added in this session whose errors stay hidden until the user edits a field (only
   * that field's errors then show) or saves / validates: block id → the fields edited so far.
   */
  quiet: Record<string, string[]>;
  fieldDrafts: Record<string, FieldDraft>;
  notice: Notice | null;
  /** The last loaded or saved graph's content: an undo back to it is not an unsaved change. */
  savedKey: string;

  load: (graph: GraphJson | null | undefined) => void;
  serialize: () => GraphJson;
  setCatalogue: (entries: CatalogueEntry[]) => void;
  addBlock: (type: string, position: XYPosition, parent?: string | null) => string;
  /** Adds a block centred on `point` (the pointer), inside the innermost loop under it. */
  dropBlock: (type: string, point: XYPosition, options?: DropOptions) => string;
  canConnect: (connection: ConnectionLike) => string | null;
  connect: (connection: ConnectionLike) => boolean;
  updateConfig: (id: string, field: string, value: unknown) => void;
  /** Sets (or, with null, clears) a block's pinned test data: saved with the draft, never run. */
  setPin: (id: string, pin: BlockPin | null) => void;
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
  /** Selects the edge `id` alone (no block selected). */
  selectEdge: (id: string) => void;
  /** Loops among `ids` that hold blocks, with how many blocks each holds (deleting asks first). */
  loopsWithChildren: (ids: string[]) => { name: string; count: number }[];
  /** The selected blocks (several after a box selection or Shift+click). */
  selectedIds: () => string[];
  /** The selected blocks with what they contain and the edges among them, or null. */
  copySelection: () => Clip | null;
  /** Adds a copy of the clip (new ids, unique names, references renamed) as one undo step. */
  paste: (clip: Clip, options?: PasteOptions) => string[];
  /** Ctrl+D: pastes a copy of the selection next to it, in the same loop. */
  duplicate: () => string[];
  /** Adds a sticky note (saved with the graph, never run) with its top-left at `position`. */
  addNote: (position: XYPosition, text?: string) => string;
  updateNote: (id: string, text: string) => void;
  /** Shift+L: lays out every level in layers along its edges, loops fitted to their body. */
  layout: () => void;
  undo: () => void;
  redo: () => void;
  /** Replaces the graph with a merge of the server's (one undo step back to what was here). */
  applyMerged: (graph: GraphJson) => void;
  markSaved: (revision: number) => void;
  setValidation: (errors: ValidationError[], scopes?: Record<string, ScopeEntry[]>, warnings?: ValidationError[]) => void;
  /** Shows every error of the last validation (after Save / Validate). */
  revealErrors: () => void;
  setViewport: (viewport: Viewport) => void;
  /** Records (or with null clears) a field's text that does not make a value yet. */
  setFieldDraft: (blockId: string, field: string, draft: { message: string; draft: unknown } | null) => void;
  /** Drafts of existing blocks that keep Save from saving, with the block's name. */
  invalidFields: () => (FieldDraft & { block: string })[];
  notify: (text: string, kind?: Notice["kind"], undo?: boolean) => void;
}

export const useGraphStore = create<GraphState>()((set, get) => {
  /** Applies an edit as one undo step; `key` coalesces rapid edits of the same field. */
  const commit = (next: Partial<Snapshot> & Partial<GraphState>, key?: string) => {
    set({ ...next, ...commitPatch(get(), key, Date.now()) });
  };

  const snapshot = (): Snapshot => snapshotOf(get());

  /** Whether `s` (restored by undo/redo) is not what was last loaded or saved. */
  const differsFromSaved = (s: Snapshot): boolean =>
    contentKey(s) !== get().savedKey || Object.keys(get().fieldDrafts).length > 0;

  /**
   * `nodes` (loop `id` holding its new variable) with the loop's `<variable…>` references
   * following it. Typing is one coalesced step, so they are rewritten from the state before
   * it: names passed through mid-typing (`l`, `1x`) never catch or lose a reference.
   */
  const withLoopVariable = (nodes: BlockNode[], id: string, key: string): BlockNode[] => {
    const state = get();
    const base = coalesces(state, key, Date.now()) ? state.past[state.past.length - 1] : null;
    const before = (base ?? state).nodes;
    const baseConfigs = new Map(before.map((n) => [n.id, n.data.config]));
    const restored = nodes.map((n) => {
      const config = baseConfigs.get(n.id);
      return n.id !== id && config && config !== n.data.config && isDescendant(nodes, n.id, id) ? { ...n, data: { ...n.data, config } } : n;
    });
    const from = variableOf(before.find((n) => n.id === id)?.data.config ?? {});
    const to = variableOf(nodes.find((n) => n.id === id)?.data.config ?? {});
    return withVariableRenamed(restored, id, from, to);
  };

  const touch = (id: string, field: string): Partial<GraphState> => {
    const { quiet, allErrors, allWarnings } = get();
    const patch = touchField(quiet, allErrors, id, field);
    if (!patch.quiet) return patch;
    const warnings = shownErrors(allWarnings, patch.quiet);
    return { ...patch, warnings, warningsByBlock: groupErrors(warnings) };
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
    warnings: [],
    allWarnings: [],
    warningsByBlock: {},
    scopes: {},
    quiet: {},
    fieldDrafts: {},
    notice: null,
    savedKey: "",

    load: (graph) => {
      const { nodes, edges, viewport, graphExtra } = graphToFlow(graph);
      set({
        savedKey: contentKey({ nodes, edges }),
        nodes,
        edges,
        viewport,
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
        warnings: [],
        allWarnings: [],
        warningsByBlock: {},
        scopes: {},
        quiet: {},
        fieldDrafts: {},
        notice: null,
      });
    },

    serialize: () => flowToGraph(get()),

    setCatalogue: (entries) => set({ catalogue: Object.fromEntries(entries.map((e) => [e.type, e])) }),

    addBlock: (type, position, parent = null) => {
      const { nodes, catalogue } = get();
      const map = byId(nodes);
      let parentId = parent;
      let pos = { ...position };
      if (parentId && (map.get(parentId)?.type !== LOOP_TYPE || isTrigger(type))) {
        // Triggers stay at the top level; a non-loop cannot hold blocks.
        const origin = map.has(parentId) ? absoluteOf(nodes, parentId) : { x: 0, y: 0 };
        pos = { x: pos.x + origin.x, y: pos.y + origin.y };
        parentId = null;
      }
      const id = uniqueName(nodes, type);
      const node = newBlock(id, type, parentId ? placeInside(pos) : pos, parentId, catalogue[type]);
      let next = sortParentsFirst([...withSelection(nodes, null), node]);
      if (parentId) next = growParents(next, id);
      // A new block's errors wait until the user edits it (or saves / validates).
      commit({ nodes: next, selectedId: id, quiet: { ...get().quiet, [id]: [] } });
      return id;
    },

    dropBlock: (type, point, options = {}) => {
      const nodes = get().nodes;
      const under = loopAtIn(nodes, point);
      const parent = isTrigger(type) ? null : under;
      const anchor = dropAnchor(type, options.grab);
      const topLeft = clampInto({ x: point.x - anchor.x, y: point.y - anchor.y }, type, options.bounds);
      const origin = parent ? absoluteOf(nodes, parent) : { x: 0, y: 0 };
      const id = get().addBlock(type, { x: topLeft.x - origin.x, y: topLeft.y - origin.y }, parent);
      if (isTrigger(type) && under) get().notify(TRIGGER_IN_LOOP);
      return id;
    },

    canConnect: (connection) => connectionProblem(get().nodes, get().edges, connection),

    connect: (connection) => {
      if (get().canConnect(connection) !== null) return false;
      const { nodes, edges } = get();
      commit({ edges: [...edges, edgeFor(nodes, connection.source as string, connection.target as string)] });
      return true;
    },

    updateConfig: (id, field, value) => {
      const nodes = get().nodes;
      const node = nodes.find((n) => n.id === id);
      if (!node) return;
      const config = { ...node.data.config };
      if (value === undefined) delete config[field];
      else config[field] = value;
      const key = `config:${id}:${field}`;
      let next = nodes.map((n) => (n.id === id ? { ...n, data: { ...n.data, config } } : n));
      if (node.type === LOOP_TYPE && field === "variable") next = withLoopVariable(next, id, key);
      commit({ nodes: next, ...touch(id, field) }, key);
    },

    setPin: (id, pin) => {
      const nodes = get().nodes;
      const node = nodes.find((n) => n.id === id);
      if (!node) return;
      const { pin: _old, ...extra } = node.data.extra;
      void _old;
      if (pin) extra.pin = pin;
      commit({ nodes: nodes.map((n) => (n.id === id ? { ...n, data: { ...n.data, extra } } : n)) });
    },

    rename: (id, raw) => {
      const name = raw.trim();
      const nodes = get().nodes;
      const node = nodes.find((n) => n.id === id);
      if (!node) return "no such block";
      if (name === node.data.name) return null;
      const problem = nameProblem(nodes, id, name);
      if (problem) return problem;
      commit({ nodes: renamed(nodes, id, node.data.name, name), ...touch(id, "name") });
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
      if (node && !isNote(node)) {
        const under = loopAtIn(nodes, point, id);
        triggerRefused = isTrigger(node.type) && under !== null;
        const target = isTrigger(node.type) ? null : under;
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
      if (layoutChanged(base, { nodes, edges })) set({ nodes, edges, ...stepPatch(state, base) });
      else set({ nodes, edges, pending: null });
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
          (n.type === LOOP_TYPE || isNote(n)) && (n.width !== (n.style as { width?: number })?.width || n.height !== (n.style as { height?: number })?.height)
            ? { ...n, style: { ...n.style, width: n.width, height: n.height } }
            : n,
        );
      }
      const patch: Partial<GraphState> = { nodes, pending };
      if (kept.some((c) => c.type === "select")) {
        const selected = nodes.filter((n) => n.selected && !isNote(n));
        patch.selectedId = selected.length === 1 ? selected[0].id : selected.length ? state.selectedId : null;
        if (patch.selectedId && !selected.some((n) => n.id === patch.selectedId)) patch.selectedId = selected[0].id;
      }
      if (discrete) {
        // A move outside a drag (arrow keys): an undo step right away, unless nothing moved.
        // Nudges of the same selection in a row are one step.
        if (!layoutChanged(state, { nodes, edges: state.edges })) {
          set({ ...patch, pending: null });
          return;
        }
        const moved = kept.filter((c) => c.type === "position").map((c) => (c as { id: string }).id).sort();
        set({ ...patch, ...commitPatch(state, `nudge:${moved.join(",")}`, Date.now()) });
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
      if (layoutChanged(base, state)) set(stepPatch(state, base));
      else set({ pending: null });
    },

    select: (id) => set({ nodes: withSelection(get().nodes, id), selectedId: id }),

    selectEdge: (id) =>
      set({
        nodes: withSelection(get().nodes, null),
        edges: get().edges.map((e) => (Boolean(e.selected) === (e.id === id) ? e : { ...e, selected: e.id === id })),
        selectedId: null,
      }),

    loopsWithChildren: (ids) => {
      const nodes = get().nodes;
      return nodes
        .filter((n) => ids.includes(n.id) && n.type === LOOP_TYPE)
        .map((loop) => ({ name: loop.data.name, count: nodes.filter((n) => isDescendant(nodes, n.id, loop.id)).length }))
        .filter((l) => l.count > 0);
    },

    selectedIds: () => {
      const { nodes, selectedId } = get();
      const ids = nodes.filter((n) => n.selected).map((n) => n.id);
      return ids.length ? ids : selectedId && nodes.some((n) => n.id === selectedId) ? [selectedId] : [];
    },

    copySelection: () => copyBlocks(get().nodes, get().edges, get().selectedIds()),

    paste: (clip, options = {}) => {
      const { nodes, edges, catalogue } = get();
      const unknown = [...new Set(clip.blocks.map((b) => b.type))].filter((t) => Object.keys(catalogue).length && !catalogue[t]);
      if (unknown.length) {
        get().notify(`Not pasted: unknown block type ${unknown.map((t) => `'${t}'`).join(", ")}`);
        return [];
      }
      if (!clip.blocks.length) return [];
      const pasted = pasteBlocks(nodes, clip, options);
      const tops = pasted.nodes.filter((n) => n.selected);
      commit({
        nodes: withPasted(nodes, pasted),
        edges: [...edges, ...pasted.edges],
        selectedId: tops.length === 1 ? tops[0].id : null,
      });
      if (pasted.renamed.size) {
        const list = [...pasted.renamed].map(([from, to]) => `${from} → ${to}`);
        get().notify(`Pasted ${pasted.ids.length} block${pasted.ids.length === 1 ? "" : "s"}; renamed ${list.slice(0, 4).join(", ")}${list.length > 4 ? ", …" : ""}`, "info");
      }
      return pasted.ids;
    },

    addNote: (position, text = "") => {
      const nodes = get().nodes;
      const id = uniqueName(nodes, NOTE_TYPE);
      const note: BlockNode = {
        id,
        type: NOTE_TYPE,
        position: { ...position },
        width: NOTE_SIZE.width,
        height: NOTE_SIZE.height,
        style: { ...NOTE_SIZE },
        zIndex: -1,
        selected: true,
        data: { blockType: NOTE_TYPE, name: id, config: { text: text.slice(0, MAX_NOTE_CHARS) }, extra: {} },
      };
      commit({ nodes: [...withSelection(nodes, null), note], selectedId: null });
      return id;
    },

    updateNote: (id, text) => {
      const nodes = get().nodes;
      const note = nodes.find((n) => n.id === id && isNote(n));
      if (!note || note.data.config.text === text) return;
      const config = { text: text.slice(0, MAX_NOTE_CHARS) };
      commit({ nodes: nodes.map((n) => (n.id === id ? { ...n, data: { ...n.data, config } } : n)) }, `note:${id}`);
    },

    layout: () => {
      const { nodes, edges } = get();
      if (!nodes.length) return;
      // Notes stay where they are.
      const placed = new Map(autoLayout(nodes.filter((n) => !isNote(n)), edges).map((n) => [n.id, n]));
      const next = nodes.map((n) => placed.get(n.id) ?? n);
      if (layoutChanged({ nodes, edges }, { nodes: next, edges })) commit({ nodes: next });
    },

    duplicate: () => {
      const clip = get().copySelection();
      return clip ? get().paste(clip, { keepParents: true }) : [];
    },

    undo: () => {
      const patch = undoPatch(get());
      if (patch) set({ ...patch, dirty: differsFromSaved(patch as Snapshot) });
    },

    redo: () => {
      const patch = redoPatch(get());
      if (patch) set({ ...patch, dirty: differsFromSaved(patch as Snapshot) });
    },

    applyMerged: (graph) => {
      const { nodes, edges, graphExtra } = graphToFlow(graph);
      const { selectedId, fieldDrafts } = get();
      const ids = new Set(nodes.map((n) => n.id));
      const kept = selectedId && ids.has(selectedId) ? selectedId : null;
      commit({
        nodes: withSelection(nodes, kept),
        edges,
        graphExtra,
        selectedId: kept,
        fieldDrafts: Object.fromEntries(Object.entries(fieldDrafts).filter(([, d]) => ids.has(d.blockId))),
      });
    },

    markSaved: (revision) => {
      if (get().revision === revision) set({ dirty: false, savedKey: contentKey(get()) });
    },

    setValidation: (errors, scopes, warnings = []) => {
      const quiet = get().quiet;
      const shown = shownErrors(errors, quiet);
      const shownWarnings = shownErrors(warnings, quiet);
      set({
        allErrors: errors,
        errors: shown,
        errorsByBlock: groupErrors(shown),
        allWarnings: warnings,
        warnings: shownWarnings,
        warningsByBlock: groupErrors(shownWarnings),
        ...(scopes ? { scopes } : {}),
      });
    },

    revealErrors: () => {
      const { allErrors: all, allWarnings } = get();
      set({ quiet: {}, errors: all, errorsByBlock: groupErrors(all), warnings: allWarnings, warningsByBlock: groupErrors(allWarnings) });
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

    invalidFields: () => invalidDrafts(get().fieldDrafts, get().nodes),

    notify: (text, kind = "error", undo = false) => set({ notice: { text, kind, undo, seq: (get().notice?.seq ?? 0) + 1 } }),
  };
});
