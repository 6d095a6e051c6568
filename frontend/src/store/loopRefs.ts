// Block names inside a loop's aggregations: JMESPath over its results, not `<name…>`
// references, so a rename (or a paste that renames) rewrites them on its own. The loop's other
// JMESPath field, `priority`, reads an item before any block ran: no block names there.
import { isDescendant } from "./hierarchy";
import { LOOP_TYPE, type BlockNode } from "./model";

const NAME = "[A-Za-z_][A-Za-z0-9_]*";
// `outputs.<name>` (or `outputs."<name>"`): each result's outputs are keyed by block name.
const OUTPUTS = new RegExp(`(?<![\\w$])(outputs\\s*\\.\\s*)(?:(${NAME})|"(${NAME})")(?![\\w$])`, "g");
// `block == '<name>'` and `'<name>' == block` (also !=): a failed item names its block.
const BLOCK_IS = new RegExp(`((?<![\\w$.])(?:@\\.)?block\\s*[!=]=\\s*)'(${NAME})'`, "g");
const IS_BLOCK = new RegExp(`'(${NAME})'(\\s*[!=]=\\s*(?:@\\.)?block)(?![\\w$])`, "g");

/**
 * Renames blocks (old name → new, all at once) in one JMESPath expression, where it names
 * them: `outputs.<name>` and a quoted name compared with `block`. Whole names only: `agent`
 * never touches `agent_x`, nor a literal compared with anything but `block`.
 */
export function renameInExpression(expression: string, names: ReadonlyMap<string, string>): string {
  return expression
    .replace(OUTPUTS, (whole, before: string, bare?: string, quoted?: string) => {
      const to = names.get(bare ?? quoted ?? "");
      return to ? before + to : whole;
    })
    .replace(BLOCK_IS, (whole, before: string, name: string) => (names.has(name) ? `${before}'${names.get(name)}'` : whole))
    .replace(IS_BLOCK, (whole, name: string, after: string) => (names.has(name) ? `'${names.get(name)}'${after}` : whole));
}

/** A loop config with blocks renamed in its aggregations (the same object if untouched). */
export function renameInLoopConfig(config: Record<string, unknown>, names: ReadonlyMap<string, string>): Record<string, unknown> {
  const value = config.aggregations;
  if (!value || typeof value !== "object" || Array.isArray(value)) return config;
  const aggregations = Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, typeof v === "string" ? renameInExpression(v, names) : v]),
  );
  return JSON.stringify(aggregations) === JSON.stringify(value) ? config : { ...config, aggregations };
}

/** Whether `loopId` is a loop holding block `id` (at any depth: names are unique, so safe). */
export function loopHolds(nodes: BlockNode[], loopId: string, id: string): boolean {
  return nodes.some((n) => n.id === loopId && n.type === LOOP_TYPE) && isDescendant(nodes, id, loopId);
}
