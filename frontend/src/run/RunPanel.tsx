// The run side of the editor: input, webhook, live progress and history of one workflow.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { api, ApiError } from "../api/client";
import type { RunSummary, Workflow } from "../types";
import { isFinalStatus, useRunStore } from "../store/runStore";
import { HistoryTab } from "./HistoryTab";
import { InputTab, parseInput, type RunProblem } from "./InputTab";
import { ProgressView } from "./ProgressView";
import { fetchRunSnapshot } from "./runApi";
import { WebhookTab } from "./WebhookTab";
import "./run.css";

type Tab = "input" | "webhook" | "progress" | "history";

const TABS: { id: Tab; label: string }[] = [
  { id: "input", label: "Input" },
  { id: "webhook", label: "Webhook" },
  { id: "progress", label: "Progress" },
  { id: "history", label: "History" },
];

// What the user typed, per workflow, survives the panel being collapsed (unmounted).
const drafts = new Map<number, { text: string; touched: boolean; tab: Tab }>();

export function RunPanel(props: { workflow: Workflow; onBeforeRun: () => Promise<Workflow | null> }) {
  const { workflow, onBeforeRun } = props;
  const draft = drafts.get(workflow.id);
  const [tab, setTab] = useState<Tab>(draft?.tab ?? "input");
  const [inputText, setInputText] = useState(draft?.text ?? "{}");
  const [inputTouched, setInputTouched] = useState(draft?.touched ?? false);
  const [starting, setStarting] = useState(false);
  const [problems, setProblems] = useState<RunProblem[]>([]);
  const [startError, setStartError] = useState("");
  const [historyVersion, setHistoryVersion] = useState(0);
  const [cancelling, setCancelling] = useState(false);

  const runId = useRunStore((s) => s.runId);
  const run = useRunStore((s) => s.run);
  const final = useRunStore((s) => s.final);
  const connection = useRunStore((s) => s.connection);
  const connect = useRunStore((s) => s.connect);
  const applySnapshot = useRunStore((s) => s.applySnapshot);

  const parsed = useMemo(() => parseInput(inputText), [inputText]);
  // Each tab opens at its top (not at the previous tab's scroll position).
  const bodyRef = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    if (bodyRef.current) bodyRef.current.scrollTop = 0;
  }, [tab]);
  const active = Boolean(runId) && !final && !isFinalStatus(run?.status);
  // While the current run is queued or running, Cancel is the action, not another Run.
  const busy = active && (run?.status === "queued" || run?.status === "running" || !run);

  // A run of another workflow (left over from a previous page) is not this panel's.
  useEffect(() => {
    const state = useRunStore.getState();
    if (state.run && state.run.workflow !== workflow.id) state.reset();
  }, [workflow.id]);

  useEffect(() => {
    drafts.set(workflow.id, { text: inputText, touched: inputTouched, tab });
  }, [workflow.id, inputText, inputTouched, tab]);

  // Prefill the template's sample input until the user edits the input.
  useEffect(() => {
    if (!workflow.template_slug || inputTouched) return;
    let ignore = false;
    api
      .templates()
      .then((templates) => {
        const template = templates.find((t) => t.slug === workflow.template_slug);
        if (!ignore && template && template.sample !== undefined && template.sample !== null) {
          setInputText(JSON.stringify(template.sample, null, 2));
        }
      })
      .catch(() => undefined);
    return () => {
      ignore = true;
    };
  }, [workflow.template_slug, inputTouched]);

  // Follow a run already in flight (started by a webhook, or before a reload).
  useEffect(() => {
    let ignore = false;
    api
      .runs(workflow.id)
      .then((page) => {
        const latest = page.results[0];
        if (ignore || !latest || isFinalStatus(latest.status) || useRunStore.getState().runId) return;
        connect(latest.id, latest);
        setTab("progress");
      })
      .catch(() => undefined);
    return () => {
      ignore = true;
    };
  }, [workflow.id, connect]);

  // The websocket closed before telling us anything (or gave up): load the stored state over
  // REST meanwhile. A later websocket snapshot replaces it; an older one never overwrites it.
  const restLoaded = useRef<string | null>(null);
  useEffect(() => {
    if (!runId || (connection !== "reconnecting" && connection !== "failed")) return;
    const state = useRunStore.getState();
    if (restLoaded.current === runId || (state.seq > 0 && connection !== "failed") || state.final) return;
    restLoaded.current = runId;
    fetchRunSnapshot(runId)
      .then((snapshot) => {
        const now = useRunStore.getState();
        if (now.runId === runId && !now.final && now.seq <= snapshot.seq) applySnapshot(snapshot);
      })
      .catch(() => undefined);
  }, [connection, runId, applySnapshot]);

  useEffect(() => {
    if (final) setHistoryVersion((v) => v + 1);
  }, [final]);

  const onInputChange = useCallback((text: string) => {
    setInputText(text);
    setInputTouched(true);
  }, []);

  const startRun = async () => {
    if (!parsed.ok || starting || busy) return;
    setStarting(true);
    setProblems([]);
    setStartError("");
    try {
      const saved = await onBeforeRun();
      if (!saved) return;
      const started = await api.startRun(saved.id, parsed.value);
      connect(started.id, started);
      setTab("progress");
      setHistoryVersion((v) => v + 1);
    } catch (err) {
      setStartError(err instanceof Error ? err.message : String(err));
      if (err instanceof ApiError && err.body && typeof err.body === "object" && "errors" in err.body) {
        const list = (err.body as { errors: unknown }).errors;
        if (Array.isArray(list)) setProblems(list as RunProblem[]);
      }
      setTab("input");
    } finally {
      setStarting(false);
    }
  };

  const cancel = async () => {
    if (!runId || cancelling) return;
    setCancelling(true);
    try {
      const cancelled = await api.cancelRun(runId);
      // Show the answer at once; the websocket's final snapshot follows.
      const state = useRunStore.getState();
      if (state.runId === cancelled.id && !state.final && state.run && isFinalStatus(cancelled.status)) {
        useRunStore.setState({ run: { ...state.run, status: cancelled.status, error: cancelled.error } });
      }
    } catch (err) {
      setStartError(err instanceof Error ? err.message : String(err));
    } finally {
      setCancelling(false);
    }
  };

  const openRun = (summary: RunSummary) => {
    connect(summary.id, summary);
    setTab("progress");
  };

  return (
    <section className="kr-panel" data-testid="run-panel">
      <header className="kr-head">
        <button
          type="button"
          className="kr-btn kr-primary"
          data-testid="run-button"
          disabled={starting || !parsed.ok || busy}
          title={
            busy
              ? "A run is in progress: wait for it or cancel it"
              : parsed.ok
                ? "Save and run with this input"
                : "Fix the input JSON first"
          }
          onClick={startRun}
        >
          {starting ? "Starting…" : "Run"}
        </button>
        {active && (
          <button type="button" className="kr-btn kr-danger" data-testid="cancel-button" disabled={cancelling} onClick={cancel}>
            {cancelling ? "Cancelling…" : "Cancel"}
          </button>
        )}
        {run ? (
          <span className="kr-runinfo">
            <span className={`kr-badge kr-s-${run.status}`} data-testid="run-status">
              {run.status}
            </span>
            <span className="kr-muted" title={run.id}>
              run {run.id.slice(0, 8)}
            </span>
          </span>
        ) : (
          <span className="kr-muted">No run yet</span>
        )}
        {runId && connection !== "idle" && connection !== "closed" && connection !== "open" && (
          <span className="kr-muted" data-testid="connection-status">
            {connection === "failed" ? "live updates unavailable" : connection}
          </span>
        )}
      </header>
      {run?.error && (
        <div className="kr-error" data-testid="run-error">
          {run.error}
        </div>
      )}
      {startError && (
        <div className="kr-error" data-testid="start-error">
          {startError}
        </div>
      )}
      <nav className="kr-tabs" role="tablist">
        {TABS.map((t) => (
          <button
            key={t.id}
            type="button"
            role="tab"
            aria-selected={tab === t.id}
            className={tab === t.id ? "kr-tab kr-tab-on" : "kr-tab"}
            data-testid={`tab-${t.id}`}
            onClick={() => setTab(t.id)}
          >
            {t.label}
          </button>
        ))}
      </nav>
      <div className="kr-body" ref={bodyRef}>
        {tab === "input" && (
          <InputTab text={inputText} onChange={onInputChange} parsed={parsed} problems={problems} />
        )}
        {tab === "webhook" && <WebhookTab workflow={workflow} input={parsed.ok ? parsed.value : null} inputText={inputText} />}
        {tab === "progress" && <ProgressView />}
        {tab === "history" && (
          <HistoryTab workflowId={workflow.id} refresh={historyVersion} currentRunId={runId} onOpen={openRun} />
        )}
      </div>
    </section>
  );
}
