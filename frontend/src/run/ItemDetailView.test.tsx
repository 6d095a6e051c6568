import { act } from "react";
import { describe, expect, it, vi } from "vitest";
import { mountEach } from "../testing/mount";
import { ItemDetailView } from "./ItemDetailView";

vi.mock("./runApi", () => ({ fetchItem: () => new Promise(() => undefined) }));

const mount = mountEach();

describe("ItemDetailView", () => {
  it("closes on Esc, but not while typing in a field", () => {
    const onClose = vi.fn();
    mount.render(<ItemDetailView runId="r1" itemKey="3" onClose={onClose} />);
    const input = document.createElement("input");
    mount.container.appendChild(input);
    act(() => {
      input.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    });
    expect(onClose).not.toHaveBeenCalled();
    act(() => {
      document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    });
    expect(onClose).toHaveBeenCalledTimes(1);
  });
});
