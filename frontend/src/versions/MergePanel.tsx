// The conflicts of a save refused because the workflow was saved elsewhere: each one with its
// block and field and both values, a choice per conflict (keep mine / take theirs) or for all,
// then Save merge. The changes that did not conflict are merged already (store/merge.ts).
import { useState } from "react";
import "./versions.css";
import { describeConflict, type Choices, type Conflict, type Side } from "../store/merge";

/** Rows shown: past it, Keep all mine / Take all theirs decide the rest. */
export const MAX_SHOWN_CONFLICTS = 100;
const MAX_VALUE_CHARS = 300;

// Coordinates mean nothing to read: a layout conflict says which tab did what.
const LAYOUT_WORDS: Record<string, string> = { position: "moved", style: "resized", size: "resized" };

function shown(conflict: Conflict, side: Side): string {
  const value = conflict[side];
  if (conflict.kind !== "field") return value === undefined ? "(deleted)" : "(kept, with its edits)";
  if (value === undefined) return "(removed)";
  const layout = conflict.field ? LAYOUT_WORDS[conflict.field] : undefined;
  if (layout) return `${layout} ${side === "mine" ? "here" : "elsewhere"}`;
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}…` : text;
}

export function MergePanel({
  conflicts,
  version,
  onResolve,
  onCancel,
}: {
  conflicts: Conflict[];
  /** The version saved elsewhere ("theirs"). */
  version: number | null;
  onResolve: (choices: Choices) => void;
  onCancel: () => void;
}) {
  const [choices, setChoices] = useState<Record<string, Side>>({});
  const all = (side: Side) => setChoices(Object.fromEntries(conflicts.map((c) => [c.key, side])));
  const missing = conflicts.filter((c) => !choices[c.key]).length;
  return (
    <section className="merge-panel" data-testid="merge-panel" aria-label="Merge conflicts">
      <p>
        <strong>
          {conflicts.length} conflicting change{conflicts.length === 1 ? "" : "s"}
        </strong>{" "}
        with v{version ?? "?"} saved elsewhere. Everything else is merged; choose for each:
      </p>
      <div className="merge-actions">
        <button type="button" className="btn small" data-action="keep-all-mine" onClick={() => all("mine")}>
          Keep all mine
        </button>
        <button type="button" className="btn small" data-action="take-all-theirs" onClick={() => all("theirs")}>
          Take all theirs
        </button>
      </div>
      <ul className="merge-list">
        {conflicts.slice(0, MAX_SHOWN_CONFLICTS).map((c) => (
          <li key={c.key} data-testid="merge-conflict" data-key={c.key} data-choice={choices[c.key] ?? ""}>
            <div>{describeConflict(c)}</div>
            <div className="merge-sides">
              {(["mine", "theirs"] as const).map((side) => (
                <label key={side} className={`merge-side${choices[c.key] === side ? " chosen" : ""}`}>
                  <input
                    type="radio"
                    name={`merge-${c.key}`}
                    data-action={side === "mine" ? "keep-mine" : "take-theirs"}
                    checked={choices[c.key] === side}
                    onChange={() => setChoices((now) => ({ ...now, [c.key]: side }))}
                  />
                  {side === "mine" ? "Keep mine" : "Take theirs"}
                  <pre>{shown(c, side)}</pre>
                </label>
              ))}
            </div>
          </li>
        ))}
      </ul>
      {conflicts.length > MAX_SHOWN_CONFLICTS && (
        <p className="muted">…and {conflicts.length - MAX_SHOWN_CONFLICTS} more: use Keep all mine or Take all theirs.</p>
      )}
      <div className="merge-actions">
        <button
          type="button"
          className="btn primary small"
          data-action="save-merge"
          disabled={missing > 0}
          title={missing ? `${missing} still to choose` : "Save the merged workflow"}
          onClick={() => onResolve(choices)}
        >
          Save merge
        </button>
        <button type="button" className="btn small" data-action="cancel-merge" onClick={onCancel}>
          Not now
        </button>
      </div>
    </section>
  );
}
