// One React root per test, in a container attached to the document: what component tests
// render into. Call `mountEach()` at the top of a test file; it registers the set-up and the
// tear-down (unmount, container removed) with Vitest.
import { act, type ReactNode } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach } from "vitest";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

export interface Mount {
  /** The current test's container (a new one each test). */
  readonly container: HTMLDivElement;
  /** Renders `node` into the current test's root, inside `act`. */
  render(node: ReactNode): void;
}

export function mountEach(): Mount {
  let root: Root | null = null;
  let container: HTMLDivElement | null = null;
  beforeEach(() => {
    container = document.createElement("div");
    document.body.appendChild(container);
    root = createRoot(container);
  });
  afterEach(() => {
    const done = root;
    if (done) act(() => done.unmount());
    container?.remove();
    root = container = null;
  });
  return {
    get container() {
      if (!container) throw new Error("mountEach: no test is running");
      return container;
    },
    render(node: ReactNode) {
      const current = root;
      if (!current) throw new Error("mountEach: no test is running");
      act(() => current.render(node));
    },
  };
}
