// The page at "/secrets/": the user's secret names (never values), the workflows that read
// each one, and forms to add, replace and delete. `?add=NAME` (the editor's link on a
// missing `<env.NAME>`) opens the add form with that name.
import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import { api, type SecretSummary } from "../api/client";
import "./WorkflowListPage.css";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** builder/serializers.py's SecretWriteSerializer bounds. */
export const MAX_SECRET_NAME = 100;
export const MAX_SECRET_VALUE = 10000;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function nameProblem(name: string): string | null {
  if (!name) return "a name is required";
  if (!NAME.test(name)) return "a name is letters, digits and _ and starts with a letter or _";
  if (name.length > MAX_SECRET_NAME) return `at most ${MAX_SECRET_NAME} characters`;
  return null;
}

/** What deleting `secret` asks: what stops working, the live versions first (their webhook is
 * refused from then on), then the drafts that will fail validation. */
export function deleteConfirmation(secret: SecretSummary): string {
  const readers = secret.workflows ?? [];
  const names = (list: typeof readers) => list.map((w) => `'${w.name}'`).join(", ");
  const live = readers.filter((w) => w.live);
  const draftOnly = readers.filter((w) => !w.live);
  let text = `Delete the secret ${secret.name}?`;
  if (live.length === 1) {
    text += ` The live version of ${names(live)} reads it: its webhook, schedules and API runs will be refused until the secret is set again or a version without it is published.`;
  } else if (live.length) {
    text += ` The live versions of ${names(live)} read it: their webhooks, schedules and API runs will be refused until the secret is set again or versions without it are published.`;
  }
  if (draftOnly.length === 1) text += ` The draft of ${names(draftOnly)} reads it and will fail validation.`;
  else if (draftOnly.length) text += ` The drafts of ${names(draftOnly)} read it and will fail validation.`;
  return text;
}

