import { act } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mountEach } from "../testing/mount";
import type { Workflow } from "../types";
import { publishErrorLines, VersionsPanel } from "./VersionsPanel";

const mount = mountEach();

const workflow = {
  id: 7, name: "Leads", description: "", template_slug: "", version: 4, published_version: 3,
  graph: { blocks: [], edges: [] }, webhook_url: "", created_at: "", updated_at: "",
} as unknown as Workflow;

const errors = Array.from({ length: 13 }, (_, i) => ({
  block_id: `b${i}`, block: `transform_${i}`, field: "expression", message: `invalid JMESPath: syntax error ${i}`,
}));

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

const VERSIONS = [
  { number: 4, message: "", created_at: "", created_by: null, published_at: null, live: false, draft: true },
  { number: 3, message: "", created_at: "", created_by: null, published_at: null, live: true, draft: false },
  { number: 2, message: "", created_at: "", created_by: null, published_at: null, live: false, draft: false },
];

describe("publishing a version from the list", () => {
  it("asks first, naming the version and that the webhook runs it from then on", async () => {
    const posts: string[] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit = {}) => {
      if ((init.method ?? "GET") === "POST") posts.push(String(url));
      return { ok: true, status: 200, text: async () => JSON.stringify({ count: 3, next: null, previous: null, results: VERSIONS }) };
    });
    const ask = vi.spyOn(window, "confirm").mockReturnValue(false);
    mount.render(<VersionsPanel workflow={workflow} dirty={false} onChanged={() => undefined} onClose={() => undefined} />);
    for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
    const button = mount.container.querySelector('[data-version="2"] [data-action="publish-version"]') as HTMLButtonElement;
    await act(async () => button.click());
    expect(ask).toHaveBeenCalledWith("Publish v2? The webhook and the API will run v2 from then on (instead of v3).");
    expect(posts).toEqual([]);
    ask.mockReturnValue(true);
    await act(async () => button.click());
    for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
    expect(posts).toHaveLength(1);
    expect(posts[0]).toMatch(/\/publish\/$/);
  });
});

describe("publishing an invalid version", () => {
  it("lists every problem with its block and field, bounded", async () => {
    vi.stubGlobal("fetch", async (url: string, init: RequestInit = {}) => {
      if ((init.method ?? "GET") === "POST" && String(url).endsWith("/publish/")) {
        return { ok: false, status: 400, text: async () => JSON.stringify({ error: "the workflow is not valid", errors }) };
      }
      const results = [
        { number: 4, message: "", created_at: "", created_by: null, published_at: null, live: false, draft: true },
        { number: 3, message: "", created_at: "", created_by: null, published_at: null, live: true, draft: false },
      ];
      return { ok: true, status: 200, text: async () => JSON.stringify({ count: 2, next: null, previous: null, results }) };
    });
    vi.spyOn(window, "confirm").mockReturnValue(true);
    mount.render(<VersionsPanel workflow={workflow} dirty={false} onChanged={() => undefined} onClose={() => undefined} />);
    for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
    const button = mount.container.querySelector('[data-version="4"] [data-action="publish-version"]') as HTMLButtonElement;
    await act(async () => button.click());
    for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
    const alert = mount.container.querySelector('[role="alert"]');
    expect(alert?.textContent).toContain("v4 was not published");
    const lines = [...mount.container.querySelectorAll('[data-testid="publish-problem"]')].map((li) => li.textContent);
    expect(lines).toHaveLength(11);
    expect(lines[0]).toBe("transform_0 · expression: invalid JMESPath: syntax error 0");
    expect(lines[9]).toBe("transform_9 · expression: invalid JMESPath: syntax error 9");
    expect(lines[10]).toBe("… 3 more");
  });

  it("words a single problem on one line, and one without a field or block", () => {
    expect(publishErrorLines({ errors: [errors[0]] })).toEqual(["transform_0 · expression: invalid JMESPath: syntax error 0"]);
    expect(publishErrorLines({ errors: [{ block_id: null, block: null, field: "", message: "the graph has a cycle" }] })).toEqual(["the graph has a cycle"]);
    expect(publishErrorLines({ error: "nope" })).toEqual([]);
    expect(publishErrorLines(null)).toEqual([]);
  });
});
