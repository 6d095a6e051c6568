import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { useGraphStore } from "../store/graphStore";
import type { CatalogueEntry } from "../types";
import { ConfigPanel } from "./ConfigPanel";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const CATALOGUE: CatalogueEntry[] = [
  {
    type: "http",
    label: "HTTP request",
    description: "Calls an HTTP API.",
    icon: "globe",
    outputs: {},
    config_schema: {
      type: "object",
      required: ["url"],
      properties: {
        method: { enum: ["GET", "POST"], default: "GET" },
        url: { type: "string", title: "URL" },
        headers: { type: "object", additionalProperties: { type: ["string", "number", "boolean"] } },
        body: { title: "Body (JSON)" },
        fail_on_status: { type: "boolean", default: true },
        timeout: { type: "number" },
      },
    },
  },
  {
    type: "agent",
    label: "Agent",
    description: "",
    icon: "sparkles",
    outputs: {},
    config_schema: { type: "object", properties: { user_prompt: { type: "string" }, response_format: { type: "object" } } },
  },
];

let container: HTMLDivElement;
let root: Root;

function type(el: Element, value: string, caret = value.length) {
  const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
  const setter = Object.getOwnPropertyDescriptor(proto, "value")!.set!;
  act(() => {
    setter.call(el, value);
    if (el instanceof HTMLTextAreaElement || (el as HTMLInputElement).type === "text") {
      (el as HTMLInputElement).setSelectionRange(caret, caret);
    }
    el.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

const $ = (sel: string) => container.querySelector(sel);
const config = (id: string) => useGraphStore.getState().nodes.find((n) => n.id === id)!.data.config;

beforeEach(() => {
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
  const store = useGraphStore.getState();
  store.setCatalogue(CATALOGUE);
  store.load({
    blocks: [
      { id: "h", type: "http", name: "fetch", parent: null, position: { x: 0, y: 0 }, config: { url: "ftp://x" } },
      { id: "a", type: "agent", name: "ask", parent: null, position: { x: 300, y: 0 }, config: {} },
    ],
    edges: [],
  });
  store.select("h");
  store.setValidation(
    [
      { block_id: "h", block: "fetch", field: "url", message: "the URL must start with http:// or https://" },
      { block_id: "h", block: "fetch", field: "headers.X", message: "bad header" },
      { block_id: "h", block: "fetch", field: "edges", message: "crosses a loop boundary" },
    ],
    { h: [{ ref: "webhook.body", type: "object" }, { ref: "webhook.body.id", type: "string" }, { ref: "env.KEY", type: "secret" }] },
  );
  act(() => root.render(<ConfigPanel />));
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

describe("ConfigPanel", () => {
  it("renders one control per schema field with stable data-field attributes", () => {
    expect($("select[data-field='method']")).not.toBeNull();
    expect($("input[data-field='url']")).not.toBeNull();
    expect($("[data-field='headers'] [data-action='add-row']")).not.toBeNull();
    expect($("textarea[data-field='body']")).not.toBeNull();
    expect(($("input[data-field='fail_on_status']") as HTMLInputElement).checked).toBe(true);
    expect($("input[data-field='timeout']")?.getAttribute("type")).toBe("number");
    expect(($("input[data-field='name']") as HTMLInputElement).value).toBe("fetch");
  });

  it("shows each field's errors under it, others at the top", () => {
    expect($("[data-field-error='url']")?.textContent).toContain("must start with http");
    expect($("[data-field-error='headers']")?.textContent).toContain("bad header");
    expect($("[data-field-error='edges']")?.textContent).toContain("loop boundary");
  });

  it("edits config: text, number, JSON, key/value rows", () => {
    type($("input[data-field='url']")!, "https://api.test/");
    expect(config("h").url).toBe("https://api.test/");
    type($("input[data-field='timeout']")!, "2.5");
    expect(config("h").timeout).toBe(2.5);
    type($("textarea[data-field='body']")!, '{"a": [1]}');
    expect(config("h").body).toEqual({ a: [1] });
    type($("textarea[data-field='body']")!, "<webhook.body>");
    expect(config("h").body).toBe("<webhook.body>");
    act(() => ($("[data-field='headers'] [data-action='add-row']") as HTMLButtonElement).click());
    type($("[data-field='headers'] [data-kv='key']")!, "Authorization");
    type($("[data-field='headers'] [data-kv='value']")!, "Bearer <env.KEY>");
    expect(config("h").headers).toEqual({ Authorization: "Bearer <env.KEY>" });
  });

  it("typing < lists exactly the block's scope; choosing inserts <ref> at the caret", () => {
    const url = $("input[data-field='url']")!;
    type(url, "https://api.test/<");
    const refs = Array.from(container.querySelectorAll("[data-testid='ref-picker'] [data-ref]")).map(
      (el) => (el as HTMLElement).dataset.ref,
    );
    expect(refs).toEqual(["webhook.body", "webhook.body.id", "env.KEY"]);
    expect($("[data-testid='ref-picker']")?.textContent).toContain("secret");
    type(url, "https://api.test/<webhook.body.i");
    const option = $("[data-testid='ref-picker'] [data-ref='webhook.body.id']")!;
    act(() => option.dispatchEvent(new MouseEvent("mousedown", { bubbles: true })));
    expect(config("h").url).toBe("https://api.test/<webhook.body.id>");
    expect($("[data-testid='ref-picker']")).toBeNull();
  });

  it("renames the block on blur and refuses bad names", () => {
    const name = $("input[data-field='name']")!;
    type(name, "9bad");
    act(() => name.dispatchEvent(new FocusEvent("focusout", { bubbles: true })));
    expect($("[data-field-error='name']")?.textContent).toMatch(/letters/);
    type(name, "fetch_lead");
    act(() => name.dispatchEvent(new FocusEvent("focusout", { bubbles: true })));
    expect(useGraphStore.getState().nodes.find((n) => n.id === "h")!.data.name).toBe("fetch_lead");
  });

  it("builds the agent's response format from field rows", () => {
    act(() => useGraphStore.getState().select("a"));
    act(() => ($("[data-field='response_format'] [data-action='add-row']") as HTMLButtonElement).click());
    type($("[data-schema='name']")!, "score");
    const select = $("select[data-schema='type']") as HTMLSelectElement;
    act(() => {
      select.value = "integer";
      select.dispatchEvent(new Event("change", { bubbles: true }));
    });
    type($("[data-schema='min']")!, "1");
    type($("[data-schema='max']")!, "10");
    expect(config("a").response_format).toEqual({
      type: "object",
      properties: { score: { type: "integer", minimum: 1, maximum: 10 } },
      required: ["score"],
      additionalProperties: false,
    });
  });
});
