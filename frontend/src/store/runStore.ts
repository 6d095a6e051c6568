// Live state of one run, fed by the run websocket's bounded wire (docs/run-protocol.md): a
// snapshot, then coalesced deltas, then a final snapshot. Kept apart from the graph store so
// that run updates never re-render the graph: the canvas reads one block's state with
// `useBlockRunState(blockId)`, whose value keeps its identity until that block's entry is
// replaced.
//
// Nothing here grows with the run's number of items: block and loop states are the server's
// counters (the server decides `partially_succeeded` & co., the editor paints them as is), and
// `items` is a window of the most recently changed and the failed items the socket carried,
// capped at ITEM_WINDOW. The item table reads pages over REST (run/itemPages.ts).
import { create } from "zustand";
import type {
  BlockState,
  ItemState,
  LoopState,
  RunDeltaMessage,
  RunSnapshotMessage,
  RunSummary,
  StepState,
} from "../types";
import { openRunSocket, type RunSocket, type SocketStatus } from "../api/socket";

export type RunItem = ItemState;

/** Items the store keeps from the socket (most recently changed last); older ones are dropped. */
export const ITEM_WINDOW = 200;

export const FINAL_RUN_STATUSES: ReadonlySet<string> = new Set(["succeeded", "partially_succeeded", "failed", "cancelled"]);

export interface RunStoreState {
  runId: string | null;
  run: RunSummary | null;
  seq: number;
  /** True once a final snapshot arrived: nothing will change any more. */
  final: boolean;
  /** The user opened this run from the History (a new run does not replace it on its own). */
  pinned: boolean;
  connection: SocketStatus;
  /** The bounded window of items the socket carried, by key (insertion order = change order). */
  items: Record<string, RunItem>;
  /** Bumped whenever `items` changes or items changed that the frame left out. */
  itemsVersion: number;
  /** Top-level step runs by block id. */
  steps: Record<string, StepState>;
  blocks: Record<string, BlockState>;
  loops: Record<string, LoopState>;
  applySnapshot: (msg: RunSnapshotMessage) => void;
  applyDelta: (msg: RunDeltaMessage) => void;
  reset: () => void;
  /** Resets, then follows `runId` over the websocket; `initial` shows the run before the first snapshot. */
  connect: (runId: string, initial?: RunSummary | null, options?: { pinned?: boolean }) => void;
  disconnect: () => void;
}

function capWindow(items: Record<string, RunItem>): Record<string, RunItem> {
  const keys = Object.keys(items);
  if (keys.length <= ITEM_WINDOW) return items;
  const kept: Record<string, RunItem> = {};
  for (const key of keys.slice(keys.length - ITEM_WINDOW)) kept[key] = items[key];
  return kept;
}

function emptyItem(key: string): RunItem {
  return {
    key, loop_block: "", parent_key: "", index: 0, status: "running", error: "", failed_block: "",
    started_at: null, finished_at: null, duration: null,
  };
}

function mergeRun(run: RunSummary | null, patch: RunDeltaMessage["run"] | undefined, seq: number): RunSummary | null {
  if (!patch) return run;
  // Deltas before the first snapshot have no run to patch; the snapshot brings it.
  if (!run) return null;
  const flat = patch as Record<string, unknown>;
  const counters: Record<string, number> = {};
  for (const name of ["total", "succeeded", "failed", "cancelled", "not_started", "running"]) {
    if (typeof flat[name] === "number") counters[name] = flat[name] as number;
  }
  const { progress, ...rest } = patch;
  const merged: RunSummary = { ...run, progress: { ...run.progress, ...counters, ...progress } };
  for (const [name, value] of Object.entries(rest)) {
    if (name in run && !(name in counters)) (merged as unknown as Record<string, unknown>)[name] = value;
  }
  // A delta's status is never final: the end comes as the final snapshot.
  if (patch.status && FINAL_RUN_STATUSES.has(patch.status)) merged.status = run.status;
  merged.last_seq = typeof patch.last_seq === "number" ? patch.last_seq : Math.max(run.last_seq, seq);
  return merged;
}

const blank = {
  runId: null,
  run: null,
  seq: 0,
  final: false,
  pinned: false,
  connection: "idle" as SocketStatus,
  items: {},
  itemsVersion: 0,
  steps: {},
  blocks: {},
  loops: {},
};

let socket: RunSocket | null = null;
let socketGeneration = 0;

