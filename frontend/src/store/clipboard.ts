// Copy, paste and duplicate: the selected blocks (with everything inside a copied loop) and
// the edges between them, as JSON text that can travel through the system clipboard to
// another workflow. A paste gives every block a fresh id and a name unique in the target
// graph, and rewrites the references inside the pasted blocks to the new names.
import type { XYPosition } from "@xyflow/react";
import { renameReferenceRoots } from "../panel/refs";
import type { BlockJson, EdgeJson } from "../types";
import { toFlowEdge } from "./connections";
import { absoluteOf, growParents, loopAtIn, placeInside } from "./geometry";
import { blockToNode, nodeToBlock } from "./graphJson";
import { isDescendant, sortParentsFirst } from "./hierarchy";
import { renameInLoopConfig } from "./loopRefs";
import { byId, isNote, isTrigger, LOOP_TYPE, type BlockNode, type FlowEdge } from "./model";

export const CLIP_KIND = "klyntos/blocks";
/** What builder/exports.py writes (api/workflowFile.ts reads it as a whole workflow). */
const WORKFLOW_KIND = "klyntos/workflow";
/** The server's KLYNTOS_MAX_BLOCKS default: a longer clip could never be saved anyway. */
export const MAX_CLIP_BLOCKS = 2000;
/** engine/core/validation.py's MAX_NAME_LENGTH. */
const MAX_NAME_LENGTH = 64;
/** Where a paste without a pointer position lands, from the copied blocks. */
export const PASTE_OFFSET = { x: 40, y: 40 };

export interface Clip {
  kind: typeof CLIP_KIND;
  version: 1;
  /** Blocks as saved; the top ones (whose parent is not copied) with absolute positions. */
  blocks: BlockJson[];
  edges: EdgeJson[];
}

export interface Pasted {
  nodes: BlockNode[];
  edges: FlowEdge[];
  /** The pasted blocks' ids. */
  ids: string[];
  /** Old name → new name, for the blocks whose name changed. */
  renamed: Map<string, string>;
}

/** The blocks `ids` and all they contain, with the edges among them; null when none. */
export function copyBlocks(nodes: BlockNode[], edges: FlowEdge[], ids: string[]): Clip | null {
  // Notes stay behind: a clip is blocks.
  const wanted = new Set(ids.filter((id) => nodes.some((n) => n.id === id && !isNote(n))));
  for (const n of nodes) if ([...wanted].some((id) => isDescendant(nodes, n.id, id))) wanted.add(n.id);
  if (!wanted.size) return null;
  const blocks = sortParentsFirst(nodes.filter((n) => wanted.has(n.id))).map((n) => {
    const block = structuredClone(nodeToBlock(n));
    if (!n.parentId || !wanted.has(n.parentId)) {
      // A top block: absolute position; its parent is kept as a hint for a duplicate.
      const at = absoluteOf(nodes, n.id);
      block.position = { x: Math.round(at.x), y: Math.round(at.y) };
    }
    return block;
  });
  const kept = edges
    .filter((e) => wanted.has(e.source) && wanted.has(e.target))
    .map((e): EdgeJson => ({ source: e.source, target: e.target, ...(e.sourceHandle ? { handle: e.sourceHandle } : {}) }));
  return { kind: CLIP_KIND, version: 1, blocks, edges: kept };
}

/** The clip in `text`, or a message saying why it is not one (null: not ours at all). */
export function parseClip(text: string): Clip | string | null {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return null;
  }
  if (!data || typeof data !== "object") return null;
  const kind = (data as { kind?: unknown }).kind;
  // An exported workflow's text pastes its blocks too: a graph's top blocks have absolute
  // positions and its children positions in their loop, as in a clip.
  if (kind === WORKFLOW_KIND) data = (data as { graph?: unknown }).graph ?? {};
  else if (kind !== CLIP_KIND) return null;
  const { blocks, edges } = data as { blocks?: unknown; edges?: unknown };
  if (!Array.isArray(blocks) || !Array.isArray(edges)) return "the copied blocks are damaged";
  if (blocks.length > MAX_CLIP_BLOCKS) return `more than ${MAX_CLIP_BLOCKS} blocks cannot be pasted`;
  const okBlock = (b: unknown): b is BlockJson => {
    const block = b as Record<string, unknown> | null;
    return (
      !!block &&
      typeof block === "object" &&
      typeof block.id === "string" &&
      typeof block.type === "string" &&
      typeof block.name === "string" &&
      (block.parent === null || block.parent === undefined || typeof block.parent === "string") &&
      (block.config === undefined || (typeof block.config === "object" && block.config !== null))
    );
  };
  const okEdge = (e: unknown): e is EdgeJson =>
    !!e && typeof (e as EdgeJson).source === "string" && typeof (e as EdgeJson).target === "string";
  if (!blocks.every(okBlock) || !edges.every(okEdge)) return "the copied blocks are damaged";
  return { kind: CLIP_KIND, version: 1, blocks, edges };
}

