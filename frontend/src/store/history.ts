// Undo/redo: snapshots of nodes and edges, and the state patches that record or replay them.
import type { BlockNode, FlowEdge } from "./model";

export const HISTORY_LIMIT = 100;
/** Edits of the same field closer together than this are one undo step (typing). */
const COALESCE_MS = 1200;

export interface Snapshot {
  nodes: BlockNode[];
  edges: FlowEdge[];
}

/** The store fields history reads and writes. */
export interface HistoryState extends Snapshot {
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
}

export const snapshotOf = (state: Snapshot): Snapshot => ({ nodes: state.nodes, edges: state.edges });

/** Whether positions, parents, sizes or edges differ (what makes a gesture an undo step). */
export function layoutChanged(a: Snapshot, b: Snapshot): boolean {
  return layoutKey(a) !== layoutKey(b);
}

function layoutKey(s: Snapshot): string {
  return JSON.stringify([
    s.nodes.map((n) => [n.id, n.parentId ?? null, n.position.x, n.position.y, n.width ?? null, n.height ?? null]),
    s.edges.map((e) => e.id),
  ]);
}

/** Whether an edit with `key` applied now joins the last undo step (rapid edits of one field). */
export function coalesces(state: HistoryState, key: string | undefined, now: number): boolean {
  return key !== undefined && key === state.lastKey && now - state.lastTime < COALESCE_MS;
}

/** History fields for an edit applied now; `key` coalesces rapid edits of the same field. */
export function commitPatch(state: HistoryState, key: string | undefined, now: number): Partial<HistoryState> {
  const coalesce = coalesces(state, key, now);
  const past = coalesce ? state.past : [...state.past, snapshotOf(state)].slice(-HISTORY_LIMIT);
  return {
    past,
    future: [],
    dirty: true,
    revision: state.revision + 1,
    lastKey: key ?? null,
    lastTime: now,
    pending: null,
  };
}

/** History fields recording `base` (the state before a gesture) as one undo step. */
export function stepPatch(state: HistoryState, base: Snapshot): Partial<HistoryState> {
  return {
    past: [...state.past, base].slice(-HISTORY_LIMIT),
    future: [],
    dirty: true,
    revision: state.revision + 1,
    pending: null,
    lastKey: null,
  };
}

/**
 * The selection a restored snapshot carries (what was selected when that state was left):
 * the panel follows it, so the flags on the canvas and the panel always agree.
 */
function selectionOf(snapshot: Snapshot): string | null {
  const selected = snapshot.nodes.filter((n) => n.selected && n.type !== "note");
  return selected.length === 1 ? selected[0].id : null;
}

export function undoPatch(state: HistoryState): Partial<HistoryState> | null {
  const previous = state.past[state.past.length - 1];
  if (!previous) return null;
  return {
    nodes: previous.nodes,
    edges: previous.edges,
    past: state.past.slice(0, -1),
    future: [snapshotOf(state), ...state.future].slice(0, HISTORY_LIMIT),
    dirty: true,
    revision: state.revision + 1,
    pending: null,
    lastKey: null,
    selectedId: selectionOf(previous),
  };
}

export function redoPatch(state: HistoryState): Partial<HistoryState> | null {
  const next = state.future[0];
  if (!next) return null;
  return {
    nodes: next.nodes,
    edges: next.edges,
    past: [...state.past, snapshotOf(state)].slice(-HISTORY_LIMIT),
    future: state.future.slice(1),
    dirty: true,
    revision: state.revision + 1,
    pending: null,
    lastKey: null,
    selectedId: selectionOf(next),
  };
}
