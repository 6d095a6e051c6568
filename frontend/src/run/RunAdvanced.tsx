// A run's advanced start options (POST /api/workflows/<id>/runs/ {weight, priority, defer}):
// its weight and priority among the owner's own runs sharing a provider (owners share a
// provider equally, whatever these say), and "defer to off-peak" (outside the operator's
// off-peak hours the run waits, `deferred`, until they begin). The bounds are the server's.
import { useId, useState } from "react";
import type { RunStartOptions } from "../types";

export const MIN_RUN_WEIGHT = 0.01;
export const MAX_RUN_WEIGHT = 100;
export const MAX_RUN_PRIORITY = 100;

/** What the user typed, kept as text (an empty field is the server's default). */
export interface AdvancedText {
  weight: string;
  priority: string;
  offPeak: boolean;
}

export const NO_ADVANCED: AdvancedText = { weight: "", priority: "", offPeak: false };

export type ParsedAdvanced = { ok: true; value: RunStartOptions } | { ok: false; errors: { weight?: string; priority?: string } };

export function parseAdvanced(text: AdvancedText): ParsedAdvanced {
  const value: RunStartOptions = {};
  const errors: { weight?: string; priority?: string } = {};
  const weight = text.weight.trim();
  if (weight) {
    const number = Number(weight);
    if (!Number.isFinite(number)) errors.weight = "a number, like 2";
    else if (number < MIN_RUN_WEIGHT || number > MAX_RUN_WEIGHT) errors.weight = `from ${MIN_RUN_WEIGHT} to ${MAX_RUN_WEIGHT}`;
    else value.weight = number;
  }
  const priority = text.priority.trim();
  if (priority) {
    const number = Number(priority);
    if (!/^[+-]?\d+$/.test(priority) || !Number.isSafeInteger(number)) errors.priority = "a whole number, like 5 or -3";
    else if (Math.abs(number) > MAX_RUN_PRIORITY) errors.priority = `from -${MAX_RUN_PRIORITY} to ${MAX_RUN_PRIORITY}`;
    else value.priority = number;
  }
  if (text.offPeak) value.defer = "off_peak";
  return errors.weight || errors.priority ? { ok: false, errors } : { ok: true, value };
}

/** "weight 2 · priority 5 · off-peak": what the closed disclosure says is set. */
export function advancedLabel(value: RunStartOptions): string {
  const parts = [];
  if (value.weight !== undefined) parts.push(`weight ${value.weight}`);
  if (value.priority !== undefined) parts.push(`priority ${value.priority}`);
  if (value.defer) parts.push("off-peak");
  return parts.join(" · ");
}

/** Why "defer to off-peak" cannot be chosen: the server has no off-peak window. */
export const NO_OFF_PEAK_HINT =
  "No off-peak window is configured on this server (KLYNTOS_OFF_PEAK_HOURS): there is nothing to defer to.";

/** The refusal a deferred start gets from a server without an off-peak window. */
export function isNoOffPeakRefusal(message: string): boolean {
  return /no off-peak window is configured/i.test(message);
}

export function RunAdvanced(props: {
  text: AdvancedText;
  onChange: (text: AdvancedText) => void;
  parsed: ParsedAdvanced;
  /** False when the server has no off-peak window (said by the workflow or by a refusal). */
  offPeakAvailable?: boolean;
}) {
  const { text, onChange, parsed, offPeakAvailable = true } = props;
  const id = useId();
  const errors = parsed.ok ? {} : parsed.errors;
  const set = parsed.ok ? advancedLabel(parsed.value) : "";
  // Opened by the user (kept while they edit), or by a mistake in it (shown, never hidden).
  const [opened, setOpened] = useState(false);
  return (
    <details
      className="kr-advanced"
      data-testid="run-advanced"
      open={opened || !parsed.ok}
      onToggle={(e) => setOpened((e.currentTarget as HTMLDetailsElement).open)}
    >
      <summary data-testid="run-advanced-toggle">
        Advanced{set && <span className="kr-muted" data-testid="run-advanced-summary"> · {set}</span>}
      </summary>
      <div className="kr-advanced-body">
        <OptionField
          id={`${id}-weight`}
          label="Weight"
          testId="run-weight"
          inputMode="decimal"
          placeholder="1"
          value={text.weight}
          onChange={(weight) => onChange({ ...text, weight })}
          error={errors.weight}
          help={`${MIN_RUN_WEIGHT}–${MAX_RUN_WEIGHT}: this run's share of a busy provider beside your other runs (2 gets twice the calls of 1).`}
        />
        <OptionField
          id={`${id}-priority`}
          label="Priority"
          testId="run-priority"
          inputMode="numeric"
          placeholder="0"
          value={text.priority}
          onChange={(priority) => onChange({ ...text, priority })}
          error={errors.priority}
          help={`-${MAX_RUN_PRIORITY} to ${MAX_RUN_PRIORITY}: your runs with a higher priority call a busy provider first.`}
        />
        <p className="kr-muted kr-small">Other people's runs share a provider with yours equally, whatever weight or priority you set.</p>
        <label className="kr-check" title={offPeakAvailable ? undefined : NO_OFF_PEAK_HINT}>
          <input
            type="checkbox"
            data-testid="run-off-peak"
            checked={offPeakAvailable && text.offPeak}
            disabled={!offPeakAvailable}
            aria-describedby={offPeakAvailable ? undefined : `${id}-off-peak-hint`}
            onChange={(e) => onChange({ ...text, offPeak: e.target.checked })}
          />{" "}
          Defer to off-peak hours (outside them the run waits, deferred, until they begin)
        </label>
        {!offPeakAvailable && (
          <p id={`${id}-off-peak-hint`} className="kr-muted kr-small" data-testid="run-off-peak-hint">
            {NO_OFF_PEAK_HINT}
          </p>
        )}
      </div>
    </details>
  );
}

/** One number option: its label, the input, its bounds as help and its error, tied to the
 * input for screen readers (aria-describedby, aria-invalid; the error is announced). */
function OptionField(props: {
  id: string;
  label: string;
  testId: string;
  inputMode: "decimal" | "numeric";
  placeholder: string;
  value: string;
  onChange: (value: string) => void;
  error?: string;
  help: string;
}) {
  const { id, label, testId, error } = props;
  return (
    <>
      <label className="kr-label" htmlFor={id}>
        {label}
      </label>
      <div className="kr-row">
        <input
          id={id}
          className={error ? "kr-input-small kr-invalid" : "kr-input-small"}
          data-testid={testId}
          inputMode={props.inputMode}
          placeholder={props.placeholder}
          value={props.value}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? `${id}-help ${id}-error` : `${id}-help`}
          onChange={(e) => props.onChange(e.target.value)}
        />
        <span id={`${id}-help`} className="kr-muted kr-small">
          {props.help}
        </span>
      </div>
      {error && (
        <p id={`${id}-error`} className="kr-error" role="alert" data-testid={`${testId}-error`}>
          {label}: {error}
        </p>
      )}
    </>
  );
}
