// Making and naming blocks: unique names, schema defaults, renames that rewrite references.
import type { XYPosition } from "@xyflow/react";
import type { CatalogueEntry } from "../types";
import { isDescendant } from "./hierarchy";
import { loopHolds, renameInLoopConfig } from "./loopRefs";
import { LOOP_SIZE, LOOP_TYPE, type BlockNode } from "./model";

export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function uniqueName(nodes: BlockNode[], type: string): string {
  const base = type.replace(/[^A-Za-z0-9_]/g, "_").replace(/^([^A-Za-z_])/, "b_$1") || "block";
  const taken = new Set<string>();
  for (const n of nodes) {
    taken.add(n.id);
    taken.add(n.data.name);
  }
  for (let i = 1; ; i++) {
    const candidate = `${base}_${i}`;
    if (!taken.has(candidate)) return candidate;
  }
}

function defaultsOf(entry: CatalogueEntry | undefined): Record<string, unknown> {
  const props = (entry?.config_schema?.properties ?? {}) as Record<string, { default?: unknown }>;
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(props)) {
    if (schema && typeof schema === "object" && "default" in schema) out[key] = structuredClone(schema.default);
  }
  return out;
}

/** A new, selected block named `id` with its schema's defaults (a loop gets its default size). */
export function newBlock(
  id: string,
  type: string,
  position: XYPosition,
  parentId: string | null,
  entry: CatalogueEntry | undefined,
): BlockNode {
  const node: BlockNode = {
    id,
    type,
    position,
    selected: true,
    data: { blockType: type, name: id, config: defaultsOf(entry), extra: {} },
  };
  if (parentId) {
    node.parentId = parentId;
    node.extent = "parent";
  }
  if (type === LOOP_TYPE) {
    node.width = LOOP_SIZE.width;
    node.height = LOOP_SIZE.height;
    node.style = { ...LOOP_SIZE };
  }
  return node;
}

/** Why block `id` may not be named `name` (already trimmed and different), or null. */
export function nameProblem(nodes: BlockNode[], id: string, name: string): string | null {
  if (!NAME_PATTERN.test(name)) return "a name is letters, digits and _ and starts with a letter";
  if (name === "env") return "'env' is reserved for secrets";
  if (nodes.some((n) => n.id !== id && n.data.name === name)) return `another block is named '${name}'`;
  return null;
}

/**
 * Renames block `id` to `name` and rewrites other blocks' references to its old name, and
 * its name in the JMESPath fields of the loops that hold it (`outputs.<name>`, `block=='<name>'`).
 */
export function renamed(nodes: BlockNode[], id: string, oldName: string, name: string): BlockNode[] {
  return nodes.map((n) => {
    if (n.id === id) return { ...n, data: { ...n.data, name } };
    let config = renameReferences(n.data.config, oldName, name) as Record<string, unknown>;
    if (loopHolds(nodes, n.id, id)) config = renameInLoopConfig(config, new Map([[oldName, name]]));
    return JSON.stringify(config) === JSON.stringify(n.data.config) ? n : { ...n, data: { ...n.data, config } };
  });
}

/** The engine's loop variable when a loop sets none. */
export const DEFAULT_VARIABLE = "item";

/** The variable a loop config names (the engine's default when unset). */
export function variableOf(config: Record<string, unknown>): string {
  const v = config.variable;
  return typeof v === "string" && v !== "" ? v : DEFAULT_VARIABLE;
}

/**
 * The nodes after loop `loopId`'s variable changed from `oldVar` to `newVar`: `<old…>`
 * references in the loop's blocks (the variable exists nowhere else) follow. Nothing is
 * rewritten while either is not a valid name (mid-typing): the references wait for one.
 */
export function withVariableRenamed(nodes: BlockNode[], loopId: string, oldVar: string, newVar: string): BlockNode[] {
  if (oldVar === newVar || !NAME_PATTERN.test(oldVar) || !NAME_PATTERN.test(newVar)) return nodes;
  return nodes.map((n) => {
    if (!isDescendant(nodes, n.id, loopId)) return n;
    const config = renameReferences(n.data.config, oldVar, newVar) as Record<string, unknown>;
    return JSON.stringify(config) === JSON.stringify(n.data.config) ? n : { ...n, data: { ...n.data, config } };
  });
}

/** Rewrites `<old…>` references to `<new…>` in every string of a config value. */
export function renameReferences(value: unknown, oldName: string, newName: string): unknown {
  if (typeof value === "string") {
    const escaped = oldName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return value.replace(new RegExp(`<${escaped}(?=[.>])`, "g"), `<${newName}`);
  }
  if (Array.isArray(value)) return value.map((v) => renameReferences(v, oldName, newName));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, renameReferences(v, oldName, newName)]),
    );
  }
  return value;
}
