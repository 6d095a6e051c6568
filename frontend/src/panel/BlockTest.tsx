// "Test this block": run the selected block alone, for real, with inputs prefilled from its
// pins or the last run's step outputs (editable JSON), and see its output and its config as
// resolved (secrets masked by the server). Pins are test data saved on blocks with the draft;
// runs never read them.
import { useCallback, useEffect, useState } from "react";
import { ApiError, api } from "../api/client";
import { useGraphStore } from "../store/graphStore";
import type { BlockPin, BlockTestPlan, BlockTestResult, TestSource } from "../types";

const TRIGGERS = new Set(["webhook", "schedule"]);

/** `text` as a JSON object, or the reason it is not one. */
export function parseInputs(text: string, what = "Inputs"): { value?: Record<string, unknown>; error?: string } {
  if (!text.trim()) return { value: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `${what}: not valid JSON (${err instanceof Error ? err.message : String(err)})` };
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    return { error: `${what} must be a JSON object: each name the block reads, with its value` };
  }
  return { value: value as Record<string, unknown> };
}

function parseAny(text: string, what: string): { value?: unknown; error?: string } {
  if (!text.trim()) return { value: null };
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return { error: `${what}: not valid JSON (${err instanceof Error ? err.message : String(err)})` };
  }
}

/** The pins that hold these inputs: a block's output, or a loop's item (with its index). */
export function pinsForInputs(
  inputs: Record<string, unknown>,
  sources: Record<string, TestSource>,
  current: (blockId: string) => BlockPin | undefined,
): Record<string, BlockPin> {
  const pins: Record<string, BlockPin> = {};
  // An item typed under its own name wins over the `{index, item}` of its iteration.
  const order = Object.entries(inputs).sort(([a], [b]) => Number(sources[a]?.kind === "item") - Number(sources[b]?.kind === "item"));
  for (const [name, value] of order) {
    const source = sources[name];
    if (!source?.block) continue;
    const pin: BlockPin = { ...current(source.block), ...pins[source.block] };
    if (source.kind === "output") pin.output = value;
    else if (source.kind === "item") pin.item = value;
    else if (source.kind === "iteration" && value && typeof value === "object") {
      const iteration = value as { index?: unknown; item?: unknown };
      pin.item = iteration.item;
      pin.index = typeof iteration.index === "number" ? iteration.index : 0;
    } else continue;
    pin.run = null;
    pins[source.block] = pin;
  }
  return pins;
}

const pretty = (value: unknown) => JSON.stringify(value, null, 2) ?? "null";

const FROM_LABEL: Record<string, string> = { given: "typed", pin: "pinned", run: "last run", missing: "missing" };

