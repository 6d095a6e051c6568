// The editor's two websockets, both server→client only (docs/run-protocol.md):
// - the run socket: a snapshot on every connect, then deltas, then a final snapshot and a
//   close. A close before the final snapshot reconnects with exponential backoff; each
//   reconnect starts again from the server's snapshot, never from a replay.
// - the workflow socket: `hello` on connect, then a notice for every run of the workflow as
//   it starts, progresses and ends, whatever started it, and `workflow.changed` (the draft and
//   live numbers) for every save or publish, from whichever tab. It reconnects for as long as
//   the editor is open (a reconnect's `hello` tells the last run and the numbers again).
import type { RunMessage, WorkflowMessage } from "../types";

export type SocketStatus = "idle" | "connecting" | "open" | "reconnecting" | "closed" | "failed";

export interface SocketHandlers<M> {
  onMessage: (msg: M) => void;
  onStatus?: (status: SocketStatus) => void;
}

export type RunSocketHandlers = SocketHandlers<RunMessage>;

export interface RunSocketOptions {
  /** Delay before the first reconnect, doubled each time up to `maxDelayMs`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Consecutive failed connections before giving up ("failed"). */
  maxAttempts?: number;
}

export interface RunSocket {
  close: () => void;
}

function wsUrl(path: string): string {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

export function runSocketUrl(runId: string): string {
  return wsUrl("/ws/runs/" + runId + "/");
}

export function workflowSocketUrl(workflowId: number): string {
  return wsUrl("/ws/workflows/" + workflowId + "/");
}

function parseJson(data: unknown): Record<string, unknown> | null {
  if (typeof data !== "string") return null;
  try {
    const msg = JSON.parse(data) as unknown;
    return msg && typeof msg === "object" ? (msg as Record<string, unknown>) : null;
  } catch {
    // A malformed frame is ignored; the next snapshot restores the truth.
    return null;
  }
}

function parseRun(data: unknown): RunMessage | null {
  const msg = parseJson(data);
  if (msg && (msg.type === "snapshot" || msg.type === "delta")) return msg as unknown as RunMessage;
  return null;
}

function parseWorkflow(data: unknown): WorkflowMessage | null {
  const msg = parseJson(data);
  if (!msg) return null;
  if (msg.type === "hello") return msg as unknown as WorkflowMessage;
  if (msg.type === "workflow.changed" && (msg.version === null || typeof msg.version === "number")) {
    return msg as unknown as WorkflowMessage;
  }
  if ((msg.type === "run.started" || msg.type === "run.progress" || msg.type === "run.ended") && msg.run && typeof msg.run === "object") {
    return msg as unknown as WorkflowMessage;
  }
  return null;
}

interface Lifecycle<M> {
  /** A message after which a close is the normal end (the run socket's final snapshot). */
  isEnd: (msg: M) => boolean;
  /** A message that proves the connection healthy (resets the backoff). */
  isHealthy: (msg: M) => boolean;
}

function openSocket<M>(
  url: string,
  parse: (data: unknown) => M | null,
  life: Lifecycle<M>,
  handlers: SocketHandlers<M>,
  options: RunSocketOptions,
): RunSocket {
  const baseDelay = options.baseDelayMs ?? 500;
  const maxDelay = options.maxDelayMs ?? 10_000;
  const maxAttempts = options.maxAttempts ?? 30;
  let ws: WebSocket | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;
  let ended = false;
  let failures = 0;

  const status = (s: SocketStatus) => {
    if (!stopped || s === "idle") handlers.onStatus?.(s);
  };

  const open = () => {
    timer = null;
    if (stopped) return;
    status(failures === 0 ? "connecting" : "reconnecting");
    const socket = new WebSocket(url);
    ws = socket;
    socket.onopen = () => {
      if (ws === socket) status("open");
    };
    socket.onmessage = (event: MessageEvent) => {
      if (ws !== socket || stopped) return;
      const msg = parse(event.data);
      if (msg === null) return;
      if (life.isHealthy(msg)) failures = 0;
      if (life.isEnd(msg)) ended = true;
      handlers.onMessage(msg);
    };
    socket.onclose = (event: CloseEvent) => {
      if (ws !== socket) return;
      ws = null;
      if (stopped) return;
      if (ended) {
        status("closed");
        return;
      }
      failures += 1;
      // 4401 (signed out) and 4404 (not found) will not get better by retrying.
      if (failures > maxAttempts || event?.code === 4401 || event?.code === 4404) {
        status("failed");
        return;
      }
      status("reconnecting");
      const delay = Math.min(maxDelay, baseDelay * 2 ** (failures - 1));
      timer = setTimeout(open, delay * (0.75 + Math.random() * 0.5));
    };
  };

  open();

  return {
    close: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      const socket = ws;
      ws = null;
      if (socket && socket.readyState !== WebSocket.CLOSED && socket.readyState !== WebSocket.CLOSING) socket.close();
    },
  };
}

export function openRunSocket(runId: string, handlers: RunSocketHandlers, options: RunSocketOptions = {}): RunSocket {
  return openSocket(
    runSocketUrl(runId),
    parseRun,
    { isEnd: (m) => m.type === "snapshot" && Boolean(m.final), isHealthy: (m) => m.type === "snapshot" },
    handlers,
    options,
  );
}

export function openWorkflowSocket(
  workflowId: number,
  handlers: SocketHandlers<WorkflowMessage>,
  options: RunSocketOptions = {},
): RunSocket {
  return openSocket(
    workflowSocketUrl(workflowId),
    parseWorkflow,
    { isEnd: () => false, isHealthy: (m) => m.type === "hello" },
    handlers,
    { maxAttempts: Number.POSITIVE_INFINITY, ...options },
  );
}
