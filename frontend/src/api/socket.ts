// The run websocket: server→client only. The server sends a snapshot on every connect, then
// deltas, then a final snapshot and closes. A close before the final snapshot reconnects
// with exponential backoff; each reconnect starts again from the server's snapshot.
import type { RunMessage } from "../types";

export type SocketStatus = "idle" | "connecting" | "open" | "reconnecting" | "closed" | "failed";

export interface RunSocketHandlers {
  onMessage: (msg: RunMessage) => void;
  onStatus?: (status: SocketStatus) => void;
}

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

export function runSocketUrl(runId: string): string {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/runs/" + runId + "/";
}

function parse(data: unknown): RunMessage | null {
  if (typeof data !== "string") return null;
  try {
    const msg = JSON.parse(data) as Record<string, unknown>;
    if (!msg || typeof msg !== "object") return null;
    // Tolerate a delta wrapped as {"type": "delta", "delta": {...}}.
    if (msg.type === "delta" && msg.delta && typeof msg.delta === "object") {
      return { type: "delta", ...(msg.delta as object) } as RunMessage;
    }
    if (msg.type === "snapshot" || msg.type === "delta") return msg as unknown as RunMessage;
  } catch {
    // A malformed frame is ignored; the next snapshot restores the truth.
  }
  return null;
}

export function openRunSocket(runId: string, handlers: RunSocketHandlers, options: RunSocketOptions = {}): RunSocket {
  const baseDelay = options.baseDelayMs ?? 500;
  const maxDelay = options.maxDelayMs ?? 10_000;
  const maxAttempts = options.maxAttempts ?? 30;
  let ws: WebSocket | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;
  let gotFinal = false;
  let failures = 0;

  const status = (s: SocketStatus) => {
    if (!stopped || s === "idle") handlers.onStatus?.(s);
  };

  const open = () => {
    timer = null;
    if (stopped) return;
    status(failures === 0 ? "connecting" : "reconnecting");
    const socket = new WebSocket(runSocketUrl(runId));
    ws = socket;
    socket.onopen = () => {
      if (ws === socket) status("open");
    };
    socket.onmessage = (event: MessageEvent) => {
      if (ws !== socket || stopped) return;
      const msg = parse(event.data);
      if (!msg) return;
      if (msg.type === "snapshot") {
        failures = 0;
        if (msg.final) gotFinal = true;
      }
      handlers.onMessage(msg);
    };
    socket.onclose = (event: CloseEvent) => {
      if (ws !== socket) return;
      ws = null;
      if (stopped) return;
      if (gotFinal) {
        status("closed");
        return;
      }
      failures += 1;
      // 4401 (signed out) and 4404 (no such run) will not get better by retrying.
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
