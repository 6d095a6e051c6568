// The run input: JSON typed or loaded from a file, checked as it is typed, and weighed
// against the server's request limit (KLYNTOS_REQUEST_MAX_BYTES) before Run sends it.
import { useState, type ChangeEvent } from "react";
import type { RunStartOptions } from "../types";
import { byteSize, sizeOver } from "./bodySize";

export type ParsedInput = { ok: true; value: unknown } | { ok: false; error: string };

export interface RunProblem {
  block: string | null;
  block_id?: string | null;
  field: string;
  message: string;
}

export function parseInput(text: string): ParsedInput {
  if (!text.trim()) return { ok: true, value: {} };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

export const CLI_INPUT_FILE = "input.json";

/**
 * The command that runs this input without the REST API (builder/management/commands/
 * run_workflow.py): the saved draft, as the Run button would, with the same options, as the
 * signed-in user (`username`, `signedInUsername()`); without it the command says where it goes.
 */
export function cliCommand(workflowId: number, options: RunStartOptions = {}, username = ""): string {
  const parts = ["python manage.py run_workflow", String(workflowId), `--input ${CLI_INPUT_FILE}`, "--draft"];
  if (options.weight !== undefined) parts.push(`--weight ${options.weight}`);
  if (options.priority !== undefined) parts.push(`--priority ${options.priority}`);
  if (options.defer) parts.push(`--defer ${options.defer}`);
  parts.push(`--user ${username ? shellWord(username) : "YOUR_USERNAME"}`);
  return parts.join(" ");
}

/** What to tell before a Run request the server would refuse (413), or "" when it fits. */
export function requestTooLargeNote(bytes: number, limit: number | undefined, username = ""): string {
  if (limit === undefined || bytes <= limit) return "";
  return (
    `The request for this input is ${sizeOver(bytes, limit)}, over the server's limit of ${byteSize(limit)} ` +
    `(${limit} bytes, KLYNTOS_REQUEST_MAX_BYTES): the server would refuse it with 413, so Run is disabled. ` +
    "Raise that setting and restart the server, split the input, or save it as " +
    `${CLI_INPUT_FILE} and run it from the command line, which reads the file directly, with no request limit` +
    (username ? ":" : " (YOUR_USERNAME: the name you sign in with):")
  );
}

/** A word as the shell reads it: quoted when it holds anything but safe characters. */
function shellWord(word: string): string {
  return /^[\w@.+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Who is signed in, as the page tells it: the root's `data-username` when the page has one,
 * else the name in the app bar (templates/app.html); "" when the page does not say.
 */
export function signedInUsername(doc: Document = document): string {
  const fromRoot = doc.getElementById("root")?.dataset.username;
  if (fromRoot) return fromRoot.trim();
  return doc.querySelector(".kl-bar > span")?.textContent?.trim() ?? "";
}

export function InputTab(props: {
  text: string;
  onChange: (text: string) => void;
  parsed: ParsedInput;
  problems: RunProblem[];
  /** The note over the request limit ("" when the request fits) and the command line to use instead. */
  tooLarge?: { note: string; command: string };
}) {
  const { text, onChange, parsed, problems, tooLarge } = props;
  const [fileError, setFileError] = useState("");

  const onFile = async (event: ChangeEvent<HTMLInputElement>) => {
    const file = event.target.files?.[0];
    event.target.value = "";
    if (!file) return;
    setFileError("");
    try {
      onChange(await file.text());
    } catch (err) {
      setFileError(`Could not read ${file.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  return (
    <div className="kr-input">
      <label className="kr-label" htmlFor="kr-run-input">
        Input (JSON), available to blocks as the trigger's body
      </label>
      <textarea
        id="kr-run-input"
        className={parsed.ok ? "kr-textarea" : "kr-textarea kr-invalid"}
        data-testid="run-input"
        spellCheck={false}
        value={text}
        onChange={(e) => onChange(e.target.value)}
        rows={12}
      />
      <div className="kr-row">
        <label className="kr-btn kr-file">
          Upload .json
          <input type="file" accept=".json,application/json" data-testid="input-file" onChange={onFile} />
        </label>
        <button
          type="button"
          className="kr-btn"
          disabled={!parsed.ok}
          onClick={() => parsed.ok && onChange(JSON.stringify(parsed.value, null, 2))}
        >
          Format
        </button>
      </div>
      {!parsed.ok && (
        <p className="kr-error" data-testid="input-error">
          Invalid JSON: {parsed.error}
        </p>
      )}
      {fileError && <p className="kr-error">{fileError}</p>}
      {parsed.ok && tooLarge?.note && (
        <p className="kr-warn" role="alert" data-testid="input-too-large">
          {tooLarge.note}{" "}
          <code className="kr-code kr-wrap" data-testid="input-cli-command">
            {tooLarge.command}
          </code>
        </p>
      )}
      {problems.length > 0 && (
        <ul className="kr-problems" data-testid="run-errors">
          {problems.map((p, i) => (
            <li key={i}>
              <strong>{p.block ?? "workflow"}</strong>
              {p.field ? ` · ${p.field}` : ""}: {p.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
