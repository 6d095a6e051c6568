// Pure helpers of the reference picker: what the user is typing after "<", and inserting a ref.
import type { ScopeEntry } from "../types";

const QUERY = /^[A-Za-z0-9_.-]*$/;

/** The open reference at the caret: the "<" index and what follows it, or null. */
export function openReference(text: string, caret: number): { anchor: number; query: string } | null {
  const before = text.slice(0, caret);
  const anchor = before.lastIndexOf("<");
  if (anchor < 0) return null;
  const query = before.slice(anchor + 1);
  return QUERY.test(query) ? { anchor, query } : null;
}

/** Replaces text[anchor, caret) with `<ref>`; returns the new text and the caret after it. */
export function insertReference(text: string, anchor: number, caret: number, ref: string): { text: string; caret: number } {
  let rest = text.slice(caret);
  // Typing "<name" inside an existing "<name.path>" would leave its tail behind: drop it.
  const tail = rest.match(/^[A-Za-z0-9_.-]*>/);
  if (tail) rest = rest.slice(tail[0].length);
  const inserted = `<${ref}>`;
  return { text: text.slice(0, anchor) + inserted + rest, caret: anchor + inserted.length };
}

/** Entries matching the query: prefix matches first, then the others containing it. */
export function filterScope(entries: ScopeEntry[], query: string): ScopeEntry[] {
  const q = query.toLowerCase();
  if (!q) return entries;
  const starts = entries.filter((e) => e.ref.toLowerCase().startsWith(q));
  const contains = entries.filter((e) => !e.ref.toLowerCase().startsWith(q) && e.ref.toLowerCase().includes(q));
  return [...starts, ...contains];
}

const PATH = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+$/;

/**
 * The longest entry that `query` goes below (at a dot) when its shape is open: type "any",
 * an object whose fields are not listed, or a list followed by an index.
 */
export function openBase(entries: ScopeEntry[], query: string): ScopeEntry | null {
  let base: ScopeEntry | null = null;
  for (const e of entries) {
    if (query.startsWith(`${e.ref}.`) && (!base || e.ref.length > base.ref.length)) base = e;
  }
  if (!base) return null;
  const rest = query.slice(base.ref.length + 1);
  const listed = entries.some((e) => e.ref.startsWith(`${base!.ref}.`));
  if (base.type === "any" || (base.type === "object" && !listed)) return base;
  if (base.type === "array" && /^\d+(\.|$)/.test(rest)) return base;
  return null;
}

/**
 * The typed path itself as an entry, when it goes below an open-schema reference (e.g.
 * `webhook_1.body.le` under `webhook_1.body`, type any) and is not listed already.
 */
export function typedPathEntry(entries: ScopeEntry[], query: string): ScopeEntry | null {
  if (!PATH.test(query) || entries.some((e) => e.ref === query)) return null;
  return openBase(entries, query) ? { ref: query, type: "any" } : null;
}

/** engine/core/refs.py's REF_PATTERN: `<root.path.to.field>`. */
const REFERENCE = /<([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_-]+)*)>/g;

/**
 * Rewrites the root of every reference found in `value` (strings at any depth) through
 * `names` (old → new), all at once: renaming a→b and b→c together never turns a into c.
 */
export function renameReferenceRoots(value: unknown, names: ReadonlyMap<string, string>): unknown {
  if (typeof value === "string") {
    return value.replace(REFERENCE, (whole, root: string, path: string) => {
      const name = names.get(root);
      return name === undefined ? whole : `<${name}${path}>`;
    });
  }
  if (Array.isArray(value)) return value.map((v) => renameReferenceRoots(v, names));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, renameReferenceRoots(v, names)]),
    );
  }
  return value;
}
