// The workflow editor: palette | canvas | settings, a header with name / save / validate, and
// the run area (RunPanel, by the run side) docked at the bottom.
import { ReactFlowProvider, useReactFlow } from "@xyflow/react";
import { useCallback, useEffect, useRef, useState, type PointerEvent as ReactPointerEvent } from "react";
import { api, ApiError } from "../api/client";
import { downloadExport } from "../api/workflowFile";
import { AddSecretLink } from "../panel/AddSecretLink";
import { ImportButton } from "./ImportButton";
import { Canvas } from "../canvas/Canvas";
import { Palette } from "../palette/Palette";
import { ConfigPanel } from "../panel/ConfigPanel";
import { showBlockField } from "../panel/fieldFocus";
import { commitPendingEdits } from "../panel/pendingEdits";
import { RunPanel } from "../run/RunPanel";
import { useGraphStore } from "../store/graphStore";
import { mergeGraphs, mergeSummary, normalizeGraph, type Choices, type MergeResult } from "../store/merge";
import { problemsLabel } from "../store/validation";
import { useWorkflowRuns } from "../store/workflowRuns";
import type { CatalogueEntry, GraphJson, ValidationError, Workflow } from "../types";
import { headerStatus } from "../versions/liveStatus";
import { MergePanel } from "../versions/MergePanel";
import { VersionsPanel } from "../versions/VersionsPanel";

type Status = { kind: "info" | "ok" | "warn" | "error"; text: string };

/** Saves refused for a newer version, merged and tried again, before giving up. */
const MAX_MERGE_ROUNDS = 3;

export function EditorPage({ workflowId }: { workflowId: number }) {
  return (
    <ReactFlowProvider>
      <Editor workflowId={workflowId} />
    </ReactFlowProvider>
  );
}

function isTextTarget(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el || !el.tagName) return false;
  return el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName);
}

function problems(count: number): string {
  return problemsLabel(count, 0);
}

/** " · 1 warning (runs anyway)", or nothing. */
function withWarnings(count: number): string {
  return count ? ` · ${problemsLabel(0, count)} (runs anyway)` : "";
}

