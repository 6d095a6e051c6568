// The runs of the open workflow, as the workflow socket announces them (docs/run-protocol.md,
// "The workflow socket"): every run shows up as it starts, whatever started it (webhook, api,
// cli, retry), its summary is refreshed while it runs and when it ends. The History list and
// the run panel's notice read this store; `followDecision` says whether the panel switches
// to a run that just started. It also keeps the workflow's draft and live numbers as last
// heard (`hello`, `workflow.changed`, or this tab's own load, save and publish): the header's
// live/draft status, never stale when another tab saves or publishes.
import { create } from "zustand";
import { openWorkflowSocket, type RunSocket, type SocketStatus } from "../api/socket";
import type { RunSummary, WorkflowMessage, WorkflowNumbers } from "../types";
import { isFinalStatus } from "./runStore";

/** Summaries kept (the newest runs): the History's first page, whatever N. */
export const KEPT_RUNS = 50;

export interface RunNotice {
  run: RunSummary;
  /** Whether the panel switched to it (else the notice offers to open it). */
  followed: boolean;
}

export interface WorkflowRunsState {
  workflowId: number | null;
  connection: SocketStatus;
  /** The latest summary heard of each recent run, by id. */
  runs: Record<string, RunSummary>;
  /** The most recent run (from `hello`, then every `run.started`). */
  lastRun: RunSummary | null;
  /** Bumped when a run starts or ends: the History refetches its page. */
  version: number;
  notice: RunNotice | null;
  /** The workflow's numbers as last heard, whoever told them (latest wins). */
  numbers: (WorkflowNumbers & { workflow: number }) | null;
  heard: (msg: WorkflowMessage) => void;
  /** This tab's own answer (load, save, publish): as new as anything heard before it. */
  noteNumbers: (workflow: number, numbers: WorkflowNumbers) => void;
  setNotice: (notice: RunNotice | null) => void;
  connect: (workflowId: number, onMessage?: (msg: WorkflowMessage) => void) => void;
  disconnect: () => void;
}

function keep(runs: Record<string, RunSummary>, run: RunSummary): Record<string, RunSummary> {
  const next = { ...runs, [run.id]: run };
  const ids = Object.keys(next);
  if (ids.length > KEPT_RUNS) {
    const oldest = ids.sort((a, b) => next[a].created_at.localeCompare(next[b].created_at)).slice(0, ids.length - KEPT_RUNS);
    for (const id of oldest) delete next[id];
  }
  return next;
}

let socket: RunSocket | null = null;
let generation = 0;

export const useWorkflowRuns = create<WorkflowRunsState>()((set, get) => ({
  workflowId: null,
  connection: "idle",
  runs: {},
  lastRun: null,
  version: 0,
  notice: null,
  numbers: null,

  heard: (msg) => {
    const s = get();
    const heardNumbers = (m: Partial<WorkflowNumbers>) =>
      s.workflowId != null && m.version !== undefined
        ? { workflow: s.workflowId, version: m.version, published_version: m.published_version ?? null, draft_differs: Boolean(m.draft_differs) }
        : s.numbers;
    if (msg.type === "workflow.changed") {
      set({ numbers: heardNumbers(msg) });
      return;
    }
    if (msg.type === "hello") {
      set({
        lastRun: msg.last_run,
        runs: msg.last_run ? keep(s.runs, msg.last_run) : s.runs,
        version: s.version + 1,
        numbers: heardNumbers(msg),
      });
      return;
    }
    const run = msg.run;
    const isNewest = !s.lastRun || s.lastRun.id === run.id || run.created_at >= s.lastRun.created_at;
    set({
      runs: keep(s.runs, run),
      lastRun: isNewest ? run : s.lastRun,
      version: msg.type === "run.progress" ? s.version : s.version + 1,
      notice: s.notice && s.notice.run.id === run.id ? { ...s.notice, run } : s.notice,
    });
  },

  setNotice: (notice) => set({ notice }),

  noteNumbers: (workflow, numbers) =>
    set({
      numbers: {
        workflow,
        version: numbers.version,
        published_version: numbers.published_version ?? null,
        draft_differs: Boolean(numbers.draft_differs),
      },
    }),

  connect: (workflowId, onMessage) => {
    socket?.close();
    const numbers = get().numbers;
    set({
      workflowId,
      connection: "connecting",
      runs: {},
      lastRun: null,
      notice: null,
      numbers: numbers && numbers.workflow === workflowId ? numbers : null,
    });
    // Messages of a socket that was replaced or closed are ignored.
    const mine = ++generation;
    socket = openWorkflowSocket(workflowId, {
      onMessage: (msg) => {
        if (generation !== mine) return;
        get().heard(msg);
        onMessage?.(msg);
      },
      onStatus: (connection) => {
        if (generation === mine) set({ connection });
      },
    });
  },

  disconnect: () => {
    generation += 1;
    socket?.close();
    socket = null;
    set({ workflowId: null, connection: "idle", notice: null });
  },
}));

/**
 * Whether the panel should switch to a run that just started: yes unless the user is looking
 * at another run (one opened from the History, or one still running).
 */
export function followDecision(
  current: { runId: string | null; pinned: boolean; final: boolean; status: string | null | undefined },
  started: RunSummary,
): "already" | "follow" | "notify" {
  if (current.runId === started.id) return "already";
  if (!current.runId) return "follow";
  if (current.pinned) return "notify";
  const live = !current.final && !isFinalStatus(current.status);
  return live ? "notify" : "follow";
}

export const TRIGGER_LABELS: Record<string, string> = {
  editor: "the editor",
  webhook: "the webhook",
  api: "the API",
  schedule: "the schedule",
  cli: "the CLI",
  retry: "a retry",
};
