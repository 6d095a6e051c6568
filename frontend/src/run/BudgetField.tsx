// The workflow's dollar budget per run (PUT /api/workflows/<id>/ {budget_usd}): once a run has
// spent it, its loops start no more items (the ones in flight finish) and the rest are
// recorded not started. A run started over the API or the CLI can set its own.
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { Workflow } from "../types";

/** The typed text as a budget: null for none, a number ≥ 0, or what is wrong with it. */
export function parseBudget(text: string): { ok: true; value: number | null } | { ok: false; error: string } {
  const trimmed = text.trim().replace(/^\$/, "");
  if (!trimmed) return { ok: true, value: null };
  const value = Number(trimmed);
  if (!Number.isFinite(value)) return { ok: false, error: "a number of dollars, like 2.50" };
  if (value < 0) return { ok: false, error: "a budget cannot be negative" };
  return { ok: true, value };
}

/** Dollars as typed: 2.5, 0.000001 (never 1e-6), at most 6 decimals. */
export const plainDollars = (value: number) => value.toFixed(6).replace(/0+$/, "").replace(/\.$/, "");
const shown = (value: number | null | undefined) => (value === null || value === undefined ? "" : plainDollars(value));

export function BudgetField(props: { workflow: Workflow; onSaved?: (workflow: Workflow) => void }) {
  const { workflow, onSaved } = props;
  const [saved, setSaved] = useState<number | null>(workflow.budget_usd ?? null);
  const [text, setText] = useState(shown(workflow.budget_usd));
  const [status, setStatus] = useState<{ kind: "ok" | "error"; text: string } | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    setSaved(workflow.budget_usd ?? null);
    setText(shown(workflow.budget_usd));
    setStatus(null);
  }, [workflow.id, workflow.budget_usd]);

  const parsed = parseBudget(text);
  const changed = parsed.ok && parsed.value !== saved;

  const save = async () => {
    if (!parsed.ok || !changed || busy) return;
    setBusy(true);
    try {
      const answer = await api.setBudget(workflow.id, parsed.value);
      setSaved(answer.budget_usd ?? null);
      setText(shown(answer.budget_usd));
      setStatus({ kind: "ok", text: answer.budget_usd === null || answer.budget_usd === undefined ? "No budget" : `Budget set: $${plainDollars(answer.budget_usd)} per run` });
      onSaved?.(answer);
    } catch (error) {
      setStatus({ kind: "error", text: `Not set: ${error instanceof Error ? error.message : String(error)}` });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="kr-budget" data-testid="budget">
      <label className="kr-label" htmlFor="kr-budget-input">
        Budget per run (US$)
      </label>
      <div className="kr-row">
        <input
          id="kr-budget-input"
          className={parsed.ok ? "kr-input-small" : "kr-input-small kr-invalid"}
          data-testid="budget-input"
          inputMode="decimal"
          placeholder="none"
          value={text}
          onChange={(e) => {
            setText(e.target.value);
            setStatus(null);
          }}
          onKeyDown={(e) => e.key === "Enter" && void save()}
        />
        <button type="button" className="kr-btn" data-testid="budget-save" disabled={!changed || busy} onClick={() => void save()}>
          {parsed.ok && parsed.value === null && saved !== null ? "Remove budget" : "Set budget"}
        </button>
        <span className="kr-muted kr-small">
          Once a run has spent it, no more items start; those in flight finish and the rest are listed as not started.
        </span>
      </div>
      {!parsed.ok && (
        <p className="kr-error" data-testid="budget-error">
          Budget: {parsed.error}
        </p>
      )}
      {status && (
        <p className={status.kind === "error" ? "kr-error" : "kr-muted"} data-testid="budget-status">
          {status.text}
        </p>
      )}
    </div>
  );
}
