// The keyboard shortcuts of the editor, opened with "?" (or from the canvas menu).
import { useEffect, useRef } from "react";
import { MULTI_SELECT_LABEL } from "./keys";

export const SHORTCUTS: [string, string][] = [
  ["Ctrl+C / Ctrl+X", "Copy / cut the selected blocks (a loop with what it holds)"],
  ["Ctrl+V", "Paste blocks, here or in another workflow, under the pointer"],
  ["Ctrl+D", "Duplicate the selection"],
  ["Delete / Backspace", "Delete the selection (a loop with blocks asks first), with focus on the canvas"],
  ["Ctrl+Z / Shift+Ctrl+Z", "Undo / redo"],
  ["Shift+L", "Auto-layout (loops laid out inside)"],
  ["Ctrl+S", "Save"],
  [MULTI_SELECT_LABEL, "Add a block to the selection (or take it out)"],
  ["Shift+drag", "Select the blocks in a box"],
  ["Right-click", "Actions for a block, a connection or the canvas (paste, add a note, …)"],
  ["Double-click a note", "Edit its text"],
  ["<", "In a text field: insert a reference in scope"],
  ["?", "This sheet"],
  ["Esc", "Close a menu, this sheet or the status message"],
];

export function ShortcutSheet({ onClose }: { onClose: () => void }) {
  const closeRef = useRef<HTMLButtonElement>(null);
  // A modal sheet takes focus (and gives it back when closed): Tab stays on it, not on the
  // canvas behind, where Delete would act on the selection.
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    closeRef.current?.focus();
    return () => before?.focus?.();
  }, []);
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape" || event.key === "?") {
        event.preventDefault();
        event.stopPropagation();
        onClose();
      } else if (event.key === "Tab") {
        // Its one control keeps focus.
        event.preventDefault();
        closeRef.current?.focus();
      }
    };
    window.addEventListener("keydown", onKey, true);
    return () => window.removeEventListener("keydown", onKey, true);
  }, [onClose]);
  return (
    <div className="confirm-backdrop" onPointerDown={onClose}>
      <div
        className="confirm-dialog shortcut-sheet"
        role="dialog"
        aria-modal="true"
        aria-label="Keyboard shortcuts"
        data-testid="shortcut-sheet"
        onPointerDown={(e) => e.stopPropagation()}
      >
        <div className="shortcut-title">
          <strong>Keyboard shortcuts</strong>
          <button ref={closeRef} type="button" className="icon-button" aria-label="Close (Esc)" data-action="close-shortcuts" onClick={onClose}>
            ×
          </button>
        </div>
        <table>
          <tbody>
            {SHORTCUTS.map(([keys, what]) => (
              <tr key={keys}>
                <td>
                  <kbd>{keys}</kbd>
                </td>
                <td>{what}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
