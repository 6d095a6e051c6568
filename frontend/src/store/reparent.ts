// Moving a block into, out of or between loops.
import { edgeProblem } from "./connections";
import { absoluteOf, growParents, placeInside } from "./geometry";
import { isDescendant, sortParentsFirst } from "./hierarchy";
import type { Snapshot } from "./history";
import { BODY_HANDLE, byId, isTrigger, LOOP_TYPE, type BlockNode, type FlowEdge } from "./model";

/**
 * Moves `id` under `parent` (null = top level) keeping its place on screen; drops edges that
 * became invalid (`removed` says how many).
 */
export function reparentIn(
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
    if (isTrigger(node.type)) return null;
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
    (e) =>
      (e.source !== id && e.target !== id) ||
      (edgeProblem(next, e.source, e.target, e.sourceHandle) === null && !afterBecameBody(e, id, parent)),
  );
  return { nodes: next, edges: nextEdges, removed: edges.length - nextEdges.length };
}

/**
 * An edge from a loop's output to a block moved into that loop: it said "after the loop", and
 * kept, it would run the block once per item instead (a Slack post per lead). Dropped, like
 * the edges a move makes invalid; the user wires the body handle if per item is meant.
 */
function afterBecameBody(edge: FlowEdge, id: string, parent: string | null): boolean {
  return parent !== null && edge.source === parent && edge.target === id && edge.sourceHandle !== BODY_HANDLE;
}
