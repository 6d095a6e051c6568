import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Workflow } from "../types";
import { WorkflowListPage } from "./WorkflowListPage";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

function wf(id: number, name: string, updated: string): Workflow {
  return {
    id, name, description: "", template_slug: "", version: 1, graph: { blocks: [], edges: [] },
    webhook_url: null, created_at: updated, updated_at: updated,
  };
}

let workflows: Workflow[];
const calls: { method: string; url: string; body: unknown }[] = [];
let root: Root;
let container: HTMLDivElement;

beforeEach(() => {
  calls.length = 0;
  workflows = [wf(1, "Old <b>one</b>", "2025-01-01T00:00:00Z"), wf(2, "New", "2025-02-01T00:00:00Z")];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? "GET";
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, url, body });
    let answer: unknown = null;
    let status = 200;
    if (url === "/api/workflows/" && method === "GET") answer = workflows;
    else if (url === "/api/templates/")
      answer = [
        {
          slug: "lead-enrichment", name: "Lead enrichment", description: "d", sample: {},
          preview: {
            width: 800, height: 300,
            blocks: [
              { id: "w", name: "webhook", type: "webhook", x: 0, y: 100, width: 180, height: 56 },
              { id: "l", name: "loop", type: "loop", x: 260, y: 0, width: 500, height: 300 },
              { id: "a", name: "<b>agent</b>", type: "agent", x: 300, y: 100, width: 180, height: 56 },
            ],
            edges: [{ source: "w", target: "l" }],
          },
        },
      ];
    else if (method === "PATCH") {
      workflows = workflows.map((w) => (url === `/api/workflows/${w.id}/` ? { ...w, name: (body as { name: string }).name } : w));
      answer = workflows[0];
    } else if (method === "DELETE") {
      workflows = workflows.filter((w) => url !== `/api/workflows/${w.id}/`);
      status = 204;
    } else status = 404;
    return { ok: status < 400, status, text: async () => (answer === null ? "" : JSON.stringify(answer)) };
  });
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

const $ = (sel: string, scope: ParentNode = container) => scope.querySelector<HTMLElement>(`[data-testid="${sel}"]`);
const rows = () => Array.from(container.querySelectorAll<HTMLElement>('[data-testid="workflow-row"]'));

async function flush() {
  for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
}

describe("WorkflowListPage", () => {
  it("lists workflows newest first with links, templates, rename and delete", async () => {
    act(() => root.render(<WorkflowListPage />));
    await flush();
    expect(rows().map((r) => r.dataset.workflowId)).toEqual(["2", "1"]);
    const old = rows()[1];
    expect($("workflow-link", old)?.getAttribute("href")).toBe("/workflows/1/");
    expect($("workflow-link", old)?.textContent).toBe("Old <b>one</b>");
    expect($("template-lead-enrichment")).not.toBeNull();
    const picture = $("template-picture-lead-enrichment")!;
    expect(Array.from(picture.querySelectorAll("[data-picture-block]")).map((g) => g.getAttribute("data-picture-block"))).toEqual([
      "loop", "webhook", "<b>agent</b>",
    ]);
    expect(picture.querySelectorAll("line")).toHaveLength(1);
    expect(picture.querySelector("b")).toBeNull(); // a name is text, never markup
    expect($("new-workflow")).not.toBeNull();

    act(() => $("rename-workflow", old)!.click());
    const input = $("rename-input", old) as HTMLInputElement;
    const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!.set!;
    act(() => {
      setter.call(input, "Renamed");
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
    await act(async () => $("rename-save", old)!.click());
    await flush();
    expect(calls.find((c) => c.method === "PATCH")).toEqual({ method: "PATCH", url: "/api/workflows/1/", body: { name: "Renamed" } });
    expect(rows()[1].textContent).toContain("Renamed");

    const confirm = vi.spyOn(window, "confirm").mockReturnValueOnce(false).mockReturnValueOnce(true);
    await act(async () => $("delete-workflow", rows()[1])!.click());
    expect(calls.some((c) => c.method === "DELETE")).toBe(false);
    await act(async () => $("delete-workflow", rows()[1])!.click());
    await flush();
    expect(confirm).toHaveBeenCalledTimes(2);
    expect(rows().map((r) => r.dataset.workflowId)).toEqual(["2"]);
  });
});
