import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { useGraphStore } from "../store/graphStore";
import { ConfigPanel } from "./ConfigPanel";
import { commitPendingEdits } from "./pendingEdits";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let container: HTMLDivElement;
let root: Root;
const store = () => useGraphStore.getState();
const nameInput = () => container.querySelector<HTMLInputElement>("input[data-field='name']")!;

function type(el: HTMLInputElement, value: string) {
  act(() => {
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!.set!.call(el, value);
    el.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

beforeEach(() => {
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
  store().load({
    blocks: [
      { id: "h", type: "http", name: "fetch", parent: null, position: { x: 0, y: 0 }, config: {} },
      { id: "s", type: "slack", name: "tell", parent: null, position: { x: 300, y: 0 }, config: { text: "<fetch.body>" } },
    ],
    edges: [],
  });
  store().select("h");
  act(() => root.render(<ConfigPanel />));
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

describe("a name being typed when Save is pressed", () => {
  it("is applied first (references follow, the graph is dirty)", () => {
    type(nameInput(), "download");
    expect(store().nodes[0].data.name).toBe("fetch");
    act(() => commitPendingEdits());
    expect(store().nodes[0].data.name).toBe("download");
    expect(store().nodes[1].data.config.text).toBe("<download.body>");
    expect(store().dirty).toBe(true);
    expect(store().invalidFields()).toEqual([]);
  });

  it("refuses the save when invalid: its error shows and stays listed across panels", () => {
    type(nameInput(), "bad name!");
    act(() => commitPendingEdits());
    expect(store().nodes[0].data.name).toBe("fetch");
    expect(container.querySelector("[data-field-error='name']")?.textContent).toMatch(/letters/);
    expect(store().invalidFields()).toMatchObject([{ blockId: "h", field: "name", block: "fetch" }]);
    act(() => store().select("s"));
    act(() => store().select("h"));
    expect(nameInput().value).toBe("bad name!");
    expect(container.querySelector("[data-field-error='name']")?.textContent).toMatch(/letters/);
    // Escape gives the name back and lets Save save.
    act(() => nameInput().dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true })));
    expect(nameInput().value).toBe("fetch");
    expect(store().invalidFields()).toEqual([]);
  });

  it("does nothing when the name was not changed", () => {
    act(() => commitPendingEdits());
    expect(store().dirty).toBe(false);
    expect(store().past).toHaveLength(0);
  });
});
