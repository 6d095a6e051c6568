import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { deleteConfirmation, nameProblem, SecretsPage } from "./SecretsPage";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

interface Stored {
  name: string;
  value: string;
}

let stored: Stored[];
const calls: { method: string; url: string; body: unknown }[] = [];
let root: Root;
let container: HTMLDivElement;

beforeEach(() => {
  calls.length = 0;
  stored = [{ name: "CLEARBIT_API_KEY", value: "cb-value-never-shown" }];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? "GET";
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, url, body });
    let answer: unknown = null;
    let status = 200;
    if (url === "/api/secrets/?referenced=1" && method === "GET") {
      // Like the server: names and who reads them, never values; then what is read but not set.
      const leads = [{ id: 7, name: "Leads", draft: true, live: true }];
      answer = stored.map((s) => ({ name: s.name, updated_at: "2026-01-01T00:00:00Z", workflows: leads }));
      for (const name of ["CLEARBIT_API_KEY", "LINKEDIN_API_KEY"]) {
        if (!stored.some((s) => s.name === name)) (answer as unknown[]).push({ name, workflows: leads, missing: true });
      }
    } else if (url === "/api/secrets/" && method === "POST") {
      const { name, value } = body as Stored;
      stored = [...stored.filter((s) => s.name !== name), { name, value }];
      answer = { name };
      status = 201;
    } else if (method === "DELETE") {
      // Like the server: a secret a live version reads goes only with ?force=true.
      if (url.endsWith("?force=true")) {
        stored = stored.filter((s) => url !== `/api/secrets/${s.name}/?force=true`);
        status = 204;
      } else {
        answer = { error: "read by the live version of 'Leads'" };
        status = 409;
      }
    } else status = 404;
    return { ok: status < 400, status, text: async () => (answer === null ? "" : JSON.stringify(answer)) };
  });
  vi.spyOn(window, "confirm").mockReturnValue(true);
  window.history.replaceState(null, "", "/secrets/?add=LINKEDIN_API_KEY");
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

const $ = <T extends Element>(selector: string) => container.querySelector<T>(selector);
const flush = () => act(async () => new Promise((r) => setTimeout(r, 0)));

function type(input: HTMLInputElement, value: string) {
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!.set!;
  act(() => {
    setter.call(input, value);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

describe("SecretsPage", () => {
  it("lists names and who reads them, adds the one asked for, and never shows a value", async () => {
    await act(async () => root.render(<SecretsPage />));
    await flush();
    expect($('[data-secret="CLEARBIT_API_KEY"]')?.textContent).toContain("Used by Leads");
    const name = $<HTMLInputElement>('[data-testid="secret-name"]')!;
    const value = $<HTMLInputElement>('[data-testid="secret-value"]')!;
    expect(name.value).toBe("LINKEDIN_API_KEY"); // from ?add=
    expect($('[data-secret="LINKEDIN_API_KEY"][data-missing="true"]')?.textContent).toContain("not set");
    expect(value.type).toBe("password");
    type(value, "li-typed-value");
    await act(async () => $<HTMLButtonElement>('[data-testid="secret-save"]')!.click());
    await flush();
    expect(calls.some((c) => c.method === "POST" && (c.body as Stored).name === "LINKEDIN_API_KEY")).toBe(true);
    expect($('[data-testid="secrets-note"]')?.textContent).toBe("Added LINKEDIN_API_KEY");
    expect(value.value).toBe("");
    expect($('[data-secret="LINKEDIN_API_KEY"]:not([data-missing])')).not.toBeNull();
    expect($('[data-missing="true"]')).toBeNull();
    expect(container.innerHTML).not.toContain("li-typed-value");
    expect(container.innerHTML).not.toContain("cb-value-never-shown");

    await act(async () => $<HTMLButtonElement>('[data-secret="CLEARBIT_API_KEY"] [data-testid="delete-secret"]')!.click());
    await flush();
    expect(window.confirm).toHaveBeenCalledWith(
      "Delete the secret CLEARBIT_API_KEY? The live version of 'Leads' reads it: its webhook, schedules and API runs will be refused until the secret is set again or a version without it is published.",
    );
    // Deleted, it is still read by Leads: listed as not set, with an Add button.
    expect($('[data-secret="CLEARBIT_API_KEY"]')?.getAttribute("data-missing")).toBe("true");
    await act(async () => $<HTMLButtonElement>('[data-testid="add-missing"]')!.click());
    expect(name.value).toBe("CLEARBIT_API_KEY");
    expect($('[data-testid="secret-save"]')?.textContent).toBe("Add");
  });

  it("refuses a bad name before asking the server", async () => {
    await act(async () => root.render(<SecretsPage />));
    await flush();
    type($<HTMLInputElement>('[data-testid="secret-name"]')!, "1 bad");
    type($<HTMLInputElement>('[data-testid="secret-value"]')!, "v");
    await act(async () => $<HTMLButtonElement>('[data-testid="secret-save"]')!.click());
    expect($('[data-testid="secrets-error"]')?.textContent).toMatch(/letters, digits and _/);
    expect(calls.filter((c) => c.method === "POST")).toHaveLength(0);
    expect(nameProblem("")).toBe("a name is required");
    expect(nameProblem("A".repeat(101))).toMatch(/at most 100/);
  });

  it("asks before the add form replaces a secret of the same name", async () => {
    await act(async () => root.render(<SecretsPage />));
    await flush();
    const ask = vi.spyOn(window, "confirm").mockReturnValue(false);
    type($<HTMLInputElement>('[data-testid="secret-name"]')!, "CLEARBIT_API_KEY");
    type($<HTMLInputElement>('[data-testid="secret-value"]')!, "new-value");
    await act(async () => $<HTMLButtonElement>('[data-testid="secret-save"]')!.click());
    expect(ask).toHaveBeenCalledWith(
      "A secret CLEARBIT_API_KEY exists: replace its value? Workflows reading it will use the new value.",
    );
    expect(calls.filter((c) => c.method === "POST")).toHaveLength(0);
    expect(stored.find((s) => s.name === "CLEARBIT_API_KEY")?.value).toBe("cb-value-never-shown");
    ask.mockReturnValue(true);
    await act(async () => $<HTMLButtonElement>('[data-testid="secret-save"]')!.click());
    await flush();
    expect(stored.find((s) => s.name === "CLEARBIT_API_KEY")?.value).toBe("new-value");
    expect($('[data-testid="secrets-note"]')?.textContent).toBe("Replaced CLEARBIT_API_KEY");
  });

  it("says what deleting stops: the live versions' runs, the drafts' validation", () => {
    const workflows = [
      { id: 1, name: "A", draft: true, live: true },
      { id: 2, name: "B", draft: true, live: false },
      { id: 3, name: "C", draft: false, live: true },
    ];
    expect(deleteConfirmation({ name: "K", workflows })).toBe(
      "Delete the secret K? The live versions of 'A', 'C' read it: their webhooks, schedules and API runs will be refused until the secret is set again or versions without it are published. The draft of 'B' reads it and will fail validation.",
    );
    expect(deleteConfirmation({ name: "K", workflows: [] })).toBe("Delete the secret K?");
  });
});
