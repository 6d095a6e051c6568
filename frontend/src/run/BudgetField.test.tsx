import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BudgetField, parseBudget, plainDollars } from "./BudgetField";
import type { Workflow } from "../types";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let root: Root;
let container: HTMLDivElement;

beforeEach(() => {
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
  vi.unstubAllGlobals();
});

const workflow = { id: 7, name: "w", budget_usd: null } as unknown as Workflow;

function type(text: string) {
  const input = container.querySelector<HTMLInputElement>('[data-testid="budget-input"]')!;
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!.set!;
  act(() => {
    setter.call(input, text);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

async function flush() {
  for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
}

describe("parseBudget", () => {
  it("reads dollars, nothing as no budget, and refuses what is not a budget", () => {
    expect(parseBudget("")).toEqual({ ok: true, value: null });
    expect(parseBudget(" $2.50 ")).toEqual({ ok: true, value: 2.5 });
    expect(parseBudget("0")).toEqual({ ok: true, value: 0 });
    expect(parseBudget("-1")).toEqual({ ok: false, error: "a budget cannot be negative" });
    expect(parseBudget("two")).toEqual({ ok: false, error: "a number of dollars, like 2.50" });
    expect(plainDollars(1e-6)).toBe("0.000001");
    expect(plainDollars(2.5)).toBe("2.5");
    expect(plainDollars(3)).toBe("3");
  });
});

describe("BudgetField", () => {
  it("sets the workflow's budget with one PATCH and says so", async () => {
    const calls: { url: string; init: RequestInit }[] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
      calls.push({ url, init });
      return new Response(JSON.stringify({ ...workflow, budget_usd: 2.5 }), { status: 200 });
    });
    act(() => root.render(<BudgetField workflow={workflow} />));
    const button = container.querySelector<HTMLButtonElement>('[data-testid="budget-save"]')!;
    expect(button.disabled).toBe(true); // nothing changed yet
    type("2.50");
    expect(button.disabled).toBe(false);
    act(() => button.click());
    await flush();
    expect(calls).toHaveLength(1);
    expect(calls[0].url).toBe("/api/workflows/7/");
    expect(calls[0].init.method).toBe("PATCH");
    expect(JSON.parse(String(calls[0].init.body))).toEqual({ budget_usd: 2.5 });
    expect(container.querySelector('[data-testid="budget-status"]')?.textContent).toBe("Budget set: $2.5 per run");
    expect(button.disabled).toBe(true);
  });

  it("shows the server's refusal and keeps the text", async () => {
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify({ error: "budget_usd: at most 1000000" }), { status: 400 }));
    act(() => root.render(<BudgetField workflow={workflow} />));
    type("5000000");
    act(() => container.querySelector<HTMLButtonElement>('[data-testid="budget-save"]')!.click());
    await flush();
    expect(container.querySelector('[data-testid="budget-status"]')?.textContent).toBe("Not set: budget_usd: at most 1000000");
    expect(container.querySelector<HTMLInputElement>('[data-testid="budget-input"]')!.value).toBe("5000000");
  });
});
