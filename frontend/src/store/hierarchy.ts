// Which block sits inside which loop (the parentId chain).
import { byId, type BlockNode } from "./model";

export function isDescendant(nodes: BlockNode[], id: string, ancestor: string): boolean {
  const map = byId(nodes);
  let parent = map.get(id)?.parentId;
  const seen = new Set<string>();
  while (parent && !seen.has(parent)) {
    if (parent === ancestor) return true;
    seen.add(parent);
    parent = map.get(parent)?.parentId;
  }
  return false;
}

export function depthOf(nodes: BlockNode[], id: string): number {
  const map = byId(nodes);
  let depth = 0;
  let parent = map.get(id)?.parentId;
  while (parent && depth < 100) {
    depth += 1;
    parent = map.get(parent)?.parentId;
  }
  return depth;
}

/** Parents before their children (React Flow needs it); otherwise the order is kept. */
export function sortParentsFirst(nodes: BlockNode[]): BlockNode[] {
  const ids = new Set(nodes.map((n) => n.id));
  const placed = new Set<string>();
  const out: BlockNode[] = [];
  let rest = nodes;
  while (rest.length) {
    const next: BlockNode[] = [];
    for (const node of rest) {
      if (!node.parentId || !ids.has(node.parentId) || placed.has(node.parentId)) {
        out.push(node);
        placed.add(node.id);
      } else {
        next.push(node);
      }
    }
    if (next.length === rest.length) {
      out.push(...next); // a parent cycle: give up ordering rather than loop forever
      break;
    }
    rest = next;
  }
  return out;
}
