// Which keys the canvas reacts to, and where focus must be for it to react.

const IS_MAC = typeof navigator !== "undefined" && /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

/** Shift+click (and Ctrl+click, Cmd+click on a Mac) adds a block to the selection. */
export const MULTI_SELECT_KEYS = ["Shift", IS_MAC ? "Meta" : "Control"];
/** How the sheet names the modifier that also adds to the selection. */
export const MULTI_SELECT_LABEL = IS_MAC ? "Shift/Cmd+click" : "Shift/Ctrl+click";

// Controls where Delete belongs to the control (or to nothing), never to the canvas selection.
const CONTROLS = "button, a[href], input, select, textarea, [contenteditable], [role=menu], [role=dialog], [role=alertdialog]";

/**
 * Whether Delete/Backspace may delete the canvas selection with focus on `active`: on the
 * canvas (its pane, a block or a connection) or on nothing in particular (the page), never on
 * another control or panel (a Run-panel row, the header's buttons).
 */
export function deleteKeyApplies(active: Element | null, canvas: Element | null): boolean {
  if (!active || active === document.body || active === document.documentElement) return true;
  if (!canvas || !canvas.contains(active)) return false;
  return active.closest(CONTROLS) === null;
}
