// The graph in React Flow form: block and edge shapes, and the constants every store module
// shares.
import type { Edge, Node } from "@xyflow/react";

export const LOOP_TYPE = "loop";
export const TRIGGER_TYPE = "webhook";
// Blocks that start a run: no inputs, never inside a loop.
export const TRIGGER_TYPES: ReadonlySet<string> = new Set([TRIGGER_TYPE, "schedule"]);
export const isTrigger = (type: string | undefined): boolean => TRIGGER_TYPES.has(type ?? "");
export const BODY_HANDLE = "body";
/** A sticky note on the canvas: saved in the graph's `notes`, never a block, never run. */
export const NOTE_TYPE = "note";
export const NOTE_SIZE = { width: 220, height: 120 };
/** The server's KLYNTOS_MAX_NOTE_CHARS default. */
export const MAX_NOTE_CHARS = 10000;
export const NODE_SIZE = { width: 220, height: 64 };
export const LOOP_SIZE = { width: 460, height: 260 };
/** Room a loop keeps for its header (top) and its body handle (left). */
export const LOOP_PADDING = { left: 40, top: 44, right: 24, bottom: 24 };

export interface BlockData extends Record<string, unknown> {
  blockType: string;
  name: string;
  config: Record<string, unknown>;
  /** Unknown keys of the block JSON, stored and returned as-is. */
  extra: Record<string, unknown>;
}

export type BlockNode = Node<BlockData>;
export type FlowEdge = Edge;

export const isNote = (node: { type?: string }) => node.type === NOTE_TYPE;

export const byId = (nodes: BlockNode[]) => new Map(nodes.map((n) => [n.id, n]));

/** Selects `id` only; nodes whose selection does not change are kept as they are. */
export function withSelection(nodes: BlockNode[], id: string | null): BlockNode[] {
  return nodes.map((n) => {
    const selected = n.id === id;
    return Boolean(n.selected) === selected ? n : { ...n, selected };
  });
}
