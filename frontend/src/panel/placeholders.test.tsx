import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { useGraphStore } from "../store/graphStore";
import type { CatalogueEntry } from "../types";
import { ConfigPanel } from "./ConfigPanel";
import { exampleRef, itemsPlaceholder, jsonPlaceholder } from "./fields";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const CATALOGUE: CatalogueEntry[] = [
  {
    type: "http", label: "HTTP request", description: "", icon: "globe", outputs: {},
    config_schema: {
      type: "object",
      properties: {
        url: { type: "string" },
        headers: { type: "object", additionalProperties: { type: "string" } },
        body: { title: "Body (JSON)" },
      },
    },
  },
  {
    type: "loop", label: "Loop", description: "", icon: "repeat", outputs: {},
    config_schema: { type: "object", properties: { items: { type: ["string", "array"] } } },
  },
];

// What the validate endpoint lists for each block: this workflow's own names only.
const SCOPES = {
  each: [{ ref: "env.KEY", type: "secret" }, { ref: "hook_in", type: "object" }, { ref: "hook_in.body", type: "object" },
    { ref: "hook_in.body.leads", type: "array" }],
  call: [{ ref: "env.KEY", type: "secret" }, { ref: "loop.index", type: "integer" }, { ref: "prospect", type: "object" },
    { ref: "prospect.email", type: "string" }, { ref: "hook_in.body", type: "object" }],
};

let container: HTMLDivElement;
let root: Root;

beforeEach(() => {
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
  const store = useGraphStore.getState();
  store.setCatalogue(CATALOGUE);
  store.load({
    blocks: [
      { id: "each", type: "loop", name: "each", parent: null, position: { x: 0, y: 0 }, config: {} },
      { id: "call", type: "http", name: "call", parent: "each", position: { x: 20, y: 40 }, config: {} },
    ],
    edges: [],
  });
  store.setValidation([], SCOPES);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

const placeholder = (selector: string) => (container.querySelector(selector) as HTMLInputElement | null)?.placeholder;

describe("placeholders", () => {
  it("name the workflow's own blocks and item variable, never a generic example", () => {
    act(() => useGraphStore.getState().select("each"));
    act(() => root.render(<ConfigPanel />));
    expect(placeholder("textarea[data-field='items']")).toBe("<hook_in.body.leads>");

    act(() => useGraphStore.getState().select("call"));
    expect(placeholder("textarea[data-field='body']")).toBe('JSON, e.g. {"email": "<prospect.email>"}, or one <reference>');
    act(() => (container.querySelector("[data-field='headers'] [data-action='add-row']") as HTMLElement).click());
    expect(placeholder("[data-field='headers'] [data-kv-row='0'] textarea, [data-field='headers'] [data-kv-row='0'] input.kv-value")).toBe(
      "value or <prospect.email>",
    );
    expect(container.innerHTML).not.toContain("webhook.body");
    expect(container.innerHTML).not.toContain("item.id");
  });

  it("fall back to what is in scope, or to no reference at all", () => {
    expect(exampleRef([{ ref: "env.X", type: "secret" }])).toBeNull();
    expect(jsonPlaceholder([])).toBe("JSON, or one <reference>");
    expect(exampleRef([{ ref: "fetch", type: "object" }, { ref: "fetch.rows", type: "array" }])).toBe("fetch.rows");
    expect(itemsPlaceholder([{ ref: "trigger_7.body", type: "object" }])).toBe("<trigger_7.body.items>");
    expect(itemsPlaceholder([])).toBe("one <reference> to a list");
  });
});