function Editor({ workflowId }: { workflowId: number }) {
  const [catalogue, setCatalogue] = useState<CatalogueEntry[] | null>(null);
  const [workflow, setWorkflow] = useState<Workflow | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [status, setStatus] = useState<Status | null>(null);
  const [saving, setSaving] = useState(false);
  const [conflict, setConflict] = useState(false);
  // A save refused (409) whose merge has conflicts: the server's workflow and the merge.
  const [merging, setMerging] = useState<{ theirs: Workflow; result: MergeResult } | null>(null);
  // The graph last loaded or saved: the base of a three-way merge with the server's.
  const baseRef = useRef<GraphJson | null>(null);
  const [showProblems, setShowProblems] = useState(false);
  const [problemsOpen, setProblemsOpen] = useState(true);
  const [loadCount, setLoadCount] = useState(0);
  const [runHeight, setRunHeight] = useState(260);
  const [runOpen, setRunOpen] = useState(true);
  const [versionsOpen, setVersionsOpen] = useState(false);
  const [publishing, setPublishing] = useState(false);
  const workflowRef = useRef<Workflow | null>(null);
  const validateSeq = useRef(0);
  const dirty = useGraphStore((s) => s.dirty);
  const revision = useGraphStore((s) => s.revision);
  const selectedId = useGraphStore((s) => s.selectedId);
  const errors = useGraphStore((s) => s.errors);
  const warnings = useGraphStore((s) => s.warnings);
  const shown = errors.length + warnings.length;
  const canUndo = useGraphStore((s) => s.past.length > 0);
  const canRedo = useGraphStore((s) => s.future.length > 0);
  const { getViewport } = useReactFlow();
  // The draft/live numbers last heard: the workflow socket tells every save and publish, from
  // whichever tab; this tab's own answers count as heard too (the latest wins).
  const heardNumbers = useWorkflowRuns((s) => s.numbers);
  const { id: wfId, version: wfVersion, published_version: wfLive, draft_differs: wfDiffers } = workflow ?? {};
  useEffect(() => {
    if (wfId == null || wfVersion === undefined) return;
    useWorkflowRuns.getState().noteNumbers(wfId, { version: wfVersion, published_version: wfLive ?? null, draft_differs: Boolean(wfDiffers) });
  }, [wfId, wfVersion, wfLive, wfDiffers]);

  const load = useCallback(async () => {
    setLoadError(null);
    try {
      const [entries, wf] = await Promise.all([api.catalogue(), api.workflow(workflowId)]);
      const store = useGraphStore.getState();
      store.setCatalogue(entries);
      store.load(wf.graph);
      store.setValidation(wf.validation?.errors ?? [], undefined, wf.validation?.warnings ?? []);
      workflowRef.current = wf;
      baseRef.current = wf.graph;
      setCatalogue(entries);
      setWorkflow(wf);
      setConflict(false);
      setMerging(null);
      setStatus(null);
      setLoadCount((n) => n + 1);
      document.title = `${wf.name} · Klyntos`;
    } catch (error) {
      setLoadError(error instanceof Error ? error.message : String(error));
    }
  }, [workflowId]);

  useEffect(() => {
    void load();
  }, [load]);

  // The server lists each block's references (for the picker) and the current errors:
  // ask again when the selection changes and after edits, debounced.
  const loaded = workflow !== null;
  // Coming back to the tab (after adding a secret on the secrets page, say) checks again.
  const [returns, setReturns] = useState(0);
  useEffect(() => {
    const onFocus = () => setReturns((n) => n + 1);
    window.addEventListener("focus", onFocus);
    return () => window.removeEventListener("focus", onFocus);
  }, []);
  useEffect(() => {
    if (!loaded) return;
    const timer = window.setTimeout(async () => {
      const seq = ++validateSeq.current;
      try {
        const result = await api.validate(workflowId, useGraphStore.getState().serialize());
        if (seq === validateSeq.current) useGraphStore.getState().setValidation(result.errors, result.scopes, result.warnings ?? []);
      } catch {
        // offline or logged out: the picker keeps the last list
      }
    }, 400);
    return () => window.clearTimeout(timer);
  }, [loaded, workflowId, selectedId, revision, returns]);

  /**
   * Merges the canvas with `theirs` (the server's newer workflow) from the base: without
   * conflicts left unchosen, the merge goes on the canvas as one undo step and `theirs`
   * becomes the base; returns what was merged, or null (the conflicts are listed).
   */
  const mergeWith = useCallback((theirs: Workflow, choices: Choices): string | null => {
    const store = useGraphStore.getState();
    const result = mergeGraphs(normalizeGraph(baseRef.current), store.serialize(), normalizeGraph(theirs.graph), choices);
    if (result.conflicts.some((c) => !choices[c.key])) {
      setMerging({ theirs, result });
      return null;
    }
    store.applyMerged(result.graph);
    baseRef.current = theirs.graph;
    workflowRef.current = theirs;
    setWorkflow(theirs);
    setMerging(null);
    const chosen = result.conflicts.length;
    return mergeSummary(result) + (chosen ? `; ${chosen} conflict${chosen === 1 ? "" : "s"} resolved as chosen` : "");
  }, []);

  const save = useCallback(async (mergedNote?: string): Promise<Workflow | null> => {
    commitPendingEdits();
    const store = useGraphStore.getState();
    // A field whose text does not make a value (unparseable JSON, …) would be silently
    // dropped: refuse, and say where. The text stays in its field.
    const invalid = store.invalidFields();
    if (invalid.length) {
      const first = invalid[0];
      store.select(first.blockId);
      setStatus({
        kind: "error",
        text:
          `Not saved: ${first.block} · ${first.field}: ${first.message}. Fix it or clear the field (your text is kept there)` +
          (invalid.length > 1 ? ` (and ${invalid.length - 1} more field${invalid.length > 2 ? "s" : ""}: ${invalid.slice(1).map((d) => `${d.block} · ${d.field}`).join(", ")})` : "") +
          ".",
      });
      return null;
    }
    store.setViewport(getViewport());
    setSaving(true);
    setStatus({ kind: "info", text: "Saving…" });
    let note = mergedNote;
    try {
      for (let round = 0; ; round++) {
        const current = workflowRef.current;
        if (!current) return null;
        const startedAt = useGraphStore.getState().revision;
        try {
          const saved = await api.saveWorkflow(current.id, useGraphStore.getState().serialize(), current.version);
          workflowRef.current = saved;
          baseRef.current = saved.graph;
          setWorkflow(saved);
          setConflict(false);
          useGraphStore.getState().markSaved(startedAt);
          const found = saved.validation?.errors ?? [];
          const advice = saved.validation?.warnings ?? [];
          useGraphStore.getState().revealErrors();
          useGraphStore.getState().setValidation(found, undefined, advice);
          setStatus({
            kind: found.length || advice.length ? "warn" : "ok",
            text:
              `Saved v${saved.version} · ${found.length ? `${problems(found.length)} to fix before running` : "valid"}${withWarnings(advice.length)}` +
              (note ? ` · ${note}` : ""),
          });
          setShowProblems(found.length + advice.length > 0);
          setProblemsOpen(true);
          return saved;
        } catch (error) {
          if (!(error instanceof ApiError && error.status === 409)) throw error;
          const now = (error.body as { current_version?: number } | null)?.current_version;
          // Saved elsewhere meanwhile: merge with the server's version and try again.
          const theirs = round < MAX_MERGE_ROUNDS ? await api.workflow(current.id).catch(() => null) : null;
          const merged = theirs ? mergeWith(theirs, {}) : null;
          if (merged !== null) {
            note = merged;
            continue;
          }
          setConflict(true);
          setStatus({
            kind: "error",
            text: theirs
              ? `Not saved: this workflow was saved elsewhere (now v${theirs.version}). The other changes are merged; choose for the conflicting ones below, then Save merge.`
              : `Not saved: this workflow was saved elsewhere${now ? ` (now v${now})` : ""}. Reload to get the latest version (your unsaved changes here will be lost).`,
          });
          return null;
        }
      }
    } catch (error) {
      setStatus({ kind: "error", text: `Not saved: ${error instanceof Error ? error.message : String(error)}` });
      return null;
    } finally {
      setSaving(false);
    }
  }, [getViewport, mergeWith]);

  // Publish: save what is on the canvas first, then make that draft what production runs.
  // The server refuses an invalid graph and lists its problems.
  const publish = useCallback(async () => {
    setPublishing(true);
    commitPendingEdits();
    try {
      const saved = useGraphStore.getState().dirty || !workflowRef.current?.version ? await save() : workflowRef.current;
      if (!saved) return;
      const published = await api.publish(saved.id);
      workflowRef.current = published;
      setWorkflow(published);
      setStatus({ kind: "ok", text: `Published v${published.published_version}: the webhook and the API now run it` });
      setShowProblems(false);
    } catch (error) {
      const found = error instanceof ApiError ? ((error.body as { errors?: ValidationError[] } | null)?.errors ?? []) : [];
      if (found.length) {
        useGraphStore.getState().revealErrors();
        useGraphStore.getState().setValidation(found);
        setShowProblems(true);
        setProblemsOpen(true);
      }
      setStatus({
        kind: "error",
        text: `Not published: ${found.length ? `${problems(found.length)} to fix first` : error instanceof Error ? error.message : String(error)}`,
      });
    } finally {
      setPublishing(false);
    }
  }, [save]);

  const saveIfDirty = useCallback(async (): Promise<Workflow | null> => {
    commitPendingEdits();
    if (useGraphStore.getState().dirty || !workflowRef.current?.version) return save();
    return workflowRef.current;
  }, [save]);

  const validate = useCallback(async () => {
    setStatus({ kind: "info", text: "Validating…" });
    const seq = ++validateSeq.current;
    try {
      const result = await api.validate(workflowId, useGraphStore.getState().serialize());
      useGraphStore.getState().revealErrors();
      const advice = result.warnings ?? [];
      if (seq === validateSeq.current) useGraphStore.getState().setValidation(result.errors, result.scopes, advice);
      setProblemsOpen(true);
      setStatus(
        result.ok
          ? { kind: advice.length ? "warn" : "ok", text: `Valid: ready to run${withWarnings(advice.length)}` }
          : { kind: "warn", text: `${problems(result.errors.length)} to fix before running${withWarnings(advice.length)}` },
      );
      setShowProblems(!result.ok || advice.length > 0);
    } catch (error) {
      setStatus({ kind: "error", text: `Validation failed: ${error instanceof Error ? error.message : String(error)}` });
    }
  }, [workflowId]);

  // Ctrl/Cmd+S saves; leaving with unsaved changes asks first.
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
        event.preventDefault();
        void save();
      }
    };
    const onLeave = (event: BeforeUnloadEvent) => {
      if (useGraphStore.getState().dirty || useGraphStore.getState().invalidFields().length) event.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    window.addEventListener("beforeunload", onLeave);
    return () => {
      window.removeEventListener("keydown", onKey);
      window.removeEventListener("beforeunload", onLeave);
    };
  }, [save]);

  // Esc closes the status message and the problem list (not while typing in a field).
  const statusShown = Boolean(status) || showProblems;
  useEffect(() => {
    if (!statusShown) return;
    const onKey = (event: KeyboardEvent) => {
      if (event.key !== "Escape" || event.defaultPrevented || isTextTarget(event.target)) return;
      setStatus(null);
      setShowProblems(false);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [statusShown]);

  const startResize = (event: ReactPointerEvent<HTMLDivElement>) => {
    if (event.button !== 0 || (event.target as HTMLElement).closest("button")) return;
    // No text selection (nor native drag) while resizing.
    event.preventDefault();
    const startY = event.clientY;
    const startHeight = runHeight;
    const body = document.body.style;
    const saved = { userSelect: body.userSelect, cursor: body.cursor };
    body.userSelect = "none";
    body.cursor = "ns-resize";
    const move = (e: PointerEvent) => {
      e.preventDefault();
      setRunHeight(Math.min(Math.max(startHeight + startY - e.clientY, 120), window.innerHeight - 200));
    };
    const up = () => {
      body.userSelect = saved.userSelect;
      body.cursor = saved.cursor;
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      window.removeEventListener("pointercancel", up);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
    window.addEventListener("pointercancel", up);
  };

  if (loadError) {
    return (
      <div className="editor-message">
        <p className="error-text">Could not open the workflow: {loadError}</p>
        <p>
          <a href="/">← Back to workflows</a> · <button onClick={() => void load()}>Try again</button>
        </p>
      </div>
    );
  }
  if (!workflow || !catalogue) return <div className="editor-message">Loading…</div>;

  return (
    <div className="editor" style={{ gridTemplateRows: `auto auto minmax(0, 1fr) ${runOpen ? `${runHeight}px` : "34px"}` }}>
      <header className="editor-header">
        <a className="back-link" href="/" title="All workflows">
          ← Workflows
        </a>
        <WorkflowName workflow={workflow} onRenamed={(wf) => {
          workflowRef.current = { ...(workflowRef.current ?? wf), name: wf.name };
          setWorkflow((w) => (w ? { ...w, name: wf.name } : wf));
          document.title = `${wf.name} · Klyntos`;
        }} />
        <span className="version" data-testid="workflow-version">
          {workflow.version ? `v${workflow.version}` : "not saved yet"}
        </span>
        {(() => {
          const heard = heardNumbers && heardNumbers.workflow === workflow.id ? heardNumbers : null;
          const { live, elsewhere } = headerStatus(workflow, heard, saving || publishing);
          return (
            <>
              <span className={`live-status ${live.kind}`} data-testid="live-status" title="Production (webhook, API) runs the live version; Save writes a draft">
                {live.text}
              </span>
              {elsewhere && (
                <span
                  className="saved-elsewhere"
                  data-testid="saved-elsewhere"
                  title={`This tab edits v${workflow.version ?? "?"}; your unsaved changes stay here, and Save merges them with the newer version`}
                >
                  {elsewhere}
                </span>
              )}
            </>
          );
        })()}
        {dirty && (
          <span className="dirty" data-testid="dirty-indicator">
            Unsaved changes
          </span>
        )}
        {shown > 0 && (
          <button
            type="button"
            className={`problems-button${errors.length ? "" : " warnings-only"}`}
            data-testid="validation-summary"
            title={errors.length ? "Show the problems to fix before running" : "Show the warnings (they do not stop a run)"}
            onClick={() => {
              setShowProblems((v) => !v);
              setProblemsOpen(true);
            }}
          >
            {problemsLabel(errors.length, warnings.length)}
          </button>
        )}
        <span className="spacer" />
        <button type="button" className="btn" title="Undo (Ctrl+Z)" disabled={!canUndo} onClick={() => useGraphStore.getState().undo()} data-action="undo">
          Undo
        </button>
        <button type="button" className="btn" title="Redo (Shift+Ctrl+Z)" disabled={!canRedo} onClick={() => useGraphStore.getState().redo()} data-action="redo">
          Redo
        </button>
        <ImportButton className="btn" onError={(text) => setStatus({ kind: "error", text })} />
        <button
          type="button"
          className="btn"
          data-action="export-workflow"
          title="Download as JSON (secrets by name only); unsaved changes are saved first"
          onClick={async () => {
            const saved = await saveIfDirty();
            if (saved) downloadExport(saved.id);
          }}
        >
          Export
        </button>
        <button type="button" className="btn" data-action="validate" onClick={() => void validate()}>
          Validate
        </button>
        <button
          type="button"
          className="btn primary"
          data-action="save"
          data-testid="save-button"
          disabled={saving}
          title="Save (Ctrl+S)"
          onClick={() => void save()}
        >
          {saving ? "Saving…" : "Save"}
        </button>
        <button
          type="button"
          className="btn"
          data-action="publish"
          disabled={publishing || saving}
          title="Make this draft what the webhook and the API run"
          onClick={() => void publish()}
        >
          {publishing ? "Publishing…" : "Publish"}
        </button>
        <button type="button" className="btn" data-action="versions" aria-expanded={versionsOpen} onClick={() => setVersionsOpen((v) => !v)}>
          Versions
        </button>
      </header>
      {versionsOpen && (
        <VersionsPanel
          workflow={workflow}
          dirty={dirty}
          onClose={() => setVersionsOpen(false)}
          onChanged={(changed, reloadGraph) => {
            if (reloadGraph) {
              // After the reload: load() clears the status bar when it is done.
              void load().then(() => setStatus({ kind: "ok", text: `Restored as draft v${changed.version}` }));
              return;
            }
            workflowRef.current = changed;
            setWorkflow(changed);
            setStatus({ kind: "ok", text: `Published v${changed.published_version}` });
          }}
        />
      )}
      <div className="status-slot">
        {(status || merging || (showProblems && shown > 0)) && (
          <div className={`status-bar ${status?.kind ?? "warn"}`} data-testid="status-bar">
            <div className="status-line">
              {status && (
                <span data-testid="save-status" role="status">
                  {status.text}
                </span>
              )}
              {conflict && (
                <button
                  type="button"
                  className="btn small"
                  data-action="reload"
                  title="Discard your unsaved changes here and open the latest version"
                  onClick={() => {
                    if (!useGraphStore.getState().dirty || window.confirm("Discard your unsaved changes and reload?")) void load();
                  }}
                >
                  {merging ? "Discard mine and reload" : "Reload"}
                </button>
              )}
              {showProblems && shown > 0 && (
                <button
                  type="button"
                  className="link-button"
                  data-action="toggle-problems"
                  aria-expanded={problemsOpen}
                  onClick={() => setProblemsOpen((v) => !v)}
                >
                  {problemsOpen ? `▾ Hide ${problemsLabel(errors.length, warnings.length)}` : `▸ Show ${problemsLabel(errors.length, warnings.length)}`}
                </button>
              )}
              <button
                type="button"
                className="icon-button dismiss"
                aria-label="Dismiss (Esc)"
                title="Dismiss (Esc)"
                data-action="dismiss-status"
                onClick={() => {
                  setStatus(null);
                  setShowProblems(false);
                }}
              >
                ×
              </button>
            </div>
            {merging && (
              <MergePanel
                key={`${merging.theirs.version}`}
                conflicts={merging.result.conflicts}
                version={merging.theirs.version}
                onResolve={(choices) => {
                  const note = mergeWith(merging.theirs, choices);
                  if (note !== null) void save(note);
                }}
                onCancel={() => {
                  setMerging(null);
                  setStatus({ kind: "warn", text: "Not saved: the workflow was saved elsewhere. Save again to merge." });
                }}
              />
            )}
            {showProblems && problemsOpen && shown > 0 && <ProblemList errors={errors} warnings={warnings} />}
          </div>
        )}
      </div>
      <div className="editor-body">
        <Palette catalogue={catalogue} />
        <Canvas key={loadCount} catalogue={catalogue} />
        <ConfigPanel workflowId={workflowId} />
      </div>
      <section className={`run-dock${runOpen ? "" : " collapsed"}`} aria-label="Run">
        <div className="run-dock-bar" onPointerDown={runOpen ? startResize : undefined}>
          <button type="button" className="link-button" data-action="toggle-run" onClick={() => setRunOpen((v) => !v)}>
            {runOpen ? "▾ Run" : "▸ Run"}
          </button>
        </div>
        {/* Kept mounted while collapsed: it follows the workflow's runs (the canvas shows them). */}
        <div className="run-dock-body" hidden={!runOpen}>
          <RunPanel workflow={workflow} onBeforeRun={saveIfDirty} />
        </div>
      </section>
    </div>
  );
}

function ProblemList({ errors, warnings }: { errors: ValidationError[]; warnings: ValidationError[] }) {
  const listed = [...errors.map((e) => ({ ...e, warning: false })), ...warnings.map((w) => ({ ...w, warning: true }))];
  return (
    <ul className="problem-list" data-testid="validation-list">
      {listed.map((e, i) => (
        <li
          key={i}
          className={e.warning ? "warning" : undefined}
          data-error-block={e.warning ? undefined : (e.block_id ?? "")}
          data-warning-block={e.warning ? (e.block_id ?? "") : undefined}
          data-error-field={e.field}
        >
          {e.warning && <span className="problem-kind">warning</span>}
          <button
            type="button"
            className="link-button"
            disabled={!e.block_id}
            title={e.block_id ? `Show ${e.block ?? "the block"} · ${e.field}` : undefined}
            onClick={() => e.block_id && showBlockField(e.block_id, e.field)}
          >
            <strong>{e.block ?? "workflow"}</strong> · <code>{e.field}</code>
          </button>{" "}
          {e.message}
          <AddSecretLink error={e} />
        </li>
      ))}
    </ul>
  );
}

function WorkflowName({ workflow, onRenamed }: { workflow: Workflow; onRenamed: (wf: Workflow) => void }) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(workflow.name);
  const [error, setError] = useState<string | null>(null);
  const finish = async () => {
    const name = draft.trim();
    setEditing(false);
    if (!name || name === workflow.name) {
      setDraft(workflow.name);
      return;
    }
    try {
      onRenamed(await api.renameWorkflow(workflow.id, name));
      setError(null);
    } catch (e) {
      setDraft(workflow.name);
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  if (editing) {
    return (
      <input
        className="workflow-name-input"
        data-field="workflow-name"
        aria-label="Workflow name"
        autoFocus
        value={draft}
        maxLength={200}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={() => void finish()}
        onKeyDown={(e) => {
          if (e.key === "Enter") (e.target as HTMLInputElement).blur();
          if (e.key === "Escape") {
            setDraft(workflow.name);
            setEditing(false);
          }
        }}
      />
    );
  }
  return (
    <>
      <button
        type="button"
        className="workflow-name"
        data-testid="workflow-name"
        title="Rename"
        onClick={() => {
          setDraft(workflow.name);
          setEditing(true);
        }}
      >
        {workflow.name}
      </button>
      {error && <span className="error-text small">{error}</span>}
    </>
  );
}
