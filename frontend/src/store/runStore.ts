// Live state of one run, fed by the run websocket (snapshot, then deltas). Kept apart from the
// graph store so that run updates never re-render the graph: the canvas reads one block's
// state with `useBlockRunState(blockId)`, whose value keeps its identity until that block's
// state changes.
//
// Block status rules (`blocks`, keyed by block id, derived from `steps` and `items`):
// - counts are over every step row of the block, i.e. over the items of its loop for a block
//   inside a loop (nested loops included), and 0 or 1 for a top-level block;
// - a step that is "running" or "retrying" counts as running;
// - status is "running" while any step runs, or while the block's enclosing loop is running
//   (its body is not done until the loop is: the loop's own step, in the frame of the loop's
//   items, still runs); else "failed" if any step failed, else "cancelled" if any step was
//   cancelled (or the enclosing loop was), else "succeeded" if any step succeeded, else
//   "idle" (no step yet).
// Counts are kept incrementally per delta; statuses are then resolved over the (few) blocks.
import { create } from "zustand";
import type { ItemState, RunDeltaMessage, RunSnapshotMessage, RunSummary, StepState } from "../types";
import { openRunSocket, type RunSocket, type SocketStatus } from "../api/socket";

export interface BlockRunState {
  status: "idle" | "running" | "succeeded" | "failed" | "cancelled";
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
}

type Counts = Omit<BlockRunState, "status">;

// The wire rows also carry the item's input data (not in the shared ItemState type).
export type RunItem = ItemState & { data?: unknown };

export const IDLE_BLOCK: BlockRunState = Object.freeze({ status: "idle", running: 0, succeeded: 0, failed: 0, cancelled: 0 });
const NO_COUNTS: Counts = Object.freeze({ running: 0, succeeded: 0, failed: 0, cancelled: 0 });

export const FINAL_RUN_STATUSES: ReadonlySet<string> = new Set(["succeeded", "partially_succeeded", "failed", "cancelled"]);

export interface RunStoreState {
  runId: string | null;
  run: RunSummary | null;
  seq: number;
  /** True once a final snapshot arrived: nothing will change any more. */
  final: boolean;
  connection: SocketStatus;
  items: Record<string, RunItem>;
  steps: Record<string, StepState>;
  blocks: Record<string, BlockRunState>;
  /** Step counts per block (what `blocks` is resolved from). */
  counts: Record<string, Counts>;
  /** The loop block whose items a block's steps belong to (blocks inside a loop only). */
  loopOf: Record<string, string>;
  applySnapshot: (msg: RunSnapshotMessage) => void;
  applyDelta: (msg: RunDeltaMessage) => void;
  reset: () => void;
  /** Resets, then follows `runId` over the websocket; `initial` shows the run before the first snapshot. */
  connect: (runId: string, initial?: RunSummary | null) => void;
  disconnect: () => void;
}

export function stepKey(itemKey: string, blockId: string): string {
  return `${itemKey}|${blockId}`;
}

type Bucket = "running" | "succeeded" | "failed" | "cancelled" | null;

function bucket(status: string | undefined): Bucket {
  if (status === "running" || status === "retrying") return "running";
  if (status === "succeeded") return "succeeded";
  if (status === "failed") return "failed";
  if (status === "cancelled") return "cancelled";
  return null;
}

function ownStatus(c: Counts): BlockRunState["status"] {
  if (c.running > 0) return "running";
  if (c.failed > 0) return "failed";
  if (c.cancelled > 0) return "cancelled";
  if (c.succeeded > 0) return "succeeded";
  return "idle";
}

function sameState(a: BlockRunState | undefined, b: BlockRunState): boolean {
  return Boolean(
    a && a.status === b.status && a.running === b.running && a.succeeded === b.succeeded && a.failed === b.failed && a.cancelled === b.cancelled,
  );
}

