import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ConfirmDialog } from "./ConfirmDialog";
import { ShortcutSheet } from "./ShortcutSheet";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let container: HTMLDivElement;
let root: Root;

beforeEach(() => {
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

describe("ConfirmDialog", () => {
  it("focuses the safe answer, not the destructive one", () => {
    const answer = vi.fn();
    act(() => root.render(<ConfirmDialog question={{ text: "Delete the loop?", confirm: "Delete 3 blocks", answer }} />));
    expect((document.activeElement as HTMLElement).dataset.action).toBe("confirm-cancel");
  });
});

describe("ShortcutSheet", () => {
  it("takes focus, keeps Tab on itself and gives focus back when closed", () => {
    const before = document.createElement("button");
    document.body.appendChild(before);
    before.focus();
    const onClose = vi.fn();
    act(() => root.render(<ShortcutSheet onClose={onClose} />));
    const sheet = container.querySelector("[data-testid=shortcut-sheet]")!;
    expect(sheet.contains(document.activeElement)).toBe(true);
    const tab = new KeyboardEvent("keydown", { key: "Tab", bubbles: true, cancelable: true });
    act(() => {
      document.activeElement!.dispatchEvent(tab);
    });
    expect(tab.defaultPrevented).toBe(true);
    expect(sheet.contains(document.activeElement)).toBe(true);
    act(() => root.render(<></>));
    expect(document.activeElement).toBe(before);
    before.remove();
  });
});
