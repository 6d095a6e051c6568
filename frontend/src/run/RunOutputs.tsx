// The outputs of the run's top-level blocks (loop results, the summary, the Slack message),
// read once the run has ended. Shown as text: LLM output and item data are untrusted.
import { useEffect, useState } from "react";
import { api } from "../api/client";
import { shownJson, visibleControls } from "./metrics";

// Bidi controls made visible either way: a string as itself, anything else as JSON.
function pretty(value: unknown): string {
  return typeof value === "string" ? visibleControls(value) : shownJson(value);
}

export function RunOutputs({ runId }: { runId: string }) {
  const [outputs, setOutputs] = useState<Record<string, unknown> | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    setOutputs(null);
    setError(null);
    api
      .run(runId)
      .then((run) => live && setOutputs(run.outputs ?? {}))
      .catch((e: unknown) => live && setError(e instanceof Error ? e.message : String(e)));
    return () => {
      live = false;
    };
  }, [runId]);

  if (error) return <p className="kr-error">Could not load the run's outputs: {error}</p>;
  if (!outputs) return null;
  const names = Object.keys(outputs);
  if (names.length === 0) return null;
  return (
    <div className="kr-outputs" data-testid="run-outputs">
      <h4>Outputs</h4>
      {names.map((name) => (
        <details key={name} data-output-block={name}>
          <summary>{name}</summary>
          <pre className="kr-pre">{pretty(outputs[name])}</pre>
        </details>
      ))}
    </div>
  );
}
