import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RunSummary, Workflow } from "../types";
import { useRunStore } from "../store/runStore";
import { byteSize, sizeOver, utf8Bytes } from "./bodySize";
import { cliCommand, requestTooLargeNote, signedInUsername } from "./InputTab";
import { RunPanel } from "./RunPanel";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

describe("body sizes", () => {
  it("counts UTF-8 bytes and says them in bytes, kB or MB", () => {
    expect(utf8Bytes('{"name":"Zoë 🚀"}')).toBe(20); // ë: 2 bytes, 🚀: 4
    expect(byteSize(812)).toBe("812 bytes");
    expect(byteSize(3_500)).toBe("3.4 kB");
    expect(byteSize(18_400_000)).toBe("17.5 MB");
    expect(byteSize(10_485_760)).toBe("10.0 MB");
    expect(sizeOver(10_485_800, 10_485_760)).toBe("10485800 bytes");
    expect(sizeOver(18_400_000, 10_485_760)).toBe("17.5 MB");
  });
});

describe("the Input tab's request-limit note", () => {
  it("names the size, the limit, the setting and the command line", () => {
    expect(requestTooLargeNote(18_400_000, 10_485_760)).toBe(
      "The request for this input is 17.5 MB, over the server's limit of 10.0 MB " +
        "(10485760 bytes, KLYNTOS_REQUEST_MAX_BYTES): the server would refuse it with 413, so Run is disabled. " +
        "Raise that setting and restart the server, split the input, or save it as input.json and run it from " +
        "the command line, which reads the file directly, with no request limit (YOUR_USERNAME: the name you sign in with):",
    );
  });

  it("says nothing when the request fits or the limit is not known", () => {
    expect(requestTooLargeNote(10_485_760, 10_485_760)).toBe("");
    expect(requestTooLargeNote(99_000_000, undefined)).toBe("");
  });

  it("gives the command that runs the draft with the same options", () => {
    expect(cliCommand(42)).toBe("python manage.py run_workflow 42 --input input.json --draft --user YOUR_USERNAME");
    expect(cliCommand(42, { weight: 2.5, priority: -5, defer: "off_peak" })).toBe(
      "python manage.py run_workflow 42 --input input.json --draft --weight 2.5 --priority -5 --defer off_peak --user YOUR_USERNAME",
    );
  });
});

describe("the command line as the signed-in user", () => {
  afterEach(() => document.querySelectorAll(".kl-bar, #root").forEach((el) => el.remove()));

  it("fills in the name the page shows in its bar (quoted for the shell when it must be)", () => {
    expect(signedInUsername()).toBe("");
    const bar = document.createElement("header");
    bar.className = "kl-bar";
    bar.innerHTML = '<a class="kl-brand" href="/">Klyntos</a><a href="/secrets/">Secrets</a><span> ada </span><form><button>Log out</button></form>';
    document.body.appendChild(bar);
    expect(signedInUsername()).toBe("ada");
    expect(cliCommand(42, {}, "ada")).toBe("python manage.py run_workflow 42 --input input.json --draft --user ada");
    expect(cliCommand(42, {}, "o'hara x")).toBe("python manage.py run_workflow 42 --input input.json --draft --user 'o'\\''hara x'");
    const note = requestTooLargeNote(11, 10, "ada");
    expect(note).not.toContain("YOUR_USERNAME");
    expect(note.endsWith("with no request limit:")).toBe(true);
    const root = document.createElement("div");
    root.id = "root";
    root.dataset.username = "grace";
    document.body.appendChild(root);
    expect(signedInUsername()).toBe("grace");
  });
});

// --- the panel ---------------------------------------------------------------------------

const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s)).toISOString();

class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  readyState = 0;
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(public url: string) {}
  send() {}
  close() {
    this.readyState = 3;
    this.onclose?.();
  }
}

function runSummary(): RunSummary {
  return {
    id: "r1", workflow: 7, workflow_version: 1, status: "queued", trigger: "editor",
    progress: { total: 0, succeeded: 0, failed: 0, running: 0, cancelled: 0, not_started: 0 }, error: "", created_at: at(0),
    started_at: null, finished_at: null, duration: null, last_seq: 0,
  };
}

// The body sent for `input` with no options: what the limit is measured against.
const sent = (input: unknown) => utf8Bytes(JSON.stringify({ input, version: "draft", trigger: "editor" }));
const INPUT = { leads: [{ name: "Zoë" }, { name: "Ada" }] };
const LIMIT = sent(INPUT); // exactly this input's request: it fits, one byte more does not

let nextId = 7;
let root: Root;
let container: HTMLDivElement;
let runAnswer: { status: number; body: unknown };
const posts: { url: string; raw: string }[] = [];

function workflowOf(limit: number | undefined): Workflow {
  // A new id per test: the panel keeps what was typed per workflow (module state).
  return {
    id: nextId++, name: "Leads", description: "", template_slug: "", version: 1,
    graph: { blocks: [], edges: [] }, webhook_url: null, created_at: at(0), updated_at: at(0),
    ...(limit !== undefined ? { request_max_bytes: limit } : {}),
  };
}

