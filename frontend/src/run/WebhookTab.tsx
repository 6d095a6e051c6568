// How to trigger the workflow from outside: its URL, the body as a file, a ready curl line
// (signed with openssl when the webhook has a signing secret) and the signing secret itself.
import { useEffect, useRef, useState } from "react";
import { api } from "../api/client";
import type { Workflow } from "../types";
import { byteSize, sizeOver, utf8Bytes } from "./bodySize";

/** Single-quotes a string for a POSIX shell. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function shellUrl(url: string): string {
  return /^[A-Za-z0-9_\-.:/~%+@]+$/.test(url) ? url : shellQuote(url);
}

/** A curl line with the body inline (short bodies, tests). */
export function curlCommand(url: string, body: string): string {
  return `curl -X POST -H 'Content-Type: application/json' --data ${shellQuote(body)} ${shellUrl(url)}`;
}

export const BODY_FILE = "body.json";
export const SECRET_VAR = "KLYNTOS_SIGNING_SECRET";

/** A compact curl line that posts body.json as-is (--data-binary keeps its bytes). */
export function curlFileCommand(url: string): string {
  return `curl -X POST -H 'Content-Type: application/json' --data-binary @${BODY_FILE} ${shellUrl(url)}`;
}

/**
 * A shell snippet that signs body.json and posts it: X-Klyntos-Signature: t=<unix>,v1=<hex>,
 * v1 = HMAC-SHA256(secret, "<t>." + raw body). The secret is written in only when known
 * (right after it was created); otherwise $KLYNTOS_SIGNING_SECRET must be set.
 */
export function signedSnippet(url: string, secret: string | null): string {
  return [
    secret !== null
      ? `${SECRET_VAR}=${shellQuote(secret)}`
      : `: "\${${SECRET_VAR}:?set it to this webhook's signing secret}"`,
    "T=$(date +%s)",
    `SIG=$({ printf '%s.' "$T"; cat ${BODY_FILE}; } | openssl dgst -sha256 -hmac "$${SECRET_VAR}" | awk '{print $NF}')`,
    `curl -X POST -H 'Content-Type: application/json' -H "X-Klyntos-Signature: t=$T,v1=$SIG" --data-binary @${BODY_FILE} ${shellUrl(url)}`,
  ].join("\n");
}

export type SecretState = "set" | "not set" | "unknown";

// Rotations made in this browser tab since the workflow was loaded (the loaded workflow's
// `webhook_signed` predates them): survives the tab or the run panel being closed.
const rotated = new Set<number>();

export function secretState(workflow: Workflow): SecretState {
  const known = workflow.webhook_signed;
  if (typeof known === "boolean") return known || rotated.has(workflow.id) ? "set" : "not set";
  return rotated.has(workflow.id) ? "set" : "unknown";
}

async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

function CopyButton(props: { text: string; testId: string; label?: string }) {
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
      {state === "copied" ? "Copied" : state === "failed" ? "Select and copy" : (props.label ?? "Copy")}
    </button>
  );
}