/**
 * Block states from counts: a block is running while its enclosing loop is (recursively).
 * Unchanged blocks keep their object from `previous`.
 */
export function resolveBlocks(
  counts: Record<string, Counts>,
  loopOf: Record<string, string>,
  previous: Record<string, BlockRunState> = {},
): Record<string, BlockRunState> {
  const out: Record<string, BlockRunState> = {};
  const resolving = new Set<string>();
  const resolve = (id: string): BlockRunState["status"] => {
    const done = out[id];
    if (done) return done.status;
    const c = counts[id] ?? NO_COUNTS;
    let status = ownStatus(c);
    const loop = loopOf[id];
    if (status !== "running" && loop && loop !== id && !resolving.has(id)) {
      resolving.add(id);
      const outer = resolve(loop);
      if (outer === "running") status = "running";
      // Its loop was cancelled: the block did not run for every item.
      else if (outer === "cancelled" && status === "succeeded") status = "cancelled";
      resolving.delete(id);
    }
    if (!counts[id]) return status; // a loop known only as a parent: not a block state of its own
    const fresh: BlockRunState = { status, running: c.running, succeeded: c.succeeded, failed: c.failed, cancelled: c.cancelled };
    out[id] = sameState(previous[id], fresh) ? previous[id] : fresh;
    return status;
  };
  for (const id of Object.keys(counts)) resolve(id);
  return out;
}

function countSteps(steps: Record<string, StepState>): Record<string, Counts> {
  const counts: Record<string, Counts> = {};
  for (const step of Object.values(steps)) {
    const c = (counts[step.block_id] ??= { ...NO_COUNTS });
    const b = bucket(step.status);
    if (b) c[b] += 1;
  }
  return counts;
}

/** The loop a step's item belongs to (its `loop_block`), if the item is known. */
function loopOfStep(step: Pick<StepState, "item_key" | "block_id">, items: Record<string, RunItem>): string | undefined {
  if (!step.item_key) return undefined;
  const loop = items[step.item_key]?.loop_block;
  return loop && loop !== step.block_id ? loop : undefined;
}

function mapLoops(steps: Record<string, StepState>, items: Record<string, RunItem>): Record<string, string> {
  const loopOf: Record<string, string> = {};
  for (const step of Object.values(steps)) {
    if (loopOf[step.block_id]) continue;
    const loop = loopOfStep(step, items);
    if (loop) loopOf[step.block_id] = loop;
  }
  return loopOf;
}

export function deriveBlocks(steps: Record<string, StepState>, items: Record<string, RunItem> = {}): Record<string, BlockRunState> {
  return resolveBlocks(countSteps(steps), mapLoops(steps, items));
}

function emptyItem(key: string): RunItem {
  return {
    key, loop_block: "", parent_key: "", index: 0, status: "running", error: "", failed_block: "",
    started_at: null, finished_at: null, duration: null,
  };
}

function emptyStep(itemKey: string, blockId: string): StepState {
  return {
    item_key: itemKey, block_id: blockId, name: "", status: "running", error: "", attempts: 0,
    started_at: null, finished_at: null, duration: null,
  };
}

function mergeRun(run: RunSummary | null, patch: RunDeltaMessage["run"] | undefined, seq: number): RunSummary | null {
  if (!patch) return run;
  // Deltas before the first snapshot have no run to patch; the snapshot brings it.
  if (!run) return null;
  const { total, succeeded, failed, running, progress, ...rest } = patch;
  return {
    ...run,
    ...rest,
    progress: {
      ...run.progress,
      ...progress,
      ...(total !== undefined ? { total } : {}),
      ...(succeeded !== undefined ? { succeeded } : {}),
      ...(failed !== undefined ? { failed } : {}),
      ...(running !== undefined ? { running } : {}),
    },
    last_seq: typeof rest.last_seq === "number" ? rest.last_seq : Math.max(run.last_seq, seq),
  };
}

