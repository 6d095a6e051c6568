// The workflow's versions: who saved each and when, which one is live and which is the
// draft; compare any two, restore one as the new draft, publish one.
import { useCallback, useEffect, useState } from "react";
import { ApiError, api } from "../api/client";
import type { ValidationError, VersionDiff, VersionSummary, Workflow } from "../types";
import { DiffView } from "./DiffView";
import "./versions.css";

function when(iso: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** How many of a refused publish's problems are listed; the rest are counted. */
export const PUBLISH_ERRORS_SHOWN = 10;

/** A refused publish's problems, each with its block and field ("enrich · query: invalid
 * JMESPath…"), the first PUBLISH_ERRORS_SHOWN of them and "… N more". */
export function publishErrorLines(body: unknown, limit = PUBLISH_ERRORS_SHOWN): string[] {
  const errors = body && typeof body === "object" ? (body as { errors?: unknown }).errors : null;
  if (!Array.isArray(errors)) return [];
  const lines = errors
    .filter((e): e is Partial<ValidationError> => Boolean(e) && typeof e === "object")
    .map((e) => {
      const where = [e.block || e.block_id || "", e.field || ""].filter(Boolean).join(" · ");
      const message = typeof e.message === "string" ? e.message : "";
      return where ? `${where}: ${message}` : message;
    })
    .filter(Boolean);
  if (lines.length <= limit) return lines;
  return [...lines.slice(0, limit), `… ${lines.length - limit} more`];
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
  const [problems, setProblems] = useState<string[]>([]);
  // An error and the problems listed under it (none but a refused publish's) go together.
  const fail = useCallback((text: string, lines: string[] = []) => {
    setError(text);
    setProblems(lines);
  }, []);

  const reload = useCallback(() => {
    let ignore = false;
    api
      .versions(workflow.id, page)
      .then((data) => {
        if (ignore) return;
        setVersions(data.results);
        setHasNext(Boolean(data.next));
      })
      .catch((err: unknown) => !ignore && fail(err instanceof Error ? err.message : String(err)));
    return () => {
      ignore = true;
    };
  }, [workflow.id, page, fail]);

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
    fail("");
    try {
      setDiff(await api.versionDiff(workflow.id, from, to));
    } catch (err) {
      fail(err instanceof Error ? err.message : String(err));
    }
  };

  const restore = async (number: number) => {
    const ask = dirty
      ? `Restore v${number} as the new draft? Your unsaved changes on the canvas will be lost.`
      : `Restore v${number} as the new draft? The live version does not change until you publish.`;
    if (!window.confirm(ask)) return;
    fail("");
    try {
      onChanged(await api.restoreVersion(workflow.id, number), true);
    } catch (err) {
      fail(err instanceof Error ? err.message : String(err));
    }
  };

  const publish = async (number: number) => {
    // As weighty as a restore (production changes at once): asked the same way.
    const live = workflow.published_version ? ` (instead of v${workflow.published_version})` : "";
    if (!window.confirm(`Publish v${number}? The webhook and the API will run v${number} from then on${live}.`)) return;
    fail("");
    try {
      onChanged(await api.publish(workflow.id, "", number), false);
    } catch (err) {
      const lines = err instanceof ApiError ? publishErrorLines(err.body) : [];
      const reason = err instanceof Error ? err.message : String(err);
      if (lines.length === 1) {
        fail(`v${number} was not published: ${lines[0]}`);
      } else {
        fail(`v${number} was not published: ${reason}`, lines);
      }
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
        <div className="versions-error" role="alert" data-testid="versions-error">
          {error}
          {problems.length > 0 && (
            <ul className="versions-problems">
              {problems.map((line, i) => (
                <li key={i} data-testid="publish-problem">
                  {line}
                </li>
              ))}
            </ul>
          )}
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
