import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { useGraphStore } from "../store/graphStore";
import type { CatalogueEntry } from "../types";
import { ConfigPanel } from "./ConfigPanel";
import { findField, showBlockField, useFieldFocus } from "./fieldFocus";

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
    config_schema: {
      type: "object",
      properties: { user_prompt: { type: "string" }, response_format: { type: "object" }, metadata: { type: "object" } },
    },
  },
  {
    type: "loop",
    label: "Loop",
    description: "",
    icon: "repeat",
    outputs: {},
    config_schema: {
      type: "object",
      properties: {
        items: { type: ["string", "array"], title: "Items" },
        circuit_breaker: {
          type: "object",
          properties: {
            failure_rate: { type: "number", exclusiveMinimum: 0, maximum: 1, default: 0.2 },
            min_items: { type: "integer", minimum: 1, default: 10 },
            give_up_after: {
              type: "number",
              minimum: 0,
              maximum: 604800,
              default: 900,
              description: "Seconds a provider may stay unavailable (auto mode) before the items waiting for it fail; 0: wait forever",
            },
          },
          additionalProperties: false,
        },
      },
    },
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
      { id: "l", type: "loop", name: "each", parent: null, position: { x: 0, y: 300 }, config: {} },
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
    {
      h: [{ ref: "webhook.body", type: "object" }, { ref: "webhook.body.id", type: "string" }, { ref: "env.KEY", type: "secret" }],
      a: [{ ref: "webhook_1", type: "object" }, { ref: "webhook_1.body", type: "any" }, { ref: "env.KEY", type: "secret" }],
      l: [{ ref: "env.KEY", type: "secret" }, { ref: "webhook_1", type: "object" }, { ref: "webhook_1.body", type: "any" }, { ref: "fetch.rows", type: "array" }],
    },
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

  it("keeps JSON that does not parse: error under the field, dirty graph, listed for Save, kept across panels", () => {
    act(() => useGraphStore.getState().select("a"));
    const field = () => $("textarea[data-field='metadata']") as HTMLTextAreaElement;
    type(field(), '{"a": 1}');
    expect(config("a").metadata).toEqual({ a: 1 });
    act(() => useGraphStore.getState().markSaved(useGraphStore.getState().revision));
    expect(useGraphStore.getState().dirty).toBe(false);
    type(field(), '{"a": 1,');
    expect($("[data-json-error='metadata']")?.textContent).toMatch(/invalid JSON/);
    expect(useGraphStore.getState().dirty).toBe(true);
    expect(config("a").metadata).toEqual({ a: 1 });
    expect(useGraphStore.getState().invalidFields().map((d) => `${d.block} · ${d.field}`)).toEqual(["ask · metadata"]);
    // Another block and back: the text is still there.
    act(() => useGraphStore.getState().select("h"));
    act(() => useGraphStore.getState().select("a"));
    expect(field().value).toBe('{"a": 1,');
    type(field(), '{"a": 2}');
    expect(useGraphStore.getState().invalidFields()).toEqual([]);
    expect(config("a").metadata).toEqual({ a: 2 });
  });

  it("refuses duplicate field names and allowed values of the wrong type in the response format", () => {
    act(() => useGraphStore.getState().select("a"));
    const add = () => act(() => ($("[data-field='response_format'] [data-action='add-row']") as HTMLButtonElement).click());
    add();
    type(container.querySelectorAll("[data-schema='name']")[0], "score");
    add();
    type(container.querySelectorAll("[data-schema='name']")[1], "score");
    expect($("[data-schema-error='1']")?.textContent).toBe("duplicate field name 'score'");
    expect($("[data-schema-error='0']")).toBeNull();
    expect(config("a").response_format).toEqual({
      type: "object", properties: { score: { type: "string" } }, required: ["score"], additionalProperties: false,
    });
    expect(useGraphStore.getState().invalidFields()[0].message).toMatch(/duplicate field name 'score'/);
    type(container.querySelectorAll("[data-schema='name']")[1], "size");
    expect($("[data-schema-error='1']")).toBeNull();
    expect(Object.keys((config("a").response_format as { properties: object }).properties)).toEqual(["score", "size"]);

    const select = container.querySelectorAll("select[data-schema='type']")[0] as HTMLSelectElement;
    act(() => {
      select.value = "integer";
      select.dispatchEvent(new Event("change", { bubbles: true }));
    });
    type(container.querySelectorAll("[data-schema='enum']")[0], "1, two, 3.5");
    expect($("[data-schema-error='0']")?.textContent).toBe("allowed values must be integers: 'two', '3.5'");
    expect(useGraphStore.getState().invalidFields()).toHaveLength(1);
    type(container.querySelectorAll("[data-schema='enum']")[0], "1, 2");
    expect(useGraphStore.getState().invalidFields()).toEqual([]);
    expect((config("a").response_format as { properties: Record<string, unknown> }).properties.score).toEqual({ type: "integer", enum: [1, 2] });
  });

  it("edits an object setting with fixed properties as a group", () => {
    act(() => useGraphStore.getState().select("l"));
    const toggle = $("input[data-field='circuit_breaker']") as HTMLInputElement;
    expect(toggle.type).toBe("checkbox");
    expect(toggle.checked).toBe(false);
    expect($("textarea[data-field='circuit_breaker']")).toBeNull();
    act(() => toggle.click());
    expect(config("l").circuit_breaker).toEqual({ failure_rate: 0.2, min_items: 10, give_up_after: 900 });
    const rate = $("input[data-field='circuit_breaker.failure_rate']") as HTMLInputElement;
    expect(rate.type).toBe("number");
    expect(rate.placeholder).toBe("default 0.2");
    type(rate, "0.5");
    type($("input[data-field='circuit_breaker.min_items']")!, "");
    type($("input[data-field='circuit_breaker.give_up_after']")!, "");
    expect(config("l").circuit_breaker).toEqual({ failure_rate: 0.5 });
    act(() => ($("input[data-field='circuit_breaker']") as HTMLInputElement).click());
    expect("circuit_breaker" in config("l")).toBe(false);
    expect($("input[data-field='circuit_breaker.failure_rate']")).toBeNull();
  });

  it("offers the breaker's give_up_after with its hint, and keeps 0 (never give up)", () => {
    act(() => useGraphStore.getState().select("l"));
    act(() => ($("input[data-field='circuit_breaker']") as HTMLInputElement).click());
    const giveUp = $("input[data-field='circuit_breaker.give_up_after']") as HTMLInputElement;
    expect(giveUp.type).toBe("number");
    expect(giveUp.placeholder).toBe("default 900");
    expect([giveUp.min, giveUp.max]).toEqual(["0", "604800"]);
    const label = container.querySelector(`label[for='${giveUp.id}']`) as HTMLLabelElement;
    expect(label.textContent).toBe("Give up after");
    expect(label.title).toContain("0: wait forever");
    type(giveUp, "0");
    expect((config("l").circuit_breaker as Record<string, unknown>).give_up_after).toBe(0);
  });

  it("suggests an existing list for a loop's items and completes paths under an open reference", () => {
    act(() => useGraphStore.getState().select("l"));
    expect(($("textarea[data-field='items']") as HTMLTextAreaElement).placeholder).toBe("<fetch.rows>");
    act(() => useGraphStore.getState().select("a"));
    const prompt = $("[data-field='user_prompt']")!;
    type(prompt, "Hi <");
    type(prompt, "Hi <webhook_1.body.le");
    const typed = $("[data-testid='ref-picker'] [data-ref-typed='true']")!;
    expect(typed.textContent).toContain("use <webhook_1.body.le>");
    expect($("[data-testid='ref-picker']")?.textContent).not.toContain("No reference matches");
    act(() => typed.dispatchEvent(new MouseEvent("mousedown", { bubbles: true })));
    expect(config("a").user_prompt).toBe("Hi <webhook_1.body.le>");
  });
});

describe("a problem link", () => {
  it("selects the block and focuses the named field in its panel", () => {
    act(() => useGraphStore.getState().select("a"));
    expect($("[data-selected-block='a']")).not.toBeNull();
    act(() => showBlockField("h", "url"));
    expect($("[data-selected-block='h']")).not.toBeNull();
    expect(document.activeElement).toBe($("input[data-field='url']"));
    expect($("[data-field-wrap='url']")?.classList.contains("field-flash")).toBe(true);
    expect(useFieldFocus.getState().request).toBeNull();
  });

  it("focuses a field of the block already selected, and a nested path's field", () => {
    act(() => showBlockField("h", "method"));
    expect(document.activeElement).toBe($("select[data-field='method']"));
    act(() => showBlockField("h", "headers.X"));
    expect(($("[data-field-wrap='headers']") as HTMLElement).contains(document.activeElement)).toBe(true);
  });

  it("finds a block-wide problem among the general errors", () => {
    const found = findField(container, "edges");
    expect(found?.frame.textContent).toContain("crosses a loop boundary");
    expect(findField(container, "nothing_here")).toBeNull();
  });
});
