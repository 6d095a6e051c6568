// How to trigger the workflow from outside: its URL, a ready curl line, the signing secret.
import { useState } from "react";
import { api } from "../api/client";
import type { Workflow } from "../types";

/** Single-quotes a string for a POSIX shell. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export function curlCommand(url: string, body: string): string {
  const safeUrl = /^[A-Za-z0-9_\-.:/~%+@]+$/.test(url) ? url : shellQuote(url);
  return `curl -X POST -H 'Content-Type: application/json' --data ${shellQuote(body)} ${safeUrl}`;
}

async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

function CopyButton(props: { text: string; testId: string }) {
  const [state, setState] = useState<"" | "copied" | "failed">("");
  return (
    <button
      type="button"
      className="kr-btn"
      data-testid={props.testId}
      onClick={async () => {
        setState((await copyText(props.text)) ? "copied" : "failed");
        setTimeout(() => setState(""), 1500);
      }}
    >
      {state === "copied" ? "Copied" : state === "failed" ? "Select and copy" : "Copy"}
    </button>
  );
}

export function WebhookTab(props: { workflow: Workflow; input: unknown; inputText: string }) {
  const { workflow, input, inputText } = props;
  const [secret, setSecret] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");

  if (!workflow.webhook_url) {
    return <p className="kr-muted">This workflow has no webhook URL yet: save it first.</p>;
  }
  const body = input === null ? inputText : JSON.stringify(input);
  const curl = curlCommand(workflow.webhook_url, body);

  const rotate = async () => {
    if (secret !== null && !window.confirm("Replace the signing secret? Senders using the current one will be refused.")) return;
    setBusy(true);
    setError("");
    try {
      setSecret((await api.rotateSecret(workflow.id)).signing_secret);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="kr-webhook">
      <label className="kr-label">Webhook URL</label>
      <div className="kr-row">
        <code className="kr-code kr-grow" data-testid="webhook-url">
          {workflow.webhook_url}
        </code>
        <CopyButton text={workflow.webhook_url} testId="copy-webhook-url" />
      </div>
      <label className="kr-label">Trigger it with the current input</label>
      <div className="kr-row">
        <code className="kr-code kr-grow kr-wrap" data-testid="curl-command">
          {curl}
        </code>
        <CopyButton text={curl} testId="copy-curl" />
      </div>
      <label className="kr-label">Signing secret</label>
      <p className="kr-muted">
        With a secret set, requests must carry <code>X-Klyntos-Signature: t=&lt;unix seconds&gt;,v1=&lt;hex&gt;</code> where
        v1 is HMAC-SHA256(secret, "&lt;t&gt;." + raw body). Creating a new one replaces the old one.
      </p>
      <button type="button" className="kr-btn" data-testid="rotate-secret" disabled={busy} onClick={rotate}>
        {busy ? "Working…" : "Create/Rotate signing secret"}
      </button>
      {error && <p className="kr-error">{error}</p>}
      {secret !== null && (
        <div className="kr-secret">
          <p className="kr-warn" data-testid="secret-warning">
            Copy this secret now: it will not be shown again.
          </p>
          <div className="kr-row">
            <code className="kr-code kr-grow" data-testid="signing-secret">
              {secret}
            </code>
            <CopyButton text={secret} testId="copy-secret" />
          </div>
        </div>
      )}
    </div>
  );
}
