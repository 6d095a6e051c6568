// Conversion between the server's GraphJson and React Flow nodes and edges. Unknown keys (of
// blocks and of the graph) are kept and written back as-is.
import type { Viewport } from "@xyflow/react";
import type { BlockJson, EdgeJson, GraphJson } from "../types";
import { toFlowEdge } from "./connections";
import { nodeSize } from "./geometry";
import { sortParentsFirst } from "./hierarchy";
import { isNote, LOOP_SIZE, LOOP_TYPE, NOTE_SIZE, NOTE_TYPE, type BlockNode, type FlowEdge } from "./model";

const BLOCK_KEYS = new Set(["id", "type", "name", "parent", "config", "position"]);

export interface FlowGraph {
  nodes: BlockNode[];
  edges: FlowEdge[];
  viewport: Viewport | null;
  graphExtra: Record<string, unknown>;
}

export function blockToNode(block: BlockJson): BlockNode {
  const isLoop = block.type === LOOP_TYPE;
  const extra: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(block)) {
    if (BLOCK_KEYS.has(key) || (isLoop && key === "style")) continue;
    extra[key] = value;
  }
  const node: BlockNode = {
    id: block.id,
    type: block.type,
    position: { x: Number(block.position?.x) || 0, y: Number(block.position?.y) || 0 },
    data: { blockType: block.type, name: block.name, config: { ...block.config }, extra },
  };
  if (block.parent) {
    node.parentId = block.parent;
    node.extent = "parent";
  }
  if (isLoop) {
    const width = Number(block.style?.width) || LOOP_SIZE.width;
    const height = Number(block.style?.height) || LOOP_SIZE.height;
    node.width = width;
    node.height = height;
    node.style = { width, height };
  }
  return node;
}

export function nodeToBlock(node: BlockNode): BlockJson {
  const block: BlockJson & Record<string, unknown> = {
    ...node.data.extra,
    id: node.id,
    type: node.data.blockType,
    name: node.data.name,
    parent: node.parentId ?? null,
    config: node.data.config,
    position: { x: Math.round(node.position.x), y: Math.round(node.position.y) },
  };
  if (node.type === LOOP_TYPE) {
    const { width, height } = nodeSize(node);
    block.style = { width: Math.round(width), height: Math.round(height) };
  }
  return block;
}

/** A saved sticky note: `{id, text, position, size}` in the graph's `notes`. */
export interface NoteJson {
  id: string;
  text: string;
  position: { x: number; y: number };
  size?: { width?: number; height?: number };
}

function noteToNode(note: NoteJson, id: string): BlockNode {
  const width = Number(note.size?.width) || NOTE_SIZE.width;
  const height = Number(note.size?.height) || NOTE_SIZE.height;
  return {
    id,
    type: NOTE_TYPE,
    position: { x: Number(note.position?.x) || 0, y: Number(note.position?.y) || 0 },
    width,
    height,
    style: { width, height },
    zIndex: -1, // under the blocks and edges
    data: { blockType: NOTE_TYPE, name: id, config: { text: typeof note.text === "string" ? note.text : "" }, extra: {} },
  };
}

function nodeToNote(node: BlockNode): NoteJson {
  const { width, height } = nodeSize(node);
  return {
    id: node.id,
    text: String(node.data.config.text ?? ""),
    position: { x: Math.round(node.position.x), y: Math.round(node.position.y) },
    size: { width: Math.round(width), height: Math.round(height) },
  };
}

/** Tolerates a missing or partial graph; blocks whose parent is missing go to the top level. */
export function graphToFlow(graph: GraphJson | null | undefined): FlowGraph {
  const blocks = Array.isArray(graph?.blocks) ? graph.blocks : [];
  const ids = new Set(blocks.map((b) => b.id));
  const nodes = sortParentsFirst(
    blocks.map((b) => blockToNode(b.parent && !ids.has(b.parent) ? { ...b, parent: null } : b)),
  );
  const rawNotes = (graph as { notes?: unknown } | null | undefined)?.notes;
  for (const note of Array.isArray(rawNotes) ? (rawNotes as NoteJson[]) : []) {
    if (!note || typeof note !== "object") continue;
    // Notes are referenced by nothing: one whose id a block has gets a free one.
    let id = typeof note.id === "string" && note.id ? note.id : "note";
    for (let i = 1; ids.has(id); i++) id = `note_${i}`;
    ids.add(id);
    nodes.push(noteToNode(note, id));
  }
  const seen = new Set<string>();
  const edges: FlowEdge[] = [];
  for (const e of Array.isArray(graph?.edges) ? graph.edges : []) {
    const edge = toFlowEdge(e.source, e.target, e.handle);
    if (seen.has(edge.id)) edge.id = `${edge.id}:${edges.length}`;
    seen.add(edge.id);
    edges.push(edge);
  }
  const { blocks: _b, edges: _e, notes: _n, viewport, ...graphExtra } = (graph ?? {}) as GraphJson & Record<string, unknown>;
  void _b;
  void _e;
  void _n;
  return { nodes, edges, viewport: viewport && typeof viewport === "object" ? viewport : null, graphExtra };
}

export function flowToGraph({ nodes, edges, viewport, graphExtra }: FlowGraph): GraphJson {
  const graph: GraphJson & Record<string, unknown> = {
    ...graphExtra,
    blocks: nodes.filter((n) => !isNote(n)).map(nodeToBlock),
    edges: edges.map(
      (e): EdgeJson => ({ source: e.source, target: e.target, ...(e.sourceHandle ? { handle: e.sourceHandle } : {}) }),
    ),
  };
  const notes = nodes.filter(isNote).map(nodeToNote);
  if (notes.length) graph.notes = notes;
  if (viewport) graph.viewport = { x: viewport.x, y: viewport.y, zoom: viewport.zoom };
  return graph;
}