function downloadText(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** What to tell before a post the webhook would refuse (413), or "" when the body fits. */
export function tooLargeNote(bytes: number, limit: number | undefined): string {
  if (limit === undefined || bytes <= limit) return "";
  return (
    `This body is ${sizeOver(bytes, limit)}, over the webhook's limit of ${byteSize(limit)} ` +
    `(${limit} bytes, KLYNTOS_WEBHOOK_MAX_BYTES): the server will refuse it with 413. Raise that setting, ` +
    "split the batch, or start it from the Run panel or the CLI."
  );
}

export function WebhookTab(props: { workflow: Workflow; input: unknown; inputText: string }) {
  const { workflow, input, inputText } = props;
  // The secret is known here only right after it was created (the server keeps it encrypted).
  const [secret, setSecret] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [, setVersion] = useState(0);
  const secretBox = useRef<HTMLDivElement>(null);
  // The new secret shows at the top of the tab: bring it into view (the tab may be scrolled).
  useEffect(() => {
    if (secret !== null) secretBox.current?.scrollIntoView?.({ block: "nearest" });
  }, [secret]);

  if (!workflow.webhook_url) {
    return <p className="kr-muted">This workflow has no webhook URL yet: save it first.</p>;
  }
  const body = input === null ? inputText : JSON.stringify(input);
  const bodyBytes = utf8Bytes(body);
  const tooLarge = tooLargeNote(bodyBytes, workflow.webhook_max_bytes);
  const state: SecretState = secret !== null ? "set" : secretState(workflow);
  const signed = state !== "not set";
  const command = signed ? signedSnippet(workflow.webhook_url, secret) : curlFileCommand(workflow.webhook_url);

  const rotate = async () => {
    const question =
      state === "not set"
        ? "Create a signing secret? From then on, unsigned requests to this webhook are refused."
        : "Create a new signing secret? It replaces the current one (if any): senders using the old one will be refused.";
    if (!window.confirm(question)) return;
    setBusy(true);
    setError("");
    try {
      const value = (await api.rotateSecret(workflow.id)).signing_secret;
      rotated.add(workflow.id);
      setSecret(value);
      setVersion((v) => v + 1);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="kr-webhook">
      {secret !== null && (
        <div className="kr-secret kr-secret-new" ref={secretBox}>
          <p className="kr-warn" data-testid="secret-warning">
            New signing secret: copy it now, it will not be shown again. The command below includes it.
          </p>
          <div className="kr-row">
            <code className="kr-code kr-grow" data-testid="signing-secret">
              {secret}
            </code>
            <CopyButton text={secret} testId="copy-secret" />
          </div>
        </div>
      )}
      <label className="kr-label">Webhook URL</label>
      <div className="kr-row">
        <code className="kr-code kr-grow" data-testid="webhook-url">
          {workflow.webhook_url}
        </code>
        <CopyButton text={workflow.webhook_url} testId="copy-webhook-url" />
      </div>

      <label className="kr-label">Signing secret</label>
      <div className="kr-row">
        <span className={`kr-badge kr-secret-${state.replace(" ", "-")}`} data-testid="signing-state" data-state={state}>
          {state}
        </span>
        <span className="kr-muted kr-small kr-grow">
          {state === "set"
            ? "Requests must be signed."
            : state === "not set"
              ? "Unsigned requests are accepted."
              : "Not known on this page (it was not created here): if one is set, requests must be signed."}
        </span>
        <button type="button" className="kr-btn" data-testid="rotate-secret" disabled={busy} onClick={rotate}>
          {busy ? "Working…" : state === "not set" ? "Create signing secret" : "Rotate signing secret"}
        </button>
      </div>
      {error && <p className="kr-error">{error}</p>}

      <label className="kr-label">Trigger it with the current input</label>
      <div className="kr-row kr-small">
        <span className="kr-grow">
          <code>{BODY_FILE}</code> <span className="kr-muted">({byteSize(bodyBytes)}{input === null ? ", not valid JSON" : ""})</span>
        </span>
        <button type="button" className="kr-btn" data-testid="download-body" onClick={() => downloadText(BODY_FILE, body)}>
          Download {BODY_FILE}
        </button>
        <CopyButton text={body} testId="copy-body" label="Copy body" />
      </div>
      {tooLarge && (
        <p className="kr-warn" data-testid="webhook-too-large">
          {tooLarge}
        </p>
      )}
      {signed && (
        <p className="kr-muted kr-small" data-testid="signature-note">
          Signed requests carry <code>X-Klyntos-Signature: t=&lt;unix seconds&gt;,v1=&lt;hex&gt;</code>, v1 being the
          HMAC-SHA256 of <code>"&lt;t&gt;." + raw body</code> with the secret. This snippet computes it with openssl
          {secret !== null ? (
            " and includes the new secret."
          ) : (
            <>
              ; set <code>${SECRET_VAR}</code> to the secret first (it is shown only when created).
            </>
          )}
        </p>
      )}
      <div className="kr-row kr-cmd">
        <pre className="kr-code kr-grow kr-snippet" data-testid="curl-command">
          {command}
        </pre>
        <CopyButton text={command} testId="copy-curl" />
      </div>
    </div>
  );
}
