// The page at "/": the user's workflows and the template gallery.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { api } from "../api/client";
import { exportUrl } from "../api/workflowFile";
import { ImportButton } from "./ImportButton";
import type { TemplateSummary, Workflow } from "../types";
import { TemplatePicture } from "./TemplatePicture";
import "./WorkflowListPage.css";

function editorUrl(id: number): string {
  return `/workflows/${id}/`;
}


function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function when(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function WorkflowRow(props: { workflow: Workflow; onChanged: () => void; onError: (msg: string) => void }) {
  const { workflow, onChanged, onError } = props;
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(workflow.name);
  const [busy, setBusy] = useState(false);

  const act = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    try {
      await fn();
      onChanged();
    } catch (err) {
      onError(message(err));
    } finally {
      setBusy(false);
    }
  };

  const rename = (event: FormEvent) => {
    event.preventDefault();
    const trimmed = name.trim();
    if (!trimmed || trimmed === workflow.name) {
      setEditing(false);
      setName(workflow.name);
      return;
    }
    void act(async () => {
      await api.renameWorkflow(workflow.id, trimmed);
      setEditing(false);
    });
  };

  const remove = () => {
    if (!window.confirm(`Delete "${workflow.name}" and its runs? This cannot be undone.`)) return;
    void act(() => api.deleteWorkflow(workflow.id));
  };

  return (
    <tr data-testid="workflow-row" data-workflow-id={workflow.id}>
      <td className="wl-name">
        {editing ? (
          <form className="wl-inline" onSubmit={rename}>
            <input
              autoFocus
              value={name}
              maxLength={200}
              data-testid="rename-input"
              aria-label="Workflow name"
              onChange={(e) => setName(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === "Escape") {
                  setEditing(false);
                  setName(workflow.name);
                }
              }}
            />
            <button type="submit" className="wl-btn" data-testid="rename-save" disabled={busy}>
              Save
            </button>
          </form>
        ) : (
          <a href={editorUrl(workflow.id)} data-testid="workflow-link" className="wl-ellipsis" title={workflow.name}>
            {workflow.name}
          </a>
        )}
        {workflow.description && (
          <div className="wl-muted wl-ellipsis" title={workflow.description}>
            {workflow.description}
          </div>
        )}
      </td>
      <td className="wl-num" data-testid="workflow-version">
        {workflow.version ?? "—"}
      </td>
      <td className="wl-muted">{when(workflow.updated_at)}</td>
      <td className="wl-actions">
        <div className="wl-actions-row">
          <a className="wl-btn" href={editorUrl(workflow.id)} data-testid="open-workflow">
            Open
          </a>
          <button
            type="button"
            className="wl-btn"
            data-testid="rename-workflow"
            disabled={busy || editing}
            onClick={() => {
              setName(workflow.name);
              setEditing(true);
            }}
          >
            Rename
          </button>
          <a className="wl-btn" href={exportUrl(workflow.id)} download data-testid="export-workflow" title="Download as JSON (secrets by name only)">
            Export
          </a>
          <button type="button" className="wl-btn" data-testid="duplicate-workflow" disabled={busy} onClick={() => void act(() => api.duplicateWorkflow(workflow.id))}>
            Duplicate
          </button>
          <button type="button" className="wl-btn wl-danger" data-testid="delete-workflow" disabled={busy} onClick={remove}>
            Delete
          </button>
        </div>
      </td>
    </tr>
  );
}

export function WorkflowListPage() {
  const [workflows, setWorkflows] = useState<Workflow[] | null>(null);
  const [templates, setTemplates] = useState<TemplateSummary[]>([]);
  const [newName, setNewName] = useState("");
  const [creating, setCreating] = useState(false);
  const [error, setError] = useState("");

  const load = useCallback(() => {
    api
      .workflows()
      .then((list) => setWorkflows([...list].sort((a, b) => b.updated_at.localeCompare(a.updated_at))))
      .catch((err: unknown) => setError(message(err)));
  }, []);

  useEffect(() => {
    load();
    api
      .templates()
      .then(setTemplates)
      .catch((err: unknown) => setError(message(err)));
  }, [load]);

  const create = async (event: FormEvent) => {
    event.preventDefault();
    setCreating(true);
    setError("");
    try {
      const workflow = await api.createWorkflow(newName.trim() || "Untitled workflow");
      window.location.assign(editorUrl(workflow.id));
    } catch (err) {
      setError(message(err));
      setCreating(false);
    }
  };

  const fromTemplate = async (slug: string) => {
    setCreating(true);
    setError("");
    try {
      const workflow = await api.fromTemplate(slug);
      window.location.assign(editorUrl(workflow.id));
    } catch (err) {
      setError(message(err));
      setCreating(false);
    }
  };

  return (
    <div className="wl-page">
      <header className="wl-header">
        <h1>Workflows</h1>
      </header>

      {error && (
        <p className="wl-error" data-testid="list-error">
          {error}
        </p>
      )}

      <section className="wl-section">
        <h2>New workflow</h2>
        <form className="wl-inline" onSubmit={create}>
          <input
            value={newName}
            placeholder="Untitled workflow"
            maxLength={200}
            aria-label="New workflow name"
            data-testid="new-workflow-name"
            onChange={(e) => setNewName(e.target.value)}
          />
          <button type="submit" className="wl-btn wl-primary" data-testid="new-workflow" disabled={creating}>
            New workflow
          </button>
          <ImportButton className="wl-btn" onError={setError} />
        </form>
      </section>

      {templates.length > 0 && (
        <section className="wl-section">
          <h2>New from template</h2>
          <div className="wl-templates">
            {templates.map((t) => (
              <div className="wl-template" key={t.slug}>
                <strong>{t.name}</strong>
                {t.preview && <TemplatePicture slug={t.slug} preview={t.preview} />}
                <p className="wl-muted">{t.description}</p>
                {t.pattern && (
                  <p className="wl-muted" data-testid={`template-pattern-${t.slug}`}>
                    <em>Pattern:</em> {t.pattern}
                  </p>
                )}
                <button
                  type="button"
                  className="wl-btn"
                  data-testid={`template-${t.slug}`}
                  disabled={creating}
                  onClick={() => void fromTemplate(t.slug)}
                >
                  Use template
                </button>
              </div>
            ))}
          </div>
        </section>
      )}

      <section className="wl-section">
        <h2>Your workflows</h2>
        {workflows === null ? (
          <p className="wl-muted">Loading…</p>
        ) : workflows.length === 0 ? (
          <p className="wl-muted" data-testid="no-workflows">
            No workflows yet.
          </p>
        ) : (
          <table className="wl-table" data-testid="workflow-table">
            <thead>
              <tr>
                <th className="wl-name-col">Name</th>
                <th>Version</th>
                <th>Updated</th>
                <th>
                  <span className="wl-sr">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {workflows.map((w) => (
                <WorkflowRow key={w.id} workflow={w} onChanged={load} onError={setError} />
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