/** `name` if free, else `<base>_<n>` with the smallest free n (within the length limit). */
function freeName(name: string, taken: Set<string>): string {
  if (!taken.has(name)) return name;
  const base = name.replace(/_\d+$/, "") || "block";
  for (let i = 1; ; i++) {
    const suffix = `_${i}`;
    const candidate = base.slice(0, MAX_NAME_LENGTH - suffix.length) + suffix;
    if (!taken.has(candidate)) return candidate;
  }
}

export interface PasteOptions {
  /** Where the pointer is (flow coordinates): the clip's top-left goes there, inside the loop under it. */
  at?: XYPosition | null;
  /** Keep each top block in its original loop when that loop is in the graph (duplicate). */
  keepParents?: boolean;
}

/**
 * The clip's blocks made ready for `nodes`: new ids and unique names, references inside
 * them renamed, placed at `at` (or offset from where they were copied).
 */
export function pasteBlocks(nodes: BlockNode[], clip: Clip, options: PasteOptions = {}): Pasted {
  const taken = new Set<string>();
  for (const n of nodes) {
    taken.add(n.id);
    taken.add(n.data.name);
  }
  taken.add("env");
  taken.add("loop");
  // New names avoid the clip's own names too, so that a kept name never meets a new one.
  const reserved = new Set([...taken, ...clip.blocks.map((b) => b.name)]);
  const renamed = new Map<string, string>();
  const ids = new Map<string, string>();
  for (const block of clip.blocks) {
    const name = taken.has(block.name) ? freeName(block.name, reserved) : block.name;
    taken.add(name);
    reserved.add(name);
    if (name !== block.name) renamed.set(block.name, name);
    // The id is the name, as for a new block: the name is free among the graph's ids too.
    ids.set(block.id, name);
  }

  const inClip = new Set(clip.blocks.map((b) => b.id));
  const tops = clip.blocks.filter((b) => !b.parent || !inClip.has(b.parent));
  const hasTrigger = tops.some((b) => isTrigger(b.type));
  const left = Math.min(...tops.map((b) => Number(b.position?.x) || 0));
  const top = Math.min(...tops.map((b) => Number(b.position?.y) || 0));
  const existing = byId(nodes);
  const into = options.at && !hasTrigger ? loopAtIn(nodes, options.at) : null;

  const pasted: BlockNode[] = clip.blocks.map((block) => {
    const isTop = !block.parent || !inClip.has(block.parent);
    const x = Number(block.position?.x) || 0;
    const y = Number(block.position?.y) || 0;
    let parent: string | null = null;
    let position = { x, y };
    if (!isTop) {
      parent = ids.get(block.parent as string) ?? null;
    } else if (options.at) {
      position = { x: options.at.x + x - left, y: options.at.y + y - top };
      parent = into;
    } else {
      position = { x: x + PASTE_OFFSET.x, y: y + PASTE_OFFSET.y };
      const original = block.parent ? existing.get(block.parent) : undefined;
      if (options.keepParents && original?.type === LOOP_TYPE && !isTrigger(block.type)) parent = original.id;
    }
    if (isTop && parent) {
      const origin = absoluteOf(nodes, parent);
      position = placeInside({ x: position.x - origin.x, y: position.y - origin.y });
    }
    let config = renameReferenceRoots(block.config ?? {}, renamed) as Record<string, unknown>;
    // A loop's JMESPath fields name its blocks too (not as references).
    if (block.type === LOOP_TYPE) config = renameInLoopConfig(config, renamed);
    const node = blockToNode({
      ...block,
      id: ids.get(block.id) as string,
      name: renamed.get(block.name) ?? block.name,
      parent,
      config,
      position,
    });
    return { ...node, selected: isTop };
  });

  const edges = clip.edges
    .filter((e) => ids.has(e.source) && ids.has(e.target))
    .map((e) => toFlowEdge(ids.get(e.source) as string, ids.get(e.target) as string, e.handle));
  return { nodes: pasted, edges, ids: pasted.map((n) => n.id), renamed };
}

/** `nodes` with the pasted blocks added (all else deselected) and their loops grown to fit. */
export function withPasted(nodes: BlockNode[], pasted: Pasted): BlockNode[] {
  let next = sortParentsFirst([...nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), ...pasted.nodes]);
  for (const id of pasted.ids) if (next.find((n) => n.id === id)?.parentId) next = growParents(next, id);
  return next;
}
