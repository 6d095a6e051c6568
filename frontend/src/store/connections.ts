// Which edges may exist (no cycles, no loop-boundary crossings, no inputs into the trigger) and
// the messages shown to the user when a connection or a move is refused or drops edges.
import { BODY_HANDLE, byId, isTrigger, LOOP_TYPE, type BlockNode, type FlowEdge } from "./model";

export interface ConnectionLike {
  source: string | null;
  target: string | null;
  sourceHandle?: string | null;
  targetHandle?: string | null;
}

export const TRIGGER_IN_LOOP = "Triggers cannot go inside loops: it stays at the top level";

export function removedNotice(count: number): string {
  return `${count} connection${count === 1 ? "" : "s"} removed (they would cross the loop boundary) — Undo to restore`;
}

export function edgeId(source: string, target: string, handle?: string | null): string {
  return `e:${source}:${handle ?? ""}:${target}`;
}

export function toFlowEdge(source: string, target: string, handle?: string | null): FlowEdge {
  return { id: edgeId(source, target, handle), source, target, sourceHandle: handle ?? null };
}

/** Why an edge may not exist (structure only: parents, handles, trigger), or null. */
export function edgeProblem(nodes: BlockNode[], source: string, target: string, handle?: string | null): string | null {
  const map = byId(nodes);
  const s = map.get(source);
  const t = map.get(target);
  if (!s || !t) return "unknown block";
  if (s.id === t.id) return "a block cannot connect to itself";
  if (isTrigger(t.type)) return "a trigger cannot have inputs";
  const intoBody = s.type === LOOP_TYPE && t.parentId === s.id;
  if (handle === BODY_HANDLE && !intoBody) return "a loop's body handle feeds the blocks inside that loop";
  if (intoBody) return null;
  if ((s.parentId ?? null) !== (t.parentId ?? null)) return "an edge cannot cross a loop boundary; connect to the loop itself";
  return null;
}

export function reaches(edges: FlowEdge[], from: string, to: string): boolean {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.source, [...(next.get(e.source) ?? []), e.target]);
  const stack = [from];
  const seen = new Set<string>();
  while (stack.length) {
    const current = stack.pop() as string;
    if (current === to) return true;
    if (seen.has(current)) continue;
    seen.add(current);
    stack.push(...(next.get(current) ?? []));
  }
  return false;
}

/** Why `connection` may not be added to the graph, or null. */
export function connectionProblem(
  nodes: BlockNode[],
  edges: FlowEdge[],
  { source, target, sourceHandle }: ConnectionLike,
): string | null {
  if (!source || !target) return "pick two blocks";
  const problem = edgeProblem(nodes, source, target, sourceHandle);
  if (problem) return problem;
  if (edges.some((e) => e.source === source && e.target === target)) return "these blocks are already connected";
  if (reaches(edges, target, source)) return "this connection would make a cycle";
  return null;
}

/** The edge for an allowed connection: a loop feeds its own children through its body handle. */
export function edgeFor(nodes: BlockNode[], source: string, target: string): FlowEdge {
  const map = byId(nodes);
  const handle = map.get(source)?.type === LOOP_TYPE && map.get(target)?.parentId === source ? BODY_HANDLE : null;
  return toFlowEdge(source, target, handle);
}