beforeEach(() => {
  posts.length = 0;
  runAnswer = { status: 201, body: runSummary() };
  vi.stubGlobal("WebSocket", FakeSocket);
  vi.stubGlobal("fetch", async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? "GET";
    let answer: { status: number; body: unknown } = { status: 404, body: { error: "no route" } };
    if (method === "POST" && url.endsWith("/runs/")) {
      posts.push({ url, raw: String(init.body) });
      answer = runAnswer;
    } else if (url.endsWith("/runs/last/")) answer = { status: 200, body: { run: null } };
    else if (url.startsWith("/api/workflows/")) answer = { status: 200, body: { count: 0, next: null, previous: null, results: [] } };
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

const $ = (testId: string) => container.querySelector<HTMLElement>(`[data-testid="${testId}"]`);
const runButton = () => $("run-button") as HTMLButtonElement;

async function flush() {
  for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
}

function type(value: string) {
  const el = $("run-input")!;
  const setter = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value")!.set!;
  act(() => {
    setter.call(el, value);
    el.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

async function render(workflow: Workflow) {
  act(() => root.render(<RunPanel workflow={workflow} onBeforeRun={async () => workflow} />));
  await flush();
}

describe("RunPanel: an input over the server's request limit", () => {
  it("warns as it is typed and disables Run; the request as sent is what is weighed", async () => {
    const workflow = workflowOf(LIMIT);
    await render(workflow);
    const over = { leads: [...INPUT.leads.slice(0, 1), { name: "Adaa" }] }; // one byte more
    type(JSON.stringify(over, null, 2)); // the text's own spaces are not sent
    const note = $("input-too-large");
    expect(note?.getAttribute("role")).toBe("alert");
    expect(note?.textContent).toBe(
      `The request for this input is ${LIMIT + 1} bytes, over the server's limit of ${LIMIT} bytes ` +
        `(${LIMIT} bytes, KLYNTOS_REQUEST_MAX_BYTES): the server would refuse it with 413, so Run is disabled. ` +
        "Raise that setting and restart the server, split the input, or save it as input.json and run it from " +
        "the command line, which reads the file directly, with no request limit (YOUR_USERNAME: the name you sign in with): " +
        `python manage.py run_workflow ${workflow.id} --input input.json --draft --user YOUR_USERNAME`,
    );
    expect($("input-cli-command")?.textContent).toBe(
      `python manage.py run_workflow ${workflow.id} --input input.json --draft --user YOUR_USERNAME`,
    );
    expect(runButton().disabled).toBe(true);
    expect(runButton().title).toBe(
      "The input is over the server's request limit (KLYNTOS_REQUEST_MAX_BYTES): see the Input tab",
    );
    await act(async () => runButton().click());
    expect(posts).toHaveLength(0);

    // Exactly the limit fits: the note goes, Run sends, and it sends what was weighed.
    type(JSON.stringify(INPUT, null, 2));
    expect($("input-too-large")).toBeNull();
    expect(runButton().disabled).toBe(false);
    await act(async () => runButton().click());
    await flush();
    expect(posts).toHaveLength(1);
    expect(utf8Bytes(posts[0].raw)).toBe(LIMIT);
  });

  it("counts the advanced options, which travel in the same request", async () => {
    await render(workflowOf(LIMIT));
    type(JSON.stringify(INPUT));
    expect($("input-too-large")).toBeNull();
    const weight = $("run-weight") as HTMLInputElement;
    const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!.set!;
    act(() => {
      setter.call(weight, "2");
      weight.dispatchEvent(new Event("input", { bubbles: true }));
    });
    expect($("input-too-large")?.textContent).toContain("--weight 2 --user YOUR_USERNAME");
    expect(runButton().disabled).toBe(true);
  });

  it("an 18 MB upload against the 10 MB default: MB sizes, the setting and the command", async () => {
    await render(workflowOf(10 * 1024 * 1024));
    const leads = Array.from({ length: 100_000 }, (_, i) => ({ name: `Lead ${i}`, email: `lead${i}@example.com`, company: "x".repeat(120) }));
    type(JSON.stringify({ leads }));
    const text = $("input-too-large")?.textContent ?? "";
    expect(text).toMatch(/^The request for this input is 1\d\.\d MB, over the server's limit of 10\.0 MB \(10485760 bytes, KLYNTOS_REQUEST_MAX_BYTES\)/);
    expect(text).toContain("python manage.py run_workflow");
    expect(runButton().disabled).toBe(true);
  });

  it("says nothing without a known limit, and a 413 then says how to run the input anyway", async () => {
    const workflow = workflowOf(undefined);
    await render(workflow);
    type(JSON.stringify(INPUT));
    expect($("input-too-large")).toBeNull();
    expect(runButton().disabled).toBe(false);
    runAnswer = { status: 413, body: { error: "request body is larger than 10 bytes (KLYNTOS_REQUEST_MAX_BYTES)" } };
    await act(async () => runButton().click());
    await flush();
    expect($("start-error")?.textContent).toBe(
      "request body is larger than 10 bytes (KLYNTOS_REQUEST_MAX_BYTES). Raise that setting, or run this input " +
        `from the command line: python manage.py run_workflow ${workflow.id} --input input.json --draft --user YOUR_USERNAME`,
    );
  });

  it("invalid JSON is the error shown, not the size", async () => {
    await render(workflowOf(5));
    type("{bad");
    expect($("input-error")).not.toBeNull();
    expect($("input-too-large")).toBeNull();
    expect(runButton().title).toBe("Fix the input JSON first");
  });
});
