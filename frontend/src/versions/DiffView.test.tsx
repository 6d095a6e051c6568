import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { VersionDiff } from "../types";
import { DiffView } from "./DiffView";

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

const EMPTY: VersionDiff = {
  from: 1,
  to: 2,
  blocks: { added: [], removed: [], changed: [], moved: [] },
  edges: { added: [], removed: [] },
};
const label = (name: string) => ({ id: name, name, type: "agent" });

describe("DiffView pins", () => {
  it("lists pinned test data apart, saying it never runs", () => {
    const diff = { ...EMPTY, pins: { added: [label("ask")], removed: [label("each")], changed: [] } };
    act(() => root.render(<DiffView diff={diff} />));
    const lines = [...container.querySelectorAll("[data-testid='diff-pins']")].map((l) => l.textContent);
    expect(lines).toEqual(["Test data pinned (never run): ask", "Test data unpinned (never run): each"]);
    expect(container.textContent).not.toContain("same graph");
  });

  it("calls two versions that differ in nothing the same graph (older answers have no pins)", () => {
    act(() => root.render(<DiffView diff={EMPTY} />));
    expect(container.textContent).toContain("The two versions have the same graph.");
    expect(container.querySelector("[data-testid='diff-pins']")).toBeNull();
  });
});