export function BlockTest({ workflowId, blockId }: { workflowId: number; blockId: string }) {
  const blockType = useGraphStore((s) => s.nodes.find((n) => n.id === blockId)?.data.blockType ?? "");
  const pin = useGraphStore((s) => s.nodes.find((n) => n.id === blockId)?.data.extra.pin) as BlockPin | undefined;
  const effect = useGraphStore((s) => s.catalogue[blockType]?.test_effect ?? "");
  const [open, setOpen] = useState(false);
  const [plan, setPlan] = useState<BlockTestPlan | null>(null);
  const [inputsText, setInputsText] = useState("{}");
  const [triggerText, setTriggerText] = useState("");
  const [result, setResult] = useState<BlockTestResult | null>(null);
  const [problem, setProblem] = useState("");
  const [busy, setBusy] = useState(false);
  const isTrigger = TRIGGERS.has(blockType);

  const prepare = useCallback(async () => {
    setBusy(true);
    setProblem("");
    try {
      const answer = await api.blockTestPlan(workflowId, blockId, useGraphStore.getState().serialize());
      setPlan(answer);
      setInputsText(pretty(answer.inputs));
      setTriggerText(answer.trigger_input === null || answer.trigger_input === undefined ? "{}" : pretty(answer.trigger_input));
    } catch (err) {
      setProblem(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  }, [workflowId, blockId]);

  useEffect(() => {
    if (open) void prepare();
  }, [open, prepare]);

  const inputs = parseInputs(inputsText);
  const trigger = isTrigger ? parseAny(triggerText, "Trigger input") : { value: undefined };
  const invalid = inputs.error ?? trigger.error;

  const run = async () => {
    if (invalid || !inputs.value) return;
    setBusy(true);
    setProblem("");
    setResult(null);
    try {
      const answer = await api.testBlock(workflowId, blockId, {
        graph: useGraphStore.getState().serialize(),
        inputs: inputs.value,
        ...(isTrigger ? { trigger_input: trigger.value } : {}),
      });
      setResult(answer);
    } catch (err) {
      setProblem(err instanceof ApiError || err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const pinInputs = () => {
    if (!plan || !inputs.value) return;
    const state = useGraphStore.getState();
    const current = (id: string) => state.nodes.find((n) => n.id === id)?.data.extra.pin as BlockPin | undefined;
    const pins = pinsForInputs(inputs.value, plan.sources, current);
    for (const [id, value] of Object.entries(pins)) state.setPin(id, value);
    state.notify(`Pinned ${Object.keys(pins).length} input(s): saved with the draft, never used by published runs.`, "info");
    void prepare();
  };

  const pinOutput = () => {
    if (!result || result.status !== "succeeded") return;
    useGraphStore.getState().setPin(blockId, { ...pin, output: result.output, run: null });
    useGraphStore.getState().notify("Output pinned: the blocks after this one test with it. Save to keep it.", "info");
  };

  return (
    <section className="block-test" data-testid="block-test">
      <PinView blockId={blockId} pin={pin} />
      {!open ? (
        <button type="button" className="btn" data-action="open-block-test" onClick={() => setOpen(true)}>
          Test this block…
        </button>
      ) : (
        <>
          <div className="block-test-head">
            <strong>Test this block</strong>
            <button type="button" className="link-button" onClick={() => void prepare()} disabled={busy}>
              Reload inputs
            </button>
            <button type="button" className="link-button" onClick={() => setOpen(false)}>
              Close
            </button>
          </div>
          {plan && plan.testable === false ? (
            <p className="muted small" data-testid="test-not-testable">
              {plan.reason}
            </p>
          ) : (
            <>
              {plan && Object.keys(plan.sources).length > 0 && (
                <ul className="test-sources">
                  {Object.entries(plan.sources).map(([name, source]) => (
                    <li key={name} data-testid="test-source" data-from={source.from}>
                      <code>{name}</code> <span className={`test-from from-${source.from}`}>{FROM_LABEL[source.from ?? ""] ?? source.from}</span>
                    </li>
                  ))}
                </ul>
              )}
              {plan?.notes.map((note) => (
                <div key={note} className="field-warning">
                  {note}
                </div>
              ))}
              <label className="field-label" htmlFor={`test-inputs-${blockId}`}>
                Inputs (JSON: each name this block reads)
              </label>
              <textarea
                id={`test-inputs-${blockId}`}
                data-testid="test-inputs"
                className={`mono${inputs.error ? " input-invalid" : ""}`}
                rows={8}
                spellCheck={false}
                value={inputsText}
                onChange={(e) => setInputsText(e.target.value)}
              />
              {isTrigger && (
                <>
                  <label className="field-label" htmlFor={`test-trigger-${blockId}`}>
                    Trigger input (the body a run would get)
                  </label>
                  <textarea
                    id={`test-trigger-${blockId}`}
                    data-testid="test-trigger-input"
                    className={`mono${trigger.error ? " input-invalid" : ""}`}
                    rows={6}
                    spellCheck={false}
                    value={triggerText}
                    onChange={(e) => setTriggerText(e.target.value)}
                  />
                </>
              )}
              {invalid && (
                <div className="field-error" role="alert" data-testid="test-input-error">
                  {invalid}
                </div>
              )}
              {effect && (
                <div className="field-warning" data-testid="test-effect">
                  ⚠ A test {effect}.
                </div>
              )}
              <div className="block-test-actions">
                <button type="button" className="btn primary small" data-action="run-block-test" disabled={busy || Boolean(invalid)} onClick={() => void run()}>
                  {busy ? "Running…" : "Run this block"}
                </button>
                <button type="button" className="btn small" data-action="pin-inputs" disabled={!plan || Boolean(inputs.error)} onClick={pinInputs}>
                  Pin these inputs
                </button>
              </div>
            </>
          )}
          {problem && (
            <div className="field-error" role="alert" data-testid="test-problem">
              {problem}
            </div>
          )}
          {result && <TestResult result={result} onPin={pinOutput} />}
        </>
      )}
    </section>
  );
}

function TestResult({ result, onPin }: { result: BlockTestResult; onPin: () => void }) {
  return (
    <div className="test-result" data-testid="test-result" data-status={result.status}>
      <div>
        <span className={`test-status status-${result.status}`} data-testid="test-status">
          {result.status === "succeeded" ? "✓ succeeded" : "✗ failed"}
        </span>{" "}
        <span className="muted small">
          {result.attempts} attempt{result.attempts === 1 ? "" : "s"} · {Math.round(result.duration * 1000)} ms
        </span>
      </div>
      {result.error && (
        <div className="field-error" data-testid="test-error">
          {result.error}
        </div>
      )}
      {result.retries.map((retry) => (
        <div key={retry.attempt} className="muted small">
          attempt {retry.attempt} failed ({retry.error}); retried after {retry.delay} s
        </div>
      ))}
      {result.status === "succeeded" && (
        <>
          <div className="field-label">Output</div>
          <pre className="test-json" data-testid="test-output">
            {pretty(result.output)}
          </pre>
          <button type="button" className="btn small" data-action="pin-output" onClick={onPin}>
            Pin this output
          </button>
        </>
      )}
      <div className="field-label">Config as resolved (secrets masked)</div>
      <pre className="test-json" data-testid="test-config">
        {pretty(result.config)}
      </pre>
    </div>
  );
}

/** The block's pin: shown, editable as JSON, clearable. */
function PinView({ blockId, pin }: { blockId: string; pin: BlockPin | undefined }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState("");
  if (!pin) return null;
  const parsed = editing ? parseInputs(text, "Pin") : {};
  const save = () => {
    if (!parsed.value) return;
    useGraphStore.getState().setPin(blockId, parsed.value as BlockPin);
    setEditing(false);
  };
  return (
    <div className="block-pin" data-testid="block-pin">
      <div className="block-test-head">
        <strong>📌 Pinned test data</strong>
        <button
          type="button"
          className="link-button"
          onClick={() => {
            setText(pretty(pin));
            setEditing(!editing);
          }}
        >
          {editing ? "Cancel" : "Edit"}
        </button>
        <button type="button" className="link-button" data-action="clear-pin" onClick={() => useGraphStore.getState().setPin(blockId, null)}>
          Clear
        </button>
      </div>
      <div className="muted small">Used by tests of the blocks after this one; published runs never read it.</div>
      {editing ? (
        <>
          <textarea data-testid="pin-editor" className={`mono${parsed.error ? " input-invalid" : ""}`} rows={8} spellCheck={false} value={text} onChange={(e) => setText(e.target.value)} />
          {parsed.error && (
            <div className="field-error" role="alert">
              {parsed.error}
            </div>
          )}
          <button type="button" className="btn small" data-action="save-pin" disabled={Boolean(parsed.error)} onClick={save}>
            Save pin
          </button>
        </>
      ) : (
        <pre className="test-json" data-testid="pin-json">
          {pretty(pin)}
        </pre>
      )}
    </div>
  );
}
