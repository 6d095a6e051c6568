import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { CostSummary, RunSnapshotMessage, RunSummary, Workflow } from "../types";
import { useRunStore } from "../store/runStore";
import { RunPanel } from "./RunPanel";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s)).toISOString();
const EVIL = '<img src=x onerror="window.pwned=1">';

const workflow: Workflow = {
  id: 1, name: "Leads", description: "", template_slug: "lead-enrichment", version: 2,
  graph: { blocks: [], edges: [] }, webhook_url: "http://testserver/hooks/tok", created_at: at(0), updated_at: at(0),
};

function runSummary(over: Partial<RunSummary> = {}): RunSummary {
  return {
    id: "r1", workflow: 1, workflow_version: 2, status: "running", trigger: "api",
    progress: { total: 2, succeeded: 1, failed: 0, running: 1, cancelled: 0, not_started: 0 }, error: "", created_at: at(0),
    started_at: at(0), finished_at: null, duration: null, last_seq: 5, ...over,
  };
}

class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static instances: FakeSocket[] = [];
  readyState = 0;
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(public url: string) {
    FakeSocket.instances.push(this);
  }
  send(msg: unknown) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  close() {
    this.readyState = 3;
    this.onclose?.();
  }
}

type Route = (method: string, url: string, body: unknown) => { status: number; body: unknown } | undefined;

let routes: Route;
const calls: { method: string; url: string; body: unknown }[] = [];
let root: Root;
let container: HTMLDivElement;

beforeEach(() => {
  FakeSocket.instances = [];
  calls.length = 0;
  vi.stubGlobal("WebSocket", FakeSocket);
  vi.stubGlobal("fetch", async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? "GET";
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, url, body });
    const answer = routes(method, url, body) ?? defaults(method, url);
    return { ok: answer.status < 400, status: answer.status, text: async () => JSON.stringify(answer.body) };
  });
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
  useRunStore.getState().reset();
  vi.unstubAllGlobals();
});

