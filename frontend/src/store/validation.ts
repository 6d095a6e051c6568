// The server's validation errors (and warnings, which block neither a save nor a run) as the
// editor shows them, and field text that does not make a value yet (which keeps Save from saving).
import type { ValidationError } from "../types";
import { byId, type BlockNode } from "./model";

/**
 * A field whose text does not make a value yet (unparseable JSON, a response format with
 * duplicate names): the last valid value stays in the config, the text is kept here (so it
 * survives the settings panel closing) and Save refuses until it is fixed or cleared.
 */
export interface FieldDraft {
  blockId: string;
  field: string;
  message: string;
  draft: unknown;
}

export function draftKey(blockId: string, field: string): string {
  return `${blockId}\u0000${field}`;
}

/** Errors of one config field: its own name, or a dotted path starting with it. */
export function fieldErrors(errors: ValidationError[] | undefined, field: string): ValidationError[] {
  return (errors ?? []).filter((e) => e.field === field || e.field.startsWith(`${field}.`));
}

/** The errors to show: all but those of quiet blocks' fields the user has not edited yet. */
export function shownErrors(errors: ValidationError[], quiet: Record<string, string[]>): ValidationError[] {
  if (!Object.keys(quiet).length) return errors;
  return errors.filter((e) => {
    const touched = e.block_id ? quiet[e.block_id] : undefined;
    if (!touched) return true;
    return touched.some((field) => e.field === field || e.field.startsWith(`${field}.`));
  });
}

export function groupErrors(errors: ValidationError[]): Record<string, ValidationError[]> {
  const out: Record<string, ValidationError[]> = {};
  for (const e of errors) {
    if (!e.block_id) continue;
    (out[e.block_id] ??= []).push(e);
  }
  return out;
}

/** Marks a field of a quiet (new) block as edited: its errors show from now on. */
export function touchField(
  quiet: Record<string, string[]>,
  allErrors: ValidationError[],
  id: string,
  field: string,
): { quiet?: Record<string, string[]>; errors?: ValidationError[]; errorsByBlock?: Record<string, ValidationError[]> } {
  const fields = quiet[id];
  if (!fields || fields.includes(field)) return {};
  const nextQuiet = { ...quiet, [id]: [...fields, field] };
  const shown = shownErrors(allErrors, nextQuiet);
  return { quiet: nextQuiet, errors: shown, errorsByBlock: groupErrors(shown) };
}

/** Drafts of existing blocks, with the block's name. */
export function invalidDrafts(
  fieldDrafts: Record<string, FieldDraft>,
  nodes: BlockNode[],
): (FieldDraft & { block: string })[] {
  const map = byId(nodes);
  return Object.values(fieldDrafts)
    .filter((d) => map.has(d.blockId))
    .map((d) => ({ ...d, block: map.get(d.blockId)!.data.name }));
}

/** "2 problems", "1 warning", "2 problems · 1 warning": what the header and status bar say. */
export function problemsLabel(errors: number, warnings: number): string {
  const parts = [];
  if (errors) parts.push(`${errors} problem${errors === 1 ? "" : "s"}`);
  if (warnings) parts.push(`${warnings} warning${warnings === 1 ? "" : "s"}`);
  return parts.join(" · ");
}