export const useRunStore = create<RunStoreState>()((set, get) => ({
  ...blank,

  applySnapshot: (msg) => {
    const items: Record<string, RunItem> = {};
    for (const item of msg.items ?? []) items[item.key] = item;
    const steps: Record<string, StepState> = {};
    for (const step of msg.steps ?? []) if (!step.item_key) steps[step.block_id] = step;
    const previous = get().blocks;
    const blocks: Record<string, BlockState> = {};
    for (const [id, state] of Object.entries(msg.blocks ?? {})) {
      blocks[id] = sameBlock(previous[id], state) ? previous[id] : state;
    }
    set((s) => ({
      runId: msg.run?.id ?? s.runId,
      run: msg.run,
      seq: typeof msg.seq === "number" ? msg.seq : (msg.run?.last_seq ?? 0),
      final: Boolean(msg.final),
      items: capWindow(items),
      itemsVersion: s.itemsVersion + 1,
      steps,
      blocks,
      loops: msg.loops ?? {},
    }));
  },

  applyDelta: (msg) => {
    const state = get();
    const hasSeq = typeof msg.seq === "number";
    // Deltas already covered by the snapshot (or seen twice) change nothing; a final
    // snapshot is the last word.
    if (state.final || (hasSeq && msg.seq <= state.seq)) return;
    const seq = hasSeq ? msg.seq : state.seq;

    let items = state.items;
    if (msg.items?.length) {
      items = { ...items };
      // Newest first on the wire: insert oldest first so the newest ends up last.
      for (const patch of [...msg.items].reverse()) {
        if (!patch.key) continue;
        const merged = { ...(items[patch.key] ?? emptyItem(patch.key)), ...patch } as RunItem;
        delete items[patch.key];
        items[patch.key] = merged;
      }
      items = capWindow(items);
    }
    // A loop's counters moving means item rows changed even when the delta carries none: a
    // loop spread over workers reports counts only, its items are read page by page.
    const loopsMoved = Boolean(msg.loops && Object.keys(msg.loops).length);
    const itemsChanged = Boolean(msg.items?.length) || Boolean(msg.items_omitted) || loopsMoved;

    let steps = state.steps;
    if (msg.steps?.length) {
      steps = { ...steps };
      for (const patch of msg.steps) {
        if (!patch.block_id || patch.item_key) continue;
        steps[patch.block_id] = { ...steps[patch.block_id], ...patch } as StepState;
      }
    }

    let blocks = state.blocks;
    if (msg.blocks && Object.keys(msg.blocks).length) {
      blocks = { ...blocks };
      for (const [id, next] of Object.entries(msg.blocks)) {
        if (!sameBlock(blocks[id], next)) blocks[id] = next;
      }
    }
    const loops = msg.loops && Object.keys(msg.loops).length ? { ...state.loops, ...msg.loops } : state.loops;

    set({
      seq,
      run: mergeRun(state.run, msg.run, seq),
      items,
      itemsVersion: itemsChanged ? state.itemsVersion + 1 : state.itemsVersion,
      steps,
      blocks,
      loops,
    });
  },

  reset: () => {
    socketGeneration += 1;
    socket?.close();
    socket = null;
    set({ ...blank });
  },

  connect: (runId, initial = null, options = {}) => {
    socket?.close();
    socket = null;
    const generation = ++socketGeneration;
    set({ ...blank, runId, run: initial ?? null, pinned: Boolean(options.pinned), connection: "connecting" });
    // Messages from a socket that was replaced or closed are ignored.
    const live = () => generation === socketGeneration && socket !== null;
    socket = openRunSocket(runId, {
      onMessage: (msg) => {
        if (!live()) return;
        if (msg.type === "snapshot") get().applySnapshot(msg);
        else if (msg.type === "delta") get().applyDelta(msg);
      },
      onStatus: (status) => {
        if (generation === socketGeneration) set({ connection: status });
      },
    });
  },

  disconnect: () => {
    socketGeneration += 1;
    socket?.close();
    socket = null;
    set({ connection: "idle" });
  },
}));

function sameBlock(a: BlockState | undefined, b: BlockState): boolean {
  return Boolean(
    a &&
      a.status === b.status &&
      a.running === b.running &&
      a.succeeded === b.succeeded &&
      a.failed === b.failed &&
      a.cancelled === b.cancelled &&
      a.not_started === b.not_started &&
      a.total === b.total,
  );
}

/** One block's run state for the canvas (null before any run); re-renders only when it changes. */
export function useBlockRunState(blockId: string): BlockState | null {
  return useRunStore((s) => s.blocks[blockId] ?? null);
}

export function isFinalStatus(status: string | undefined | null): boolean {
  return Boolean(status && FINAL_RUN_STATUSES.has(status));
}

/** "partially_succeeded" → "partially succeeded": statuses as the user reads them. */
export function statusLabel(status: string): string {
  return status.replace(/_/g, " ");
}
