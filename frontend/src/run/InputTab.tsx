// The run input: JSON typed or loaded from a file, checked as it is typed.
import { useState, type ChangeEvent } from "react";

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

export function InputTab(props: {
  text: string;
  onChange: (text: string) => void;
  parsed: ParsedInput;
  problems: RunProblem[];
}) {
  const { text, onChange, parsed, problems } = props;
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
