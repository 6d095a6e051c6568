// Thin fetch wrapper for the REST API: session cookie + CSRF token, JSON in and out.
import type {
  BlockTestPlan,
  BlockTestResult,
  CatalogueEntry,
  GraphJson,
  RunStartOptions,
  RunSummary,
  TemplateSummary,
  ValidationResponse,
  VersionDiff,
  VersionSummary,
  Workflow,
} from "../types";

export class ApiError extends Error {
  status: number;
  body: unknown;
  constructor(status: number, body: unknown) {
    const message =
      typeof body === "object" && body && "error" in body ? String((body as { error: unknown }).error) : `HTTP ${status}`;
    super(message);
    this.status = status;
    this.body = body;
  }
}

function csrfToken(): string {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const response = await fetch(path, {
    method,
    signal,
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      ...(method !== "GET" ? { "X-CSRFToken": csrfToken() } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  const data = text ? parsed(text) : null;
  if (data === NOT_JSON) {
    // An error page (a proxy's, or the server's own 500) is not the API's answer: say what
    // came back instead of a JSON parse error.
    const what = `the server answered ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`;
    throw new ApiError(response.status, { error: response.ok ? `${what} with a body that is not JSON` : what });
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data as T;
}

const NOT_JSON = Symbol("not JSON");

function parsed(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
}

export interface SecretSummary {
  name: string;
  updated_at?: string;
  /** The workflows whose draft (saved) or live (published) version reads it, and which. */
  workflows?: { id: number; name: string; draft?: boolean; live?: boolean }[];
  /** Read by a workflow but not set (listed with ?referenced=1). */
  missing?: boolean;
}

interface Page<T> {
  count: number;
  next: string | null;
  previous: string | null;
  results: T[];
}

/**
 * The body of the editor's Run request, exactly as `api.startRun` sends it (JSON-encoded): the
 * run panel weighs it against the server's request limit before sending it.
 */
export function startRunBody(input: unknown, options: RunStartOptions = {}) {
  return { input, version: "draft" as const, trigger: "editor" as const, ...options };
}

const blockTestUrl = (id: number, blockId: string) => `/api/workflows/${id}/blocks/${encodeURIComponent(blockId)}/test/`;

export const api = {
  catalogue: () => request<CatalogueEntry[]>("GET", "/api/blocks/"),
  workflows: () => request<Workflow[]>("GET", "/api/workflows/"),
  workflow: (id: number) => request<Workflow>("GET", `/api/workflows/${id}/`),
  createWorkflow: (name: string, graph?: GraphJson, description?: string) =>
    request<Workflow>("POST", "/api/workflows/", { name, graph, ...(description ? { description } : {}) }),
  saveWorkflow: (id: number, graph: GraphJson, baseVersion: number | null) =>
    request<Workflow>("PUT", `/api/workflows/${id}/`, { graph, base_version: baseVersion }),
  renameWorkflow: (id: number, name: string) => request<Workflow>("PATCH", `/api/workflows/${id}/`, { name }),
  setBudget: (id: number, budgetUsd: number | null) => request<Workflow>("PATCH", `/api/workflows/${id}/`, { budget_usd: budgetUsd }),
  deleteWorkflow: (id: number) => request<null>("DELETE", `/api/workflows/${id}/`),
  duplicateWorkflow: (id: number) => request<Workflow>("POST", `/api/workflows/${id}/duplicate/`),
  validate: (id: number, graph: GraphJson) => request<ValidationResponse>("POST", `/api/workflows/${id}/validate/`, { graph }),
  templates: () => request<TemplateSummary[]>("GET", "/api/templates/"),
  fromTemplate: (slug: string) => request<Workflow>("POST", `/api/templates/${slug}/instantiate/`, {}),
  // The editor's Run button tests the saved draft; production (webhook, API) runs the live version.
  // `options`: the run's weight and priority among the owner's runs, `defer: "off_peak"`.
  startRun: (id: number, input: unknown, options: RunStartOptions = {}) =>
    request<RunSummary>("POST", `/api/workflows/${id}/runs/`, startRunBody(input, options)),
  publish: (id: number, message = "", version?: number) =>
    request<Workflow>("POST", `/api/workflows/${id}/publish/`, { message, ...(version ? { version } : {}) }),
  versions: (id: number, page = 1) => request<Page<VersionSummary>>("GET", `/api/workflows/${id}/versions/?page=${page}`),
  versionDiff: (id: number, from: number, to: number) =>
    request<VersionDiff>("GET", `/api/workflows/${id}/versions/diff/?from=${from}&to=${to}`),
  schedulePreview: (cron: string, timezone: string) =>
    request<{ next: string[]; explain: string }>("POST", "/api/schedules/preview/", { cron, timezone }),
  restoreVersion: (id: number, number: number) => request<Workflow>("POST", `/api/workflows/${id}/versions/${number}/restore/`),
  runs: (id: number, page = 1) => request<Page<RunSummary>>("GET", `/api/workflows/${id}/runs/?page=${page}`),
  run: (runId: string) => request<RunSummary & { outputs: Record<string, unknown> }>("GET", `/api/runs/${runId}/`),
  lastRun: (id: number) => request<{ run: RunSummary | null }>("GET", `/api/workflows/${id}/runs/last/`),
  cancelRun: (runId: string) => request<RunSummary>("POST", `/api/runs/${runId}/cancel/`),
  retryFailed: (runId: string) => request<RunSummary>("POST", `/api/runs/${runId}/retry-failed/`),
  /** Close a provider's breaker that pauses the run (a manual one waits for this). */
  resumeProvider: (runId: string, provider: string) =>
    request<RunSummary>("POST", `/api/runs/${runId}/resume-provider/`, { provider }),
  /** The secrets, then the names workflows read that are not set (`missing`). */
  secrets: () => request<SecretSummary[]>("GET", "/api/secrets/?referenced=1"),
  setSecret: (name: string, value: string) => request<{ name: string }>("POST", "/api/secrets/", { name, value }),
  // `force`: even though a live version reads it (the server refuses with 409 otherwise).
  deleteSecret: (name: string, force = false) =>
    request<null>("DELETE", `/api/secrets/${encodeURIComponent(name)}/${force ? "?force=true" : ""}`),
  /** What a test of one block would be given, for the editor's (unsaved) graph. */
  blockTestPlan: (id: number, blockId: string, graph: GraphJson) =>
    request<BlockTestPlan>("POST", blockTestUrl(id, blockId), { graph, dry_run: true }),
  /** Runs that block alone, for real, with these inputs (missing ones from pins, then the last run). */
  testBlock: (id: number, blockId: string, body: { graph: GraphJson; inputs?: Record<string, unknown>; trigger_input?: unknown }) =>
    request<BlockTestResult>("POST", blockTestUrl(id, blockId), body),
  rotateSecret: (id: number) => request<{ signing_secret: string }>("POST", `/api/workflows/${id}/webhook/secret/`),
};
