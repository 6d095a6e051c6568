import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { useGraphStore } from "../store/graphStore";
import type { BlockPin, BlockTestPlan, CatalogueEntry } from "../types";
import { parseInputs, pinsForInputs } from "./BlockTest";
import { ConfigPanel } from "./ConfigPanel";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const CATALOGUE: CatalogueEntry[] = [
  {
    type: "agent",
    label: "Agent",
    description: "",
    icon: "sparkles",
    outputs: {},
    config_schema: { type: "object", properties: { user_prompt: { type: "string" } } },
    test_effect: "calls the model provider for real: one request, billed as usual",
  },
  { type: "loop", label: "Loop", description: "", icon: "repeat", outputs: {}, config_schema: { type: "object", properties: {} } },
];

const PLAN: BlockTestPlan = {
  block: { id: "ask", name: "ask", type: "agent" },
  testable: true,
  reason: "",
  effect: "calls the model provider for real: one request, billed as usual",
  run: "run-1",
  inputs: { lead: { name: "Ada" }, loop: { index: 2, item: { name: "Ada" } } },
  sources: {
    lead: { kind: "item", block: "each", from: "run" },
    loop: { kind: "iteration", block: "each", from: "run" },
  },
  notes: [],
  trigger_input: null,
  trigger_from: "missing",
};

let container: HTMLDivElement;
let root: Root;
let calls: { url: string; body: Record<string, unknown> }[];

function type(el: Element, value: string) {
  const setter = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value")!.set!;
  act(() => {
    setter.call(el, value);
    el.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

const $ = (sel: string) => container.querySelector(sel);
const pinOf = (id: string) => useGraphStore.getState().nodes.find((n) => n.id === id)!.data.extra.pin as BlockPin | undefined;

async function click(sel: string) {
  await act(async () => {
    ($(sel) as HTMLButtonElement).click();
  });
}

beforeEach(() => {
  calls = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit = {}) => {
    const body = JSON.parse(String(init.body ?? "{}")) as Record<string, unknown>;
    calls.push({ url, body });
    const answer = body.dry_run
      ? PLAN
      : {
          ...PLAN,
          status: "succeeded",
          output: { content: "hot lead", qualification_score: 9 },
          error: null,
          attempts: 1,
          duration: 0.25,
          retries: [],
          usage: [],
          config: { user_prompt: "Lead: Ada", headers: { Authorization: "Bearer [redacted]" } },
        };
    return new Response(JSON.stringify(answer), { status: 200, headers: { "Content-Type": "application/json" } });
  });
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
  const store = useGraphStore.getState();
  store.setCatalogue(CATALOGUE);
  store.load({
    blocks: [
      { id: "each", type: "loop", name: "each", parent: null, position: { x: 0, y: 0 }, config: {} },
      { id: "ask", type: "agent", name: "ask", parent: "each", position: { x: 10, y: 10 }, config: { user_prompt: "Lead: <lead.name>" } },
    ],
    edges: [],
  });
  store.select("ask");
  act(() => root.render(<ConfigPanel workflowId={7} />));
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
  vi.unstubAllGlobals();
});

describe("Test this block", () => {
  it("prefills the inputs from the server's plan for the editor's graph", async () => {
    await click("[data-action='open-block-test']");
    expect(calls[0].url).toBe("/api/workflows/7/blocks/ask/test/");
    expect(calls[0].body.dry_run).toBe(true);
    expect((calls[0].body.graph as { blocks: unknown[] }).blocks).toHaveLength(2);
    expect(JSON.parse(($("[data-testid='test-inputs']") as HTMLTextAreaElement).value)).toEqual(PLAN.inputs);
    const sources = [...container.querySelectorAll("[data-testid='test-source']")].map((li) => li.textContent);
    expect(sources).toEqual(["lead last run", "loop last run"]);
    expect($("[data-testid='test-effect']")?.textContent).toContain("calls the model provider for real");
  });

  it("says why invalid JSON cannot run, and runs once it is fixed", async () => {
    await click("[data-action='open-block-test']");
    type($("[data-testid='test-inputs']")!, '{"lead": {');
    expect($("[data-testid='test-input-error']")?.textContent).toMatch(/^Inputs: not valid JSON/);
    expect(($("[data-action='run-block-test']") as HTMLButtonElement).disabled).toBe(true);
    type($("[data-testid='test-inputs']")!, "[1]");
    expect($("[data-testid='test-input-error']")?.textContent).toContain("must be a JSON object");
    type($("[data-testid='test-inputs']")!, '{"lead": {"name": "Grace"}}');
    expect($("[data-testid='test-input-error']")).toBeNull();
    await click("[data-action='run-block-test']");
    const sent = calls[calls.length - 1].body;
    expect(sent.dry_run).toBeUndefined();
    expect(sent.inputs).toEqual({ lead: { name: "Grace" } });
    expect($("[data-testid='test-status']")?.textContent).toContain("succeeded");
    expect(JSON.parse($("[data-testid='test-output']")!.textContent!)).toEqual({ content: "hot lead", qualification_score: 9 });
    expect($("[data-testid='test-config']")?.textContent).toContain("Bearer [redacted]");
  });

  it("pins the output for downstream blocks, shows it, and clears it (undoably)", async () => {
    await click("[data-action='open-block-test']");
    await click("[data-action='run-block-test']");
    await click("[data-action='pin-output']");
    expect(pinOf("ask")).toEqual({ output: { content: "hot lead", qualification_score: 9 }, run: null });
    expect(useGraphStore.getState().dirty).toBe(true);
    expect($("[data-testid='pin-json']")?.textContent).toContain("hot lead");
    const saved = useGraphStore.getState().serialize().blocks.find((b) => b.id === "ask") as { pin?: unknown };
    expect(saved.pin).toEqual(pinOf("ask"));
    await click("[data-action='clear-pin']");
    expect(pinOf("ask")).toBeUndefined();
    expect($("[data-testid='block-pin']")).toBeNull();
    act(() => useGraphStore.getState().undo());
    expect(pinOf("ask")?.output).toEqual({ content: "hot lead", qualification_score: 9 });
  });

  it("pins the inputs where they come from: the loop's item", async () => {
    await click("[data-action='open-block-test']");
    type($("[data-testid='test-inputs']")!, '{"lead": {"name": "Lin"}, "loop": {"index": 4, "item": {"name": "old"}}}');
    await click("[data-action='pin-inputs']");
    expect(pinOf("each")).toEqual({ item: { name: "Lin" }, index: 4, run: null });
    expect(pinOf("ask")).toBeUndefined();
  });
});

describe("pins and inputs", () => {
  it("parseInputs accepts an object, empty text, and names what is wrong otherwise", () => {
    expect(parseInputs("")).toEqual({ value: {} });
    expect(parseInputs('{"a": 1}')).toEqual({ value: { a: 1 } });
    expect(parseInputs("nope").error).toMatch(/^Inputs: not valid JSON/);
    expect(parseInputs("null", "Pin").error).toBe("Pin must be a JSON object: each name the block reads, with its value");
  });

  it("pinsForInputs keeps what a block's pin had and skips names that stand for nothing", () => {
    const pins = pinsForInputs(
      { a: { x: 1 }, ghost: 3 },
      { a: { kind: "output", block: "A" }, ghost: { kind: "unknown", block: null } },
      (id) => (id === "A" ? { item: "kept" } : undefined),
    );
    expect(pins).toEqual({ A: { item: "kept", output: { x: 1 }, run: null } });
  });
});
