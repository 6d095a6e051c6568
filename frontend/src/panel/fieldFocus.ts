// "Show me this field": a problem link selects its block, then the config panel scrolls to the
// named field and puts the caret in it. The request is kept here until the panel of that
// block is there to take it (selecting a block mounts its panel a render later).
import { create } from "zustand";
import { useGraphStore } from "../store/graphStore";

export interface FieldFocusRequest {
  blockId: string;
  field: string;
  /** Bumped on each request: the same field asked twice is shown twice. */
  n: number;
}

export const useFieldFocus = create<{ request: FieldFocusRequest | null }>(() => ({ request: null }));

let asked = 0;

/** Selects `blockId` and asks its config panel to show `field` (a path: "headers.X" names the
 * `headers` field's row X). */
export function showBlockField(blockId: string, field: string): void {
  useGraphStore.getState().select(blockId);
  asked += 1;
  useFieldFocus.setState({ request: { blockId, field, n: asked } });
}

/** Takes the pending request for `blockId`, if any. */
export function takeFieldFocus(blockId: string): FieldFocusRequest | null {
  const request = useFieldFocus.getState().request;
  if (!request || request.blockId !== blockId) return null;
  useFieldFocus.setState({ request: null });
  return request;
}

const FOCUSABLE = "input:not([type=hidden]):not([disabled]), textarea:not([disabled]), select:not([disabled]), [contenteditable=true], button:not([disabled])";

/** The panel's frame of `field` (the longest field name that is `field` or a prefix of its
 * path) and the control to focus in it (the path's own control when it has one). */
export function findField(panel: ParentNode, field: string): { frame: HTMLElement; control: HTMLElement | null } | null {
  let frame: HTMLElement | null = null;
  let length = -1;
  for (const el of panel.querySelectorAll<HTMLElement>("[data-field-wrap]")) {
    const name = el.dataset.fieldWrap ?? "";
    if ((field === name || field.startsWith(`${name}.`)) && name.length > length) {
      frame = el;
      length = name.length;
    }
  }
  if (!frame) {
    // A problem of the block as a whole ("edges"): its line among the panel's general errors.
    const general = [...panel.querySelectorAll<HTMLElement>("[data-field-error]")].find((el) => el.dataset.fieldError === field);
    return general ? { frame: general, control: null } : null;
  }
  const own = [...frame.querySelectorAll<HTMLElement>("[data-field]")].find((el) => el.dataset.field === field);
  const control = own && own.matches(FOCUSABLE) ? own : ((own ?? frame).querySelector<HTMLElement>(FOCUSABLE) ?? frame.querySelector<HTMLElement>(FOCUSABLE));
  return { frame, control };
}

/** Scrolls `field`'s frame into view and focuses its control; false when the panel has no such field. */
export function focusField(panel: ParentNode, field: string): boolean {
  const found = findField(panel, field);
  if (!found) return false;
  found.frame.scrollIntoView?.({ block: "center", behavior: "smooth" });
  found.frame.classList.add("field-flash");
  window.setTimeout(() => found.frame.classList.remove("field-flash"), 1500);
  found.control?.focus({ preventScroll: true });
  return true;
}