function SecretRow({
  secret,
  onChanged,
  onError,
  onAdd,
}: {
  secret: SecretSummary;
  onChanged: (note: string) => void;
  onError: (m: string) => void;
  onAdd: (name: string) => void;
}) {
  const [replacing, setReplacing] = useState(false);
  const [value, setValue] = useState("");
  const [busy, setBusy] = useState(false);
  const replace = async (event: FormEvent) => {
    event.preventDefault();
    if (!value) return;
    setBusy(true);
    try {
      await api.setSecret(secret.name, value);
      setValue("");
      setReplacing(false);
      onChanged(`Replaced the value of ${secret.name}`);
    } catch (err) {
      onError(message(err));
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    const confirmation = deleteConfirmation(secret);
    if (!window.confirm(confirmation)) return;
    setBusy(true);
    try {
      // Asked with what a live version loses: the user's yes is the server's `force`.
      await api.deleteSecret(secret.name, (secret.workflows ?? []).some((w) => w.live));
      onChanged(`Deleted ${secret.name}`);
    } catch (err) {
      onError(message(err));
      setBusy(false);
    }
  };
  return (
    <tr data-testid="secret-row" data-secret={secret.name} data-missing={secret.missing ? "true" : undefined}>
      <td className="wl-name">
        <code>{secret.name}</code>
        {secret.missing && <strong className="wl-missing"> not set</strong>}
        <div className="wl-muted">
          {secret.workflows?.length ? (
            <>
              Used by{" "}
              {secret.workflows.map((w, i) => (
                <span key={w.id}>
                  {i ? ", " : ""}
                  <a href={`/workflows/${w.id}/`} data-testid="secret-used-by">
                    {w.name}
                  </a>
                </span>
              ))}
            </>
          ) : (
            "Not used by any workflow"
          )}
        </div>
      </td>
      <td className="wl-muted">{secret.updated_at ? new Date(secret.updated_at).toLocaleString() : ""}</td>
      <td className="wl-actions">
        {secret.missing ? (
          <button type="button" className="wl-btn wl-primary" data-testid="add-missing" onClick={() => onAdd(secret.name)}>
            Add
          </button>
        ) : replacing ? (
          <form className="wl-inline" onSubmit={replace}>
            <input
              type="password"
              autoFocus
              autoComplete="new-password"
              aria-label={`New value for ${secret.name}`}
              data-testid="replace-value"
              maxLength={MAX_SECRET_VALUE}
              value={value}
              onChange={(e) => setValue(e.target.value)}
            />
            <button type="submit" className="wl-btn wl-primary" disabled={busy || !value} data-testid="replace-save">
              Save
            </button>
            <button type="button" className="wl-btn" onClick={() => { setReplacing(false); setValue(""); }}>
              Cancel
            </button>
          </form>
        ) : (
          <div className="wl-actions-row">
            <button type="button" className="wl-btn" data-testid="replace-secret" disabled={busy} onClick={() => setReplacing(true)}>
              Replace value
            </button>
            <button type="button" className="wl-btn wl-danger" data-testid="delete-secret" disabled={busy} onClick={() => void remove()}>
              Delete
            </button>
          </div>
        )}
      </td>
    </tr>
  );
}

export function SecretsPage() {
  const wanted = new URLSearchParams(window.location.search).get("add") ?? "";
  const [secrets, setSecrets] = useState<SecretSummary[] | null>(null);
  const [name, setName] = useState(wanted.slice(0, MAX_SECRET_NAME));
  const [value, setValue] = useState("");
  const [error, setError] = useState("");
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const valueRef = useRef<HTMLInputElement>(null);

  const load = useCallback(() => {
    api
      .secrets()
      .then((list) => setSecrets(list))
      .catch((err: unknown) => setError(message(err)));
  }, [setSecrets, setError]);
  useEffect(() => {
    load();
    if (wanted) valueRef.current?.focus();
  }, [load, wanted]);

  const exists = secrets?.some((s) => s.name === name.trim() && !s.missing) ?? false;
  const add = async (event: FormEvent) => {
    event.preventDefault();
    const trimmed = name.trim();
    const problem = nameProblem(trimmed) ?? (value ? null : "a value is required");
    if (problem) {
      setError(problem);
      return;
    }
    // The same form adds and replaces: a name already taken asks before its value is lost.
    if (exists && !window.confirm(`A secret ${trimmed} exists: replace its value? Workflows reading it will use the new value.`)) return;
    setBusy(true);
    setError("");
    try {
      await api.setSecret(trimmed, value);
      setValue("");
      setName("");
      setNote(`${exists ? "Replaced" : "Added"} ${trimmed}`);
      load();
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="wl-page" data-testid="secrets-page">
      <header className="wl-header">
        <h1>Secrets</h1>
        <a href="/">← Workflows</a>
      </header>
      <p className="wl-muted">
        Blocks read a secret as <code>{"<env.NAME>"}</code>. Values are stored encrypted and never shown again: replace one
        to change it.
      </p>
      {error && (
        <p className="wl-error" data-testid="secrets-error" role="alert">
          {error}
        </p>
      )}
      {note && (
        <p className="wl-muted" data-testid="secrets-note" role="status">
          {note}
        </p>
      )}
      <section className="wl-section">
        <h2>{exists ? "Replace a secret" : "Add a secret"}</h2>
        <form className="wl-inline" onSubmit={add} autoComplete="off">
          <input
            value={name}
            placeholder="NAME"
            aria-label="Secret name"
            data-testid="secret-name"
            maxLength={MAX_SECRET_NAME}
            spellCheck={false}
            onChange={(e) => setName(e.target.value)}
          />
          <input
            ref={valueRef}
            type="password"
            value={value}
            placeholder="value"
            aria-label="Secret value"
            autoComplete="new-password"
            data-testid="secret-value"
            maxLength={MAX_SECRET_VALUE}
            onChange={(e) => setValue(e.target.value)}
          />
          <button type="submit" className="wl-btn wl-primary" data-testid="secret-save" disabled={busy}>
            {exists ? "Replace" : "Add"}
          </button>
        </form>
      </section>
      <section className="wl-section">
        <h2>Your secrets</h2>
        {secrets === null ? (
          <p className="wl-muted">Loading…</p>
        ) : secrets.length === 0 ? (
          <p className="wl-muted" data-testid="no-secrets">
            No secrets yet.
          </p>
        ) : (
          <table className="wl-table" data-testid="secret-table">
            <thead>
              <tr>
                <th className="wl-name-col">Name</th>
                <th>Updated</th>
                <th>
                  <span className="wl-sr">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {secrets.map((s) => (
                <SecretRow
                  key={`${s.missing ? "missing" : "set"}:${s.name}`}
                  secret={s}
                  onAdd={(wantedName) => {
                    setName(wantedName);
                    valueRef.current?.focus();
                  }}
                  onError={setError}
                  onChanged={(text) => {
                    setNote(text);
                    setError("");
                    load();
                  }}
                />
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
