// Where blocks are: sizes, absolute positions, the loop under a point, and loops grown to fit
// their children.
import type { XYPosition } from "@xyflow/react";
import { depthOf, isDescendant } from "./hierarchy";
import { byId, LOOP_PADDING, LOOP_SIZE, LOOP_TYPE, NODE_SIZE, type BlockNode } from "./model";

export interface DropOptions {
  /** Where the pointer held the dragged palette entry (a Loop is held by its title bar there). */
  grab?: XYPosition | null;
  /** The visible part of the canvas, in flow coordinates: the new block is kept inside it. */
  bounds?: { x: number; y: number; width: number; height: number } | null;
}

export function nodeSize(node: BlockNode): { width: number; height: number } {
  const fallback = node.type === LOOP_TYPE ? LOOP_SIZE : NODE_SIZE;
  const style = (node.style ?? {}) as { width?: unknown; height?: unknown };
  const width = node.width ?? node.measured?.width ?? (typeof style.width === "number" ? style.width : fallback.width);
  const height =
    node.height ?? node.measured?.height ?? (typeof style.height === "number" ? style.height : fallback.height);
  return { width, height };
}

export function absoluteOf(nodes: BlockNode[], id: string): XYPosition {
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

/** The innermost loop containing `point` (ignoring `exclude` and what it holds), or null. */
export function loopAtIn(nodes: BlockNode[], point: XYPosition, exclude?: string): string | null {
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
export function growParents(nodes: BlockNode[], id: string): BlockNode[] {
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

/** Keeps a child clear of its loop's header and body handle. */
export function placeInside(position: XYPosition): XYPosition {
  return { x: Math.max(position.x, LOOP_PADDING.left), y: Math.max(position.y, LOOP_PADDING.top) };
}

/** Top-left corner for a new block of `type` so that the pointer holds it at `anchor`. */
export function dropAnchor(type: string, grab?: XYPosition | null): XYPosition {
  const size = type === LOOP_TYPE ? LOOP_SIZE : NODE_SIZE;
  if (type === LOOP_TYPE && grab) {
    // A Loop is a big container: held by its title bar where the palette entry was grabbed,
    // rather than centred (which would drop half of it over its neighbours).
    const x = Math.min(Math.max(grab.x, 12), size.width / 2);
    return { x, y: 17 };
  }
  return { x: size.width / 2, y: size.height / 2 };
}

export function clampInto(position: XYPosition, type: string, bounds?: DropOptions["bounds"]): XYPosition {
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
