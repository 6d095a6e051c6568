import { act } from "react";
import { describe, expect, it, vi } from "vitest";
import { mountEach } from "../testing/mount";
import { ConfirmDialog } from "./ConfirmDialog";
import { ShortcutSheet } from "./ShortcutSheet";

const mount = mountEach();

describe("ConfirmDialog", () => {
  it("focuses the safe answer, not the destructive one", () => {
    const answer = vi.fn();
    mount.render(<ConfirmDialog question={{ text: "Delete the loop?", confirm: "Delete 3 blocks", answer }} />);
    expect((document.activeElement as HTMLElement).dataset.action).toBe("confirm-cancel");
  });
});

describe("ShortcutSheet", () => {
  it("takes focus, keeps Tab on itself and gives focus back when closed", () => {
    const before = document.createElement("button");
    document.body.appendChild(before);
    before.focus();
    const onClose = vi.fn();
    mount.render(<ShortcutSheet onClose={onClose} />);
    const sheet = mount.container.querySelector("[data-testid=shortcut-sheet]")!;
    expect(sheet.contains(document.activeElement)).toBe(true);
    const tab = new KeyboardEvent("keydown", { key: "Tab", bubbles: true, cancelable: true });
    act(() => {
      document.activeElement!.dispatchEvent(tab);
    });
    expect(tab.defaultPrevented).toBe(true);
    expect(sheet.contains(document.activeElement)).toBe(true);
    mount.render(<></>);
    expect(document.activeElement).toBe(before);
    before.remove();
  });
});
