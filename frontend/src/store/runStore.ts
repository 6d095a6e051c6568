// Live state of one run, fed by the run websocket (snapshot, then deltas). Kept apart from the
// graph store so that run updates never re-render the graph: the canvas reads one block's
// state with `useBlockRunState(blockId)`, whose value keeps its identity until that block's
// counts change.
//
// Block status rules (`blocks`, keyed by block id, derived from `steps`):
// - counts are over every step row of the block, i.e. over the items of its loop for a block
//   inside a loop (nested loops included), and 0 or 1 for a top-level block;
// - a step that is "running" or "retrying" counts as running;
// - status is "running" while any step runs, else "failed" if any step failed, else
//   "succeeded" if any step succeeded, else "idle" (no step yet).
import { create } from "zustand";
import type { ItemState, RunDeltaMessage, RunSnapshotMessage, RunSummary, StepState } from "../types";
import { openRunSocket, type RunSocket, type SocketStatus } from "../api/socket";

export interface BlockRunState {
  status: "idle" | "running" | "succeeded" | "failed";
  running: number;
  succeeded: number;
  failed: number;
}

// The wire rows also carry the item's input data (not in the shared ItemState type).
export type RunItem = ItemState & { data?: unknown };

export const IDLE_BLOCK: BlockRunState = Object.freeze({ status: "idle", running: 0, succeeded: 0, failed: 0 });

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

type Bucket = "running" | "succeeded" | "failed" | null;

function bucket(status: string | undefined): Bucket {
  if (status === "running" || status === "retrying") return "running";
  if (status === "succeeded") return "succeeded";
  if (status === "failed") return "failed";
  return null;
}

function withStatus(counts: Omit<BlockRunState, "status">): BlockRunState {
  const status = counts.running > 0 ? "running" : counts.failed > 0 ? "failed" : counts.succeeded > 0 ? "succeeded" : "idle";
  return { status, ...counts };
}

export function deriveBlocks(steps: Record<string, StepState>): Record<string, BlockRunState> {
  const counts: Record<string, Omit<BlockRunState, "status">> = {};
  for (const step of Object.values(steps)) {
    const c = (counts[step.block_id] ??= { running: 0, succeeded: 0, failed: 0 });
    const b = bucket(step.status);
    if (b) c[b] += 1;
  }
  const blocks: Record<string, BlockRunState> = {};
  for (const [id, c] of Object.entries(counts)) blocks[id] = withStatus(c);
  return blocks;
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
      ...(progress ?? {}),
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
    set({
      runId: msg.run?.id ?? get().runId,
      run: msg.run,
      seq: typeof msg.seq === "number" ? msg.seq : (msg.run?.last_seq ?? 0),
      final: Boolean(msg.final),
      items,
      steps,
      blocks: deriveBlocks(steps),
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
    if (msg.steps?.length) {
      steps = { ...steps };
      // Adjust only the touched blocks, so untouched blocks keep their object identity.
      const touched: Record<string, Omit<BlockRunState, "status">> = {};
      for (const patch of msg.steps) {
        if (!patch.block_id) continue;
        const itemKey = patch.item_key ?? "";
        const key = stepKey(itemKey, patch.block_id);
        const prev = steps[key];
        const next = { ...(prev ?? emptyStep(itemKey, patch.block_id)), ...patch } as StepState;
        steps[key] = next;
        const c = (touched[next.block_id] ??= { ...(blocks[next.block_id] ?? IDLE_BLOCK) });
        const before = prev ? bucket(prev.status) : null;
        const after = bucket(next.status);
        if (before) c[before] -= 1;
        if (after) c[after] += 1;
      }
      blocks = { ...blocks };
      for (const [id, c] of Object.entries(touched)) {
        const old = blocks[id];
        const fresh = withStatus({ running: c.running, succeeded: c.succeeded, failed: c.failed });
        if (!old || old.status !== fresh.status || old.running !== fresh.running || old.succeeded !== fresh.succeeded || old.failed !== fresh.failed) {
          blocks[id] = fresh;
        }
      }
    }

    set({
      seq: hasSeq ? msg.seq : state.seq,
      run: mergeRun(state.run, msg.run, hasSeq ? msg.seq : state.seq),
      items,
      steps,
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