const blank = {
  runId: null,
  run: null,
  seq: 0,
  final: false,
  connection: "idle" as SocketStatus,
  items: {},
  steps: {},
  blocks: {},
  counts: {},
  loopOf: {},
};

let socket: RunSocket | null = null;
let socketGeneration = 0;

export const useRunStore = create<RunStoreState>()((set, get) => ({
  ...blank,

  applySnapshot: (msg) => {
    const items: Record<string, RunItem> = {};
    for (const item of msg.items ?? []) items[item.key] = item;
    const steps: Record<string, StepState> = {};
    for (const step of msg.steps ?? []) steps[stepKey(step.item_key ?? "", step.block_id)] = step;
    const counts = countSteps(steps);
    const loopOf = mapLoops(steps, items);
    set({
      runId: msg.run?.id ?? get().runId,
      run: msg.run,
      seq: typeof msg.seq === "number" ? msg.seq : (msg.run?.last_seq ?? 0),
      final: Boolean(msg.final),
      items,
      steps,
      counts,
      loopOf,
      blocks: resolveBlocks(counts, loopOf, get().blocks),
    });
  },

  applyDelta: (msg) => {
    const state = get();
    const hasSeq = typeof msg.seq === "number";
    // Deltas already covered by the snapshot (or seen twice) change nothing; a final
    // snapshot is the last word.
    if (state.final || (hasSeq && msg.seq <= state.seq)) return;

    let items = state.items;
    if (msg.items?.length) {
      items = { ...items };
      for (const patch of msg.items) {
        if (!patch.key) continue;
        items[patch.key] = { ...(items[patch.key] ?? emptyItem(patch.key)), ...patch } as RunItem;
      }
    }

    let steps = state.steps;
    let blocks = state.blocks;
    let counts = state.counts;
    let loopOf = state.loopOf;
    if (msg.steps?.length) {
      steps = { ...steps };
      counts = { ...counts };
      // Adjust only the touched blocks' counts; statuses are resolved afterwards, keeping
      // untouched blocks' object identity.
      const touched = new Set<string>();
      for (const patch of msg.steps) {
        if (!patch.block_id) continue;
        const itemKey = patch.item_key ?? "";
        const key = stepKey(itemKey, patch.block_id);
        const prev = steps[key];
        const next = { ...(prev ?? emptyStep(itemKey, patch.block_id)), ...patch } as StepState;
        steps[key] = next;
        if (!touched.has(next.block_id)) {
          touched.add(next.block_id);
          counts[next.block_id] = { ...(counts[next.block_id] ?? NO_COUNTS) };
        }
        const c = counts[next.block_id];
        const before = prev ? bucket(prev.status) : null;
        const after = bucket(next.status);
        if (before) c[before] -= 1;
        if (after) c[after] += 1;
        if (!loopOf[next.block_id]) {
          const loop = loopOfStep(next, items);
          if (loop) loopOf = { ...loopOf, [next.block_id]: loop };
        }
      }
      blocks = resolveBlocks(counts, loopOf, blocks);
    }

    set({
      seq: hasSeq ? msg.seq : state.seq,
      run: mergeRun(state.run, msg.run, hasSeq ? msg.seq : state.seq),
      items,
      steps,
      counts,
      loopOf,
      blocks,
    });
  },

  reset: () => {
    socketGeneration += 1;
    socket?.close();
    socket = null;
    set({ ...blank });
  },

  connect: (runId, initial = null) => {
    socket?.close();
    socket = null;
    const generation = ++socketGeneration;
    set({ ...blank, runId, run: initial ?? null, connection: "connecting" });
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

/** One block's run state for the canvas; re-renders only when that block's state changes. */
export function useBlockRunState(blockId: string): BlockRunState {
  return useRunStore((s) => s.blocks[blockId] ?? IDLE_BLOCK);
}

export function isFinalStatus(status: string | undefined | null): boolean {
  return Boolean(status && FINAL_RUN_STATUSES.has(status));
}
