// Auto-layout: every level (the top level and each loop's body) laid out left to right in
// layers along its edges, innermost loops first so that a loop is sized to fit its laid-out
// children before its own level is placed.
import { nodeSize } from "./geometry";
import { LOOP_PADDING, LOOP_TYPE, type BlockNode, type FlowEdge } from "./model";

export const LAYOUT_GAP = { x: 80, y: 40 };
/** Where the top level starts. */
const ORIGIN = { x: 0, y: 0 };

interface Size {
  width: number;
  height: number;
}

/** Each block's layer: the longest chain of edges reaching it within its level. */
function layersOf(ids: string[], edges: FlowEdge[]): Map<string, number> {
  const inLevel = new Set(ids);
  const incoming = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const e of edges) {
    if (inLevel.has(e.source) && inLevel.has(e.target) && e.source !== e.target) incoming.get(e.target)?.push(e.source);
  }
  const layer = new Map<string, number>();
  const visiting = new Set<string>();
  const depth = (id: string): number => {
    const known = layer.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) return 0; // a cycle (validation reports it): stop here
    visiting.add(id);
    let d = 0;
    for (const source of incoming.get(id) ?? []) d = Math.max(d, depth(source) + 1);
    visiting.delete(id);
    layer.set(id, d);
    return d;
  };
  // Iterative enough for real graphs; a level deeper than the call stack is not laid out.
  for (const id of ids) depth(id);
  return layer;
}

/** Positions for the blocks of one level, from `origin`; returns the level's extent. */
function placeLevel(
  ids: string[],
  edges: FlowEdge[],
  sizes: Map<string, Size>,
  order: Map<string, number>,
  origin: { x: number; y: number },
  positions: Map<string, { x: number; y: number }>,
): Size {
  const layer = layersOf(ids, edges);
  const columns: string[][] = [];
  for (const id of ids) (columns[layer.get(id) ?? 0] ??= []).push(id);
  // Within a column, keep the blocks in their current top-to-bottom order.
  for (const column of columns) column?.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
  const heights = columns.map((c) => (c ?? []).reduce((h, id, i) => h + (sizes.get(id)?.height ?? 0) + (i ? LAYOUT_GAP.y : 0), 0));
  const tallest = Math.max(0, ...heights);
  let x = origin.x;
  let width = 0;
  columns.forEach((column, index) => {
    if (!column?.length) return;
    const columnWidth = Math.max(...column.map((id) => sizes.get(id)?.width ?? 0));
    // Columns are centred on the tallest one.
    let y = origin.y + (tallest - heights[index]) / 2;
    for (const id of column) {
      positions.set(id, { x, y: Math.round(y) });
      y += (sizes.get(id)?.height ?? 0) + LAYOUT_GAP.y;
    }
    width = x + columnWidth - origin.x;
    x += columnWidth + LAYOUT_GAP.x;
  });
  return { width, height: tallest };
}

/** The graph laid out; positions are relative to each block's parent, as React Flow keeps them. */
export function autoLayout(nodes: BlockNode[], edges: FlowEdge[]): BlockNode[] {
  const children = new Map<string | null, BlockNode[]>();
  const ids = new Set(nodes.map((n) => n.id));
  for (const n of nodes) {
    const parent = n.parentId && ids.has(n.parentId) ? n.parentId : null;
    children.set(parent, [...(children.get(parent) ?? []), n]);
  }
  const sizes = new Map<string, Size>(nodes.map((n) => [n.id, nodeSize(n)]));
  const order = new Map(nodes.map((n) => [n.id, n.position.y]));
  const positions = new Map<string, { x: number; y: number }>();
  const loopSizes = new Map<string, Size>();

  const layOut = (parent: string | null, seen: Set<string>) => {
    const level = children.get(parent) ?? [];
    for (const n of level) {
      if (n.type === LOOP_TYPE && children.has(n.id) && !seen.has(n.id)) {
        seen.add(n.id);
        layOut(n.id, seen);
      }
    }
    if (!level.length) return;
    const origin = parent ? { x: LOOP_PADDING.left + 16, y: LOOP_PADDING.top + 12 } : ORIGIN;
    const extent = placeLevel(level.map((n) => n.id), edges, sizes, order, origin, positions);
    if (parent) {
      // The loop fits its laid-out body (never below the resizer's minimum size).
      const size = {
        width: Math.round(Math.max(260, origin.x + extent.width + LOOP_PADDING.right + 16)),
        height: Math.round(Math.max(140, origin.y + extent.height + LOOP_PADDING.bottom + 8)),
      };
      sizes.set(parent, size);
      loopSizes.set(parent, size);
    }
  };
  layOut(null, new Set());

  return nodes.map((n) => {
    const position = positions.get(n.id) ?? n.position;
    const size = loopSizes.get(n.id);
    if (!size) return { ...n, position };
    return { ...n, position, width: size.width, height: size.height, style: { ...n.style, width: size.width, height: size.height } };
  });
}
