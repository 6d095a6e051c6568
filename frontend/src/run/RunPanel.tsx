// The run side of the editor: input, webhook, live progress and history of one workflow.
// The workflow socket (store/workflowRuns.ts) tells the panel of every run as it starts,
// whatever started it: the panel follows it unless the user is looking at another run, and
// says who started it. After a reload, the last run (running or ended) is shown.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { api, ApiError, startRunBody } from "../api/client";
import type { RunSummary, Workflow, WorkflowMessage } from "../types";
import { isFinalStatus, statusLabel, useRunStore } from "../store/runStore";
import { followDecision, TRIGGER_LABELS, useWorkflowRuns } from "../store/workflowRuns";
import { BudgetField } from "./BudgetField";
import { HistoryTab } from "./HistoryTab";
import { utf8Bytes } from "./bodySize";
import { cliCommand, InputTab, parseInput, requestTooLargeNote, signedInUsername, type RunProblem } from "./InputTab";
import { isNoOffPeakRefusal, NO_ADVANCED, parseAdvanced, RunAdvanced, type AdvancedText } from "./RunAdvanced";
import { ProgressView } from "./ProgressView";
import { PausedProviders } from "./Paused";
import { RetryFailedButton } from "./RetryFailed";
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

/** Lines of a refusal's `details` shown; the rest are counted ("… N more"). */
export const DETAILS_SHOWN = 10;

/** A refused start's `details` (e.g. the webhook body schema's mismatches), as lines. */
export function refusalDetails(err: unknown): string[] {
  if (!(err instanceof ApiError) || !err.body || typeof err.body !== "object") return [];
  const details = (err.body as { details?: unknown }).details;
  if (Array.isArray(details)) return details.map((d) => (typeof d === "string" ? d : JSON.stringify(d)));
  if (typeof details === "string" && details) return [details];
  return [];
}

// What the user typed, per workflow, survives the panel being collapsed (unmounted).
const drafts = new Map<number, { text: string; touched: boolean; tab: Tab; advanced: AdvancedText }>();