function defaults(method: string, url: string): { status: number; body: unknown } {
  if (method === "GET" && url === "/api/templates/") {
    return { status: 200, body: [{ slug: "lead-enrichment", name: "Leads", description: "", sample: { leads: [{ name: "Ada" }] } }] };
  }
  if (method === "GET" && /^\/api\/workflows\/\d+\/runs\/last\/$/.test(url)) return { status: 200, body: { run: null } };
  if (method === "GET" && url.startsWith("/api/workflows/1/runs/")) return { status: 200, body: { count: 0, next: null, previous: null, results: [] } };
  if (method === "GET" && /^\/api\/runs\/\w+\/timeline\//.test(url)) return { status: 200, body: timelineOf(0) };
  if (method === "GET" && /^\/api\/runs\/\w+\/summary\/$/.test(url)) {
    return { status: 200, body: { id: "r1", status: "running", summary: costSummary({ speedup: null, sequential_seconds: 0 }) } };
  }
  if (method === "GET" && /^\/api\/runs\/\w+\/items\/\?(status|q|limit)/.test(url)) return { status: 200, body: { results: [], next: null, count: 0 } };
  return { status: 404, body: { error: `no route for ${method} ${url}` } };
}

function costSummary(over: Partial<CostSummary> = {}): CostSummary {
  return {
    wall_seconds: 5, sequential_seconds: 8, items_measured: 2, speedup: 1.6,
    tokens: { prompt: 1000, completion: 234, total: 1234 }, llm_calls: 4, cost_usd: 0.00029,
    unpriced_models: [], models: [{ model: "gpt-4o-mini", prompt_tokens: 1000, completion_tokens: 234, total_tokens: 1234,
      calls: 4, price: { input: 0.15, output: 0.6 }, cost_usd: 0.00029 }], ...over,
  };
}

function timelineOf(count: number) {
  // Two items of 4 s each (bars 3.9-4.2 s), both started in the first of 5 one-second buckets
  // and finished in the last: 8 s of item time in 5 s.
  const concurrency = Array.from({ length: 5 }, (_, i) => ({ t: i, in_flight: count, started: i === 0 ? count : 0, finished: i === 4 ? count : 0, failed: 0 }));
  const edges = [0, 3.9, 4.1];
  return { started_at: at(0), from: 0, to: 5, bucket_seconds: 1, concurrency,
    durations: { edges, counts: [0, count], p50: 4, p95: 4, max: 4.1, count } };
}

const runSockets = () => FakeSocket.instances.filter((s) => s.url.includes("/ws/runs/"));
const workflowSocket = () => FakeSocket.instances.find((s) => s.url.includes("/ws/workflows/"))!;

const $ = (testId: string) => container.querySelector<HTMLElement>(`[data-testid="${testId}"]`);
const $$ = (testId: string) => Array.from(container.querySelectorAll<HTMLElement>(`[data-testid="${testId}"]`));

async function flush() {
  for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
}

function type(el: HTMLElement, value: string) {
  const setter = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value")!.set!;
  act(() => {
    setter.call(el, value);
    el.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

function snapshot(over: Partial<RunSnapshotMessage> = {}): RunSnapshotMessage {
  return {
    type: "snapshot", seq: 5, final: false, run: runSummary(),
    items: [
      { key: "Loop[0]", loop_block: "loop", parent_key: "", index: 0, status: "succeeded", error: "", failed_block: "",
        started_at: at(0), finished_at: at(4), duration: 4, data: { name: EVIL } } as RunSnapshotMessage["items"][number],
      { key: "Loop[1]", loop_block: "loop", parent_key: "", index: 1, status: "running", error: "", failed_block: "",
        started_at: at(1), finished_at: null, duration: null, data: { email: "b@x.io" } } as RunSnapshotMessage["items"][number],
    ],
    steps: [{ item_key: "Loop[0]", block_id: "agent", name: "Agent", status: "succeeded", error: "", attempts: 2,
      started_at: at(0), finished_at: at(4), duration: 4 }],
    ...over,
  };
}

describe("RunPanel", () => {
  it("prefills the template sample, runs, follows progress and shows item details as text", async () => {
    const page = { results: [{ ...snapshot().items[0], tokens: 1500, cost_usd: 0.000412 }, snapshot().items[1]], next: null, count: 2 };
    let ended = false;
    routes = (method, url) => {
      if (url === "/api/runs/r1/summary/" && ended) {
        const cache = { hits: 3, misses: 1, calls_saved: 3, llm_calls_saved: 3, tokens_saved: 900, saved_usd: 0.0002 };
        return { status: 200, body: { id: "r1", status: "succeeded", summary: costSummary({ cache }) } };
      }
      if (method === "POST" && url === "/api/workflows/1/runs/") return { status: 201, body: runSummary({ status: "queued" }) };
      if (url.startsWith("/api/runs/r1/items/?key=")) {
        return { status: 200, body: { count: 1, next: null, results: [{
          ...snapshot().items[0], steps: [{ block_id: "agent", name: "Agent", status: "succeeded", error: "", attempts: 2,
            started_at: at(0), finished_at: at(4), duration: 4, output: { summary: EVIL } }] }] } };
      }
      if (url.startsWith("/api/runs/r1/items/?limit=200")) return { status: 200, body: page };
      if (url.startsWith("/api/runs/r1/timeline/")) return { status: 200, body: timelineOf(2) };
      return undefined;
    };
    const onBeforeRun = vi.fn(async () => workflow);
    act(() => root.render(<RunPanel workflow={workflow} onBeforeRun={onBeforeRun} />));
    await flush();
    expect(workflowSocket().url).toBe(`ws://${location.host}/ws/workflows/1/`);
    expect(container.textContent).toContain("No run yet"); // runs/last said null

    const input = $("run-input") as HTMLTextAreaElement;
    expect(JSON.parse(input.value)).toEqual({ leads: [{ name: "Ada" }] });

    type(input, "{bad");
    expect($("input-error")?.textContent).toMatch(/Invalid JSON/);
    expect(($("run-button") as HTMLButtonElement).disabled).toBe(true);
    type(input, '{"leads": []}');
    expect($("input-error")).toBeNull();

    await act(async () => $("run-button")!.click());
    await flush();
    expect(onBeforeRun).toHaveBeenCalledOnce();
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({ input: { leads: [] }, version: "draft", trigger: "editor" });
    expect(runSockets().at(-1)!.url).toBe(`ws://${location.host}/ws/runs/r1/`);
    expect($("run-status")?.textContent).toBe("queued");
    // The workflow socket announces the run this panel started: no notice, no second socket.
    act(() => workflowSocket().send({ type: "run.started", run: runSummary({ status: "queued" }) }));
    expect($("run-notice")).toBeNull();
    expect(runSockets()).toHaveLength(1);

    const waves = { total: 2, succeeded: 1, failed: 0, cancelled: 0, not_started: 0, running: 1, max_concurrent: 10, limit: 10, peak_running: 1, batch: 2, batches: 5 };
    act(() => runSockets()[0].send(snapshot({ loops: { loop: waves } })));
    await flush();
    expect($("run-status")?.textContent).toBe("running");
    expect($("progress")?.textContent).toBe("1/2");
    expect($("batch")?.textContent).toBe("batch 2/5"); // waves (the loop's batch_size)
    expect($("cancel-button")).not.toBeNull();
    expect(($("run-button") as HTMLButtonElement).disabled).toBe(true); // Cancel is the action now
    const rows = $$("item-row");
    expect(rows.map((r) => r.dataset.itemKey)).toEqual(["Loop[0]", "Loop[1]"]);
    expect(rows[0].textContent).toContain(EVIL);
    expect(rows[1].textContent).toContain('{"email":"b@x.io"}');
    // Each item's own LLM calls: tokens in the title, dollars in the cell.
    const costs = $$("item-cost");
    expect(costs.map((c) => c.textContent)).toEqual(["$0.0004", ""]);
    expect(costs[0].title).toBe("1,500 tokens");
    expect($("item-count")?.textContent).toBe("2 items");

    await act(async () => rows[0].click());
    await flush();
    // The detail opens in the side panel beside the table.
    expect(container.querySelector(".kr-items-area.kr-with-detail [data-testid=item-detail]")).not.toBeNull();
    expect($("item-detail")?.textContent).toContain(`"summary": ${JSON.stringify(EVIL)}`);
    expect(container.querySelector("img")).toBeNull();

    ended = true;
    act(() => runSockets()[0].send(snapshot({
      seq: 9, final: true,
      run: runSummary({ status: "succeeded", finished_at: at(5), duration: 5, progress: { total: 2, succeeded: 2, failed: 0, running: 0 } }),
      items: [snapshot().items[0], { ...snapshot().items[1], status: "succeeded", finished_at: at(5), duration: 4 }],
    })));
    await flush();
    expect($("progress")?.textContent).toBe("2/2");
    expect($("cancel-button")).toBeNull();
    expect(($("run-button") as HTMLButtonElement).disabled).toBe(false);
    // The server's cost line, read again at the end: 8 s of item time in 5 s of wall time.
    expect($("speedup")?.textContent).toBe("1.6× faster than sequential");
    expect($("cost-line")?.textContent).toBe(
      "wall 5.00 s" + "sequential 8.00 s" + "1.6× faster than sequential" + "1,234 tokens in 4 LLM calls" + "$0.0003" +
        "3 calls from cache, $0.0002 saved",
    );
    expect($("cost-usd")?.title).toBe("gpt-4o-mini: 1,000 in + 234 out, 4 calls at $0.15/$0.6 per 1M in/out = $0.0003");
  });

  it("shows the last run after a reload, running or ended (never 'No run yet')", async () => {
    const ended = runSummary({ status: "partially_succeeded", finished_at: at(6), duration: 6,
      progress: { total: 4, succeeded: 3, failed: 1, running: 0, cancelled: 0, not_started: 0 } });
    routes = (_method, url) => (url === "/api/workflows/1/runs/last/" ? { status: 200, body: { run: ended } } : undefined);
    act(() => root.render(<RunPanel workflow={workflow} onBeforeRun={async () => workflow} />));
    act(() => $("tab-input")!.click());
    await flush();
    expect(runSockets()).toHaveLength(1); // its final snapshot paints the canvas
    expect($("run-status")?.textContent).toBe("partially succeeded");
    expect(container.textContent).not.toContain("No run yet");
    expect($("tab-input")?.getAttribute("aria-selected")).toBe("true"); // an ended run does not take the tab
    // The workflow socket's hello names the same run: nothing reconnects.
    act(() => workflowSocket().send({ type: "hello", last_run: ended }));
    expect(runSockets()).toHaveLength(1);
  });

  it("follows a run started by the webhook, and only offers one while the user looks at another run", async () => {
    routes = () => undefined;
    act(() => root.render(<RunPanel workflow={workflow} onBeforeRun={async () => workflow} />));
    await flush();
    act(() => workflowSocket().send({ type: "hello", last_run: null }));
    const hooked = runSummary({ id: "w1", trigger: "webhook", status: "queued" });
    act(() => workflowSocket().send({ type: "run.started", run: hooked }));
    expect(runSockets().map((s) => s.url)).toEqual([`ws://${location.host}/ws/runs/w1/`]);
    expect($("run-notice")?.textContent).toContain("started by the webhook");
    expect($("run-notice")?.dataset.trigger).toBe("webhook");
    expect($("run-id")?.dataset.runId).toBe("w1");

    // While w1 runs, a CLI run is offered, not switched to.
    act(() => workflowSocket().send({ type: "run.started", run: runSummary({ id: "c1", trigger: "cli", status: "queued" }) }));
    expect(runSockets()).toHaveLength(1);
    expect($("run-notice")?.textContent).toContain("started by the CLI");
    act(() => $("run-notice-open")!.click());
    expect(runSockets().at(-1)!.url).toBe(`ws://${location.host}/ws/runs/c1/`);
    expect($("run-notice")).toBeNull();
    await flush();
  });

  it("asks before cancelling a run with items in flight; the counters say what never started", async () => {
    routes = (method, url) => {
      if (url === "/api/workflows/1/runs/last/") return { status: 200, body: { run: runSummary() } };
      if (method === "POST" && url === "/api/runs/r1/cancel/") {
        return { status: 200, body: runSummary({ status: "cancelled",
          progress: { total: 4, succeeded: 2, failed: 0, running: 0, cancelled: 1, not_started: 1 } }) };
      }
      if (url.startsWith("/api/runs/r1/items/?status=not_started")) {
        return { status: 200, body: { results: [{ ...snapshot().items[1], key: "Loop[3]", index: 3, status: "not_started",
          error: "the run was cancelled before this item started", started_at: null }], next: null, count: 1 } };
      }
      return undefined;
    };
    act(() => root.render(<RunPanel workflow={workflow} onBeforeRun={async () => workflow} />));
    await flush();
    expect($("tab-progress")?.getAttribute("aria-selected")).toBe("true"); // a running last run takes the tab
    act(() => runSockets()[0].send(snapshot()));
    await act(async () => $("cancel-button")!.click());
    expect($("cancel-confirm")?.textContent).toContain("1 item in flight");
    expect(calls.some((c) => c.method === "POST")).toBe(false);
    await act(async () => $("cancel-confirm-yes")!.click());
    await flush();
    expect(calls.filter((c) => c.method === "POST").map((c) => c.url)).toEqual(["/api/runs/r1/cancel/"]);
    // The answer's counts show with its status, before the final snapshot comes.
    expect($("progress-cancelled")?.textContent).toBe("1 cancelled");
    expect($("progress-not-started")?.textContent).toBe("1 not started");
    act(() => runSockets()[0].send(snapshot({
      seq: 9, final: true,
      run: runSummary({ status: "cancelled", finished_at: at(6), duration: 6,
        progress: { total: 4, succeeded: 2, failed: 0, running: 0, cancelled: 1, not_started: 1 } }),
    })));
    await flush();
    expect($("progress")?.textContent).toBe("2/4");
    expect($("progress-cancelled")?.textContent).toBe("1 cancelled");
    expect($("progress-not-started")?.textContent).toBe("1 not started");
    const filter = $("item-filter") as HTMLSelectElement;
    expect(Array.from(filter.options).map((o) => o.textContent)).toEqual([
      "all (4)", "running (0)", "succeeded (2)", "failed (0)", "cancelled (1)", "not started (1)",
    ]);
    act(() => {
      filter.value = "not_started";
      filter.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await flush();
    expect($$("item-row").map((r) => r.dataset.status)).toEqual(["not_started"]);
    expect($$("item-row")[0].textContent).toContain("not started");
    expect($("item-count")?.textContent).toBe("1 item");
  });

  it("lists validation errors when the run is refused", async () => {
    routes = (method, url) =>
      method === "POST" && url === "/api/workflows/1/runs/"
        ? { status: 400, body: { error: "the workflow is not valid", errors: [{ block: "Agent", field: "model", message: "is required" }] } }
        : undefined;
    act(() => root.render(<RunPanel workflow={workflow} onBeforeRun={async () => workflow} />));
    await flush();
    await act(async () => $("run-button")!.click());
    await flush();
    expect($("run-errors")?.textContent).toBe("Agent · model: is required");
    expect($("start-error")?.textContent).toBe("the workflow is not valid");
    expect(runSockets()).toHaveLength(0);
  });

  it("shows a refusal's details (bounded) and labels the header's run as the previous one", async () => {
    const details = Array.from({ length: 13 }, (_, i) => `images.${i}.url: 'ftp://x/y.png' does not match '^(https?://|data:image/)'`);
    routes = (method, url) => {
      if (method === "GET" && url === "/api/workflows/1/runs/last/") {
        return { status: 200, body: { run: runSummary({ id: "638de366aa", status: "succeeded", finished_at: at(5) }) } };
      }
      if (method === "POST" && url === "/api/workflows/1/runs/") {
        return { status: 422, body: { error: "the body does not match the webhook's schema", details } };
      }
      return undefined;
    };
    act(() => root.render(<RunPanel workflow={workflow} onBeforeRun={async () => workflow} />));
    await flush();
    expect($("run-status")?.dataset.status).toBe("succeeded");
    expect($("run-previous")).toBeNull();
    await act(async () => $("run-button")!.click());
    await flush();
    expect($("start-error")?.textContent).toBe("the body does not match the webhook's schema");
    const lines = Array.from($("start-error-details")!.querySelectorAll("li")).map((li) => li.textContent);
    expect(lines).toHaveLength(11);
    expect(lines[1]).toBe(details[1]);
    expect(lines[10]).toBe("… 3 more");
    expect($("run-previous")?.textContent).toBe("previous run:");
    expect($("run-id")?.dataset.runId).toBe("638de366aa");
  });

  it("disables 'defer to off-peak' with a hint when the server has no off-peak window", async () => {
    routes = (method, url) =>
      method === "POST" && url === "/api/workflows/1/runs/"
        ? { status: 400, body: { error: "no off-peak window is configured (KLYNTOS_OFF_PEAK_HOURS): nothing to defer to" } }
        : undefined;
    act(() => root.render(<RunPanel workflow={{ ...workflow, id: 7 }} onBeforeRun={async () => ({ ...workflow, id: 7 })} />));
    await flush();
    const box = () => $("run-off-peak") as HTMLInputElement;
    expect(box().disabled).toBe(false);
    expect($("run-off-peak-hint")).toBeNull();
    act(() => box().click());
    expect(box().checked).toBe(true);
    routes = (method, url) =>
      method === "POST" && url === "/api/workflows/7/runs/"
        ? { status: 400, body: { error: "no off-peak window is configured (KLYNTOS_OFF_PEAK_HOURS): nothing to defer to" } }
        : undefined;
    await act(async () => $("run-button")!.click());
    await flush();
    expect(calls.filter((c) => c.method === "POST")[0].body).toMatchObject({ defer: "off_peak" });
    // The server said there is no window: the option is off, disabled, and says why.
    expect(box().disabled).toBe(true);
    expect(box().checked).toBe(false);
    expect($("run-off-peak-hint")?.textContent).toContain("No off-peak window is configured");
    await act(async () => $("run-button")!.click());
    await flush();
    expect(calls.filter((c) => c.method === "POST")[1].body).not.toHaveProperty("defer");
  });

  it("disables 'defer to off-peak' at once when the workflow says there is no window", async () => {
    routes = () => undefined;
    act(() => root.render(<RunPanel workflow={{ ...workflow, id: 8, off_peak_hours: null }} onBeforeRun={async () => workflow} />));
    await flush();
    expect(($("run-off-peak") as HTMLInputElement).disabled).toBe(true);
    expect($("run-off-peak-hint")).not.toBeNull();
  });

  it("does not run when saving first fails", async () => {
    routes = () => undefined;
    act(() => root.render(<RunPanel workflow={workflow} onBeforeRun={async () => null} />));
    await flush();
    await act(async () => $("run-button")!.click());
    await flush();
    expect(calls.some((c) => c.method === "POST")).toBe(false);
  });

  it("opens a past run from the history (kept while new runs start) and falls back to REST when the websocket closes early", async () => {
    const done = runSummary({ status: "succeeded", finished_at: at(5), duration: 5, progress: { total: 2, succeeded: 2, failed: 0, running: 0 } });
    const items = snapshot().items.map((i) => ({ ...i, status: "succeeded", finished_at: at(5), duration: 4 }));
    routes = (_method, url) => {
      if (url === "/api/workflows/1/runs/last/") return { status: 200, body: { run: null } };
      if (url.startsWith("/api/workflows/1/runs/")) return { status: 200, body: { count: 1, next: null, previous: null, results: [done] } };
      if (url === "/api/runs/r1/") return { status: 200, body: { ...done, outputs: {} } };
      if (url.startsWith("/api/runs/r1/items/?limit=")) return { status: 200, body: { count: 2, next: null, results: items } };
      return undefined;
    };
    act(() => root.render(<RunPanel workflow={workflow} onBeforeRun={async () => workflow} />));
    await flush();
    act(() => $("tab-history")!.click());
    await flush();
    expect($$("history-row").map((r) => r.dataset.runId)).toEqual(["r1"]);
    act(() => $("history-open")!.click());
    expect(runSockets()).toHaveLength(1);
    act(() => runSockets()[0].close());
    await flush();
    expect($("run-status")?.textContent).toBe("succeeded");
    expect($("progress")?.textContent).toBe("2/2");
    expect($$("item-row")).toHaveLength(2);
    // A webhook run starts meanwhile: the run opened from the History stays, the new one is offered.
    act(() => workflowSocket().send({ type: "run.started", run: runSummary({ id: "w9", trigger: "webhook", status: "queued" }) }));
    expect(runSockets()).toHaveLength(1);
    expect($("run-notice-open")).not.toBeNull();
    // The History lists it as soon as it is announced.
    act(() => $("tab-history")!.click());
    await flush();
    expect(calls.filter((c) => c.url.startsWith("/api/workflows/1/runs/?page=1")).length).toBeGreaterThanOrEqual(2);
  });

  it("webhook tab: body as a file, signed curl, secret state, confirmation before rotating", async () => {
    routes = (method, url) =>
      method === "POST" && url === "/api/workflows/7/webhook/secret/" ? { status: 201, body: { signing_secret: "s3cr3t" } } : undefined;
    const confirm = vi.fn(() => false);
    vi.stubGlobal("confirm", confirm);
    const wf = { ...workflow, id: 7 };
    act(() => root.render(<RunPanel workflow={wf} onBeforeRun={async () => wf} />));
    await flush();
    act(() => $("tab-webhook")!.click());
    expect($("signing-state")?.textContent).toBe("unknown");
    const curl = $("curl-command")!.textContent!;
    expect(curl).toContain("--data-binary @body.json");
    expect(curl).toContain(': "${KLYNTOS_SIGNING_SECRET:?');
    expect(curl).toContain('X-Klyntos-Signature: t=$T,v1=$SIG');
    expect(curl.length).toBeLessThan(600); // the body is not inlined
    expect($("download-body")).not.toBeNull();

    await act(async () => $("rotate-secret")!.click());
    expect(confirm).toHaveBeenCalledOnce();
    expect(calls.some((c) => c.method === "POST")).toBe(false); // declined: nothing rotated

    confirm.mockReturnValue(true);
    await act(async () => $("rotate-secret")!.click());
    await flush();
    expect(confirm).toHaveBeenCalledTimes(2);
    expect($("signing-secret")?.textContent).toBe("s3cr3t");
    expect($("signing-state")?.textContent).toBe("set");
    expect($("curl-command")!.textContent).toContain("KLYNTOS_SIGNING_SECRET='s3cr3t'");
    // The new secret comes first in the tab, above the command.
    const panel = container.querySelector(".kr-webhook")!;
    const order = Array.from(panel.querySelectorAll("[data-testid]")).map((el) => el.getAttribute("data-testid"));
    expect(order.indexOf("signing-secret")).toBeLessThan(order.indexOf("curl-command"));
  });
});

// Last: the panel keeps what was typed per workflow (module state) for the tests after it.
describe("RunPanel advanced options", () => {
  it("starts a run with the advanced options set, and not while one is out of bounds", async () => {
    routes = (method, url) =>
      method === "POST" && url === "/api/workflows/1/runs/" ? { status: 201, body: runSummary({ status: "deferred" }) } : undefined;
    const onBeforeRun = vi.fn(async () => workflow);
    act(() => root.render(<RunPanel workflow={workflow} onBeforeRun={onBeforeRun} />));
    await flush();
    const field = (testId: string, value: string) => {
      const input = $(testId) as HTMLInputElement;
      const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!.set!;
      act(() => {
        setter.call(input, value);
        input.dispatchEvent(new Event("input", { bubbles: true }));
      });
    };
    act(() => $("tab-input")!.click());
    type($("run-input")!, '{"leads": [{"name": "Ada"}]}');
    field("run-priority", "-101");
    expect($("run-priority-error")?.textContent).toBe("Priority: from -100 to 100");
    expect(($("run-button") as HTMLButtonElement).disabled).toBe(true);
    field("run-priority", "-5");
    field("run-weight", "2.5");
    act(() => ($("run-off-peak") as HTMLInputElement).click());
    expect(($("run-button") as HTMLButtonElement).disabled).toBe(false);
    await act(async () => $("run-button")!.click());
    await flush();
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({
      input: { leads: [{ name: "Ada" }] }, version: "draft", trigger: "editor", weight: 2.5, priority: -5, defer: "off_peak",
    });
    expect($("run-status")?.dataset.status).toBe("deferred");
  });
});
