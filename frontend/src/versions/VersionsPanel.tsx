// The workflow's versions: who saved each and when, which one is live and which is the
// draft; compare any two, restore one as the new draft, publish one.
import { useCallback, useEffect, useState } from "react";
import { ApiError, api } from "../api/client";
import type { VersionDiff, VersionSummary, Workflow } from "../types";
import { DiffView } from "./DiffView";
import "./versions.css";

function when(iso: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function VersionsPanel(props: {
  workflow: Workflow;
  dirty: boolean;
  onChanged: (workflow: Workflow, reloadGraph: boolean) => void;
  onClose: () => void;
}) {
  const { workflow, dirty, onChanged, onClose } = props;
  const [page, setPage] = useState(1);
  const [versions, setVersions] = useState<VersionSummary[] | null>(null);
  const [hasNext, setHasNext] = useState(false);
  const [from, setFrom] = useState<number | null>(null);
  const [to, setTo] = useState<number | null>(null);
  const [diff, setDiff] = useState<VersionDiff | null>(null);
  const [error, setError] = useState("");

  const reload = useCallback(() => {
    let ignore = false;
    api
      .versions(workflow.id, page)
      .then((data) => {
        if (ignore) return;
        setVersions(data.results);
        setHasNext(Boolean(data.next));
      })
      .catch((err: unknown) => !ignore && setError(err instanceof Error ? err.message : String(err)));
    return () => {
      ignore = true;
    };
  }, [workflow.id, page]);

  useEffect(() => reload(), [reload, workflow.version, workflow.published_version]);

  // Default comparison: what is live against the draft (or the two newest).
  useEffect(() => {
    if (!versions?.length || from !== null) return;
    const draft = workflow.version ?? versions[0].number;
    const live = workflow.published_version ?? versions[Math.min(1, versions.length - 1)].number;
    setFrom(Math.min(live, draft));
    setTo(draft);
  }, [versions, from, workflow.version, workflow.published_version]);

  const compare = async () => {
    if (from === null || to === null) return;
    setError("");
    try {
      setDiff(await api.versionDiff(workflow.id, from, to));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };

  const restore = async (number: number) => {
    const ask = dirty
      ? `Restore v${number} as the new draft? Your unsaved changes on the canvas will be lost.`
      : `Restore v${number} as the new draft? The live version does not change until you publish.`;
    if (!window.confirm(ask)) return;
    setError("");
    try {
      onChanged(await api.restoreVersion(workflow.id, number), true);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };

  const publish = async (number: number) => {
    setError("");
    try {
      onChanged(await api.publish(workflow.id, "", number), false);
    } catch (err) {
      const body = err instanceof ApiError ? (err.body as { errors?: { message: string }[] } | null) : null;
      const first = body?.errors?.[0]?.message;
      setError(`v${number} was not published: ${first ?? (err instanceof Error ? err.message : String(err))}`);
    }
  };

  const numbers = versions?.map((v) => v.number) ?? [];
  return (
    <aside className="versions-panel" data-testid="versions-panel" aria-label="Versions">
      <header>
        <h2>Versions</h2>
        <button type="button" className="icon-button" aria-label="Close versions" onClick={onClose}>
          ×
        </button>
      </header>
      {error && (
        <div className="versions-error" role="alert">
          {error}
        </div>
      )}
      <div className="versions-compare">
        Compare
        <select aria-label="From version" value={from ?? ""} onChange={(e) => setFrom(Number(e.target.value))}>
          {numbers.map((n) => (
            <option key={n} value={n}>
              v{n}
            </option>
          ))}
        </select>
        with
        <select aria-label="To version" value={to ?? ""} onChange={(e) => setTo(Number(e.target.value))}>
          {numbers.map((n) => (
            <option key={n} value={n}>
              v{n}
            </option>
          ))}
        </select>
        <button type="button" className="btn small" data-action="compare-versions" onClick={() => void compare()}>
          Show diff
        </button>
      </div>
      {diff && <DiffView diff={diff} />}
      {versions === null ? (
        <p className="muted">Loading…</p>
      ) : (
        <ol className="versions-list">
          {versions.map((v) => (
            <li key={v.number} data-testid="version-row" data-version={v.number}>
              <div className="version-line">
                <strong>v{v.number}</strong>
                {v.live && <span className="badge live">live</span>}
                {v.draft && <span className="badge draft">draft</span>}
                <span className="muted">
                  {when(v.created_at)}
                  {v.created_by ? ` · ${v.created_by}` : ""}
                </span>
              </div>
              {v.message && <div className="version-message">{v.message}</div>}
              <div className="version-actions">
                {!v.draft && (
                  <button type="button" className="btn small" data-action="restore-version" onClick={() => void restore(v.number)}>
                    Restore as draft
                  </button>
                )}
                {!v.live && (
                  <button type="button" className="btn small" data-action="publish-version" onClick={() => void publish(v.number)}>
                    Publish
                  </button>
                )}
              </div>
            </li>
          ))}
        </ol>
      )}
      <div className="versions-pages">
        <button type="button" className="btn small" disabled={page <= 1} onClick={() => setPage((p) => p - 1)}>
          Newer
        </button>
        <button type="button" className="btn small" disabled={!hasNext} onClick={() => setPage((p) => p + 1)}>
          Older
        </button>
      </div>
    </aside>
  );
}