export function RunPanel(props: { workflow: Workflow; onBeforeRun: () => Promise<Workflow | null> }) {
  const { workflow, onBeforeRun } = props;
  const draft = drafts.get(workflow.id);
  const [tab, setTab] = useState<Tab>(draft?.tab ?? "input");
  const [inputText, setInputText] = useState(draft?.text ?? "{}");
  const [inputTouched, setInputTouched] = useState(draft?.touched ?? false);
  const [advanced, setAdvanced] = useState<AdvancedText>(draft?.advanced ?? NO_ADVANCED);
  const [starting, setStarting] = useState(false);
  const [problems, setProblems] = useState<RunProblem[]>([]);
  const [startError, setStartError] = useState("");
  // The refusal's `details` (a body schema mismatch: one line per wrong field) and the run shown
  // in the header when Run was refused: that run is the previous one, not this attempt's.
  const [startDetails, setStartDetails] = useState<string[]>([]);
  const [refusedBeside, setRefusedBeside] = useState<string | null>(null);
  const [historyVersion, setHistoryVersion] = useState(0);
  const [cancelling, setCancelling] = useState(false);
  const [confirmCancel, setConfirmCancel] = useState(false);
  const starting_ = useRef(false);
  const notice = useWorkflowRuns((s) => s.notice);

  const runId = useRunStore((s) => s.runId);
  const run = useRunStore((s) => s.run);
  const final = useRunStore((s) => s.final);
  const connection = useRunStore((s) => s.connection);
  const connect = useRunStore((s) => s.connect);
  const applySnapshot = useRunStore((s) => s.applySnapshot);

  // Deferring needs the server's off-peak window: the workflow says when there is none
  // (`off_peak_hours: null`), else the first refusal for it does.
  const [noOffPeak, setNoOffPeak] = useState(false);
  const offPeakAvailable = workflow.off_peak_hours !== null && !noOffPeak;
  const parsed = useMemo(() => parseInput(inputText), [inputText]);
  const parsedAdvanced = useMemo(
    () => parseAdvanced(offPeakAvailable ? advanced : { ...advanced, offPeak: false }),
    [advanced, offPeakAvailable],
  );
  // The Run request weighed as it will be sent (api.startRun's body, UTF-8): past the server's
  // limit it would only be refused (413), so Run is disabled and the Input tab says why and
  // how to run it anyway. Weighed again only when the input or the options change.
  const requestLimit = workflow.request_max_bytes;
  const options = useMemo(() => (parsedAdvanced.ok ? parsedAdvanced.value : {}), [parsedAdvanced]);
  const requestBytes = useMemo(
    () => (parsed.ok && requestLimit !== undefined ? utf8Bytes(JSON.stringify(startRunBody(parsed.value, options))) : 0),
    [parsed, options, requestLimit],
  );
  const username = useMemo(() => signedInUsername(), []);
  const tooLargeNote = requestTooLargeNote(requestBytes, requestLimit, username);
  const tooLarge = { note: tooLargeNote, command: cliCommand(workflow.id, options, username) };
  const startable = parsed.ok && parsedAdvanced.ok && !tooLargeNote;
  // Each tab opens at its top (not at the previous tab's scroll position).
  const bodyRef = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    if (bodyRef.current) bodyRef.current.scrollTop = 0;
  }, [tab]);
  const active = Boolean(runId) && !final && !isFinalStatus(run?.status);
  // While the current run is queued or running, Cancel is the action, not another Run.
  const busy =
    active && (run?.status === "deferred" || run?.status === "queued" || run?.status === "running" || !run);

  // A run of another workflow (left over from a previous page) is not this panel's.
  useEffect(() => {
    const state = useRunStore.getState();
    if (state.run && state.run.workflow !== workflow.id) state.reset();
  }, [workflow.id]);

  useEffect(() => {
    drafts.set(workflow.id, { text: inputText, touched: inputTouched, tab, advanced });
  }, [workflow.id, inputText, inputTouched, tab, advanced]);

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

  // The last run, shown after a (re)load: running or ended, never "No run yet" when one exists.
  const showLast = useCallback(
    (last: RunSummary | null) => {
      if (!last || last.workflow !== workflow.id || useRunStore.getState().runId) return;
      connect(last.id, last);
      if (!isFinalStatus(last.status)) setTab("progress");
    },
    [workflow.id, connect],
  );

  // Every run of this workflow as it starts: follow it, or offer it in a notice.
  const onWorkflowMessage = useCallback(
    (msg: WorkflowMessage) => {
      if (msg.type === "hello") {
        showLast(msg.last_run);
        return;
      }
      if (msg.type !== "run.started") return;
      const state = useRunStore.getState();
      const decision = followDecision(
        { runId: state.runId, pinned: state.pinned, final: state.final, status: state.run?.status },
        msg.run,
      );
      if (decision === "already") return;
      // A run this panel is starting needs no notice: its answer connects to it.
      if (starting_.current) return;
      if (decision === "follow") connect(msg.run.id, msg.run);
      useWorkflowRuns.getState().setNotice({ run: msg.run, followed: decision === "follow" });
    },
    [showLast, connect],
  );

  useEffect(() => {
    useWorkflowRuns.getState().connect(workflow.id, onWorkflowMessage);
    return () => useWorkflowRuns.getState().disconnect();
  }, [workflow.id, onWorkflowMessage]);

  useEffect(() => {
    let ignore = false;
    api
      .lastRun(workflow.id)
      .then((answer) => {
        if (!ignore) showLast(answer.run);
      })
      .catch(() => undefined);
    return () => {
      ignore = true;
    };
  }, [workflow.id, showLast]);

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
    if (!parsed.ok || !parsedAdvanced.ok || tooLargeNote || starting || busy) return;
    setStarting(true);
    starting_.current = true;
    setProblems([]);
    setStartError("");
    setStartDetails([]);
    setRefusedBeside(null);
    let posting = false;
    try {
      const saved = await onBeforeRun();
      if (!saved) return;
      posting = true;
      const started = await api.startRun(saved.id, parsed.value, parsedAdvanced.value);
      if (useRunStore.getState().runId !== started.id) connect(started.id, started);
      useWorkflowRuns.getState().setNotice(null);
      setTab("progress");
      setHistoryVersion((v) => v + 1);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // Refused for its size (a limit this page did not know): say how to run it anyway.
      setStartError(
        posting && err instanceof ApiError && err.status === 413
          ? `${message}. Raise that setting, or run this input from the command line: ${tooLarge.command}`
          : message,
      );
      if (err instanceof ApiError && err.body && typeof err.body === "object" && "errors" in err.body) {
        const list = (err.body as { errors: unknown }).errors;
        if (Array.isArray(list)) setProblems(list as RunProblem[]);
      }
      setStartDetails(refusalDetails(err));
      if (posting && err instanceof ApiError && err.status === 400 && isNoOffPeakRefusal(message)) setNoOffPeak(true);
      // No run was started: the run still in the header is the previous one.
      if (posting) setRefusedBeside(useRunStore.getState().runId);
      setTab("input");
    } finally {
      setStarting(false);
      starting_.current = false;
    }
  };

  // Items in flight are lost work: ask first.
  const requestCancel = () => {
    const running = run?.progress.running ?? 0;
    if (running > 0 || run?.status === "running") setConfirmCancel(true);
    else void cancel();
  };

  const cancel = async () => {
    setConfirmCancel(false);
    if (!runId || cancelling) return;
    setCancelling(true);
    try {
      const cancelled = await api.cancelRun(runId);
      // Show the answer at once, its counts with its status (stored together as the run
      // ended: its cancelled and never-started items); the websocket's final snapshot follows.
      const state = useRunStore.getState();
      if (state.runId === cancelled.id && !state.final && state.run && isFinalStatus(cancelled.status)) {
        useRunStore.setState({
          run: { ...state.run, status: cancelled.status, error: cancelled.error, progress: cancelled.progress },
        });
      }
    } catch (err) {
      setStartDetails([]);
      setStartError(err instanceof Error ? err.message : String(err));
    } finally {
      setCancelling(false);
    }
  };

  const openRun = (summary: RunSummary, pinned = true) => {
    connect(summary.id, summary, { pinned });
    useWorkflowRuns.getState().setNotice(null);
    setTab("progress");
  };

  return (
    <section className="kr-panel" data-testid="run-panel">
      <header className="kr-head">
        <button
          type="button"
          className="kr-btn kr-primary"
          data-testid="run-button"
          disabled={starting || !startable || busy}
          title={
            busy
              ? "A run is in progress: wait for it or cancel it"
              : !parsed.ok
                ? "Fix the input JSON first"
                : !parsedAdvanced.ok
                  ? "Fix the advanced options first"
                  : tooLargeNote
                    ? "The input is over the server's request limit (KLYNTOS_REQUEST_MAX_BYTES): see the Input tab"
                    : "Save and run with this input"
          }
          onClick={startRun}
        >
          {starting ? "Starting…" : "Run"}
        </button>
        {!active && run && isFinalStatus(run.status) && (
          <RetryFailedButton
            run={run}
            onStarted={(started) => {
              connect(started.id, started);
              setTab("progress");
              setHistoryVersion((v) => v + 1);
            }}
            onError={setStartError}
          />
        )}
        {active && (
          <button type="button" className="kr-btn kr-danger" data-testid="cancel-button" disabled={cancelling || confirmCancel} onClick={requestCancel}>
            {cancelling ? "Cancelling…" : "Cancel"}
          </button>
        )}
        {run ? (
          <span className="kr-runinfo">
            {refusedBeside !== null && refusedBeside === runId && (
              <span className="kr-muted kr-previous" data-testid="run-previous" title="Run was refused: no run was started; this is the previous run">
                previous run:
              </span>
            )}
            <span className={`kr-badge kr-s-${run.status}`} data-testid="run-status" data-status={run.status}>
              {statusLabel(run.status)}
            </span>
            <span className="kr-muted" title={run.id} data-testid="run-id" data-run-id={run.id}>
              run {run.id.slice(0, 8)} · {run.trigger}
            </span>
            {active && <PausedProviders run={run} onError={setStartError} />}
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
      {confirmCancel && active && (
        <div className="kr-confirm" role="alertdialog" data-testid="cancel-confirm">
          <span>
            Cancel this run? {run?.progress.running ?? 0} item{(run?.progress.running ?? 0) === 1 ? "" : "s"} in flight will be
            stopped and the items not started yet will not run.
          </span>
          <button type="button" className="kr-btn kr-danger" data-testid="cancel-confirm-yes" onClick={() => void cancel()}>
            Cancel the run
          </button>
          <button type="button" className="kr-btn" data-testid="cancel-confirm-no" onClick={() => setConfirmCancel(false)}>
            Keep running
          </button>
        </div>
      )}
      {notice && (
        <div className="kr-notice" role="status" data-testid="run-notice" data-run-id={notice.run.id} data-trigger={notice.run.trigger}>
          <span>
            A run was started by {TRIGGER_LABELS[notice.run.trigger] ?? notice.run.trigger}
            {notice.followed ? " — showing it." : "."}
          </span>
          {!notice.followed && (
            <button type="button" className="kr-btn" data-testid="run-notice-open" onClick={() => openRun(notice.run, false)}>
              Show it
            </button>
          )}
          <button type="button" className="kr-btn" aria-label="dismiss" data-testid="run-notice-dismiss" onClick={() => useWorkflowRuns.getState().setNotice(null)}>
            ×
          </button>
        </div>
      )}
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
      {startError && startDetails.length > 0 && (
        <ul className="kr-problems kr-error" data-testid="start-error-details">
          {startDetails.slice(0, DETAILS_SHOWN).map((line, i) => (
            <li key={i}>{line}</li>
          ))}
          {startDetails.length > DETAILS_SHOWN && (
            <li className="kr-muted" data-testid="start-error-more">
              … {startDetails.length - DETAILS_SHOWN} more
            </li>
          )}
        </ul>
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
          <>
            <InputTab text={inputText} onChange={onInputChange} parsed={parsed} problems={problems} tooLarge={tooLarge} />
            <RunAdvanced text={advanced} onChange={setAdvanced} parsed={parsedAdvanced} offPeakAvailable={offPeakAvailable} />
            <BudgetField workflow={workflow} />
          </>
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
