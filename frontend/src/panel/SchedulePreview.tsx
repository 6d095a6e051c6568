// Under a schedule trigger's settings: when it fires next (asked of the server, which parses
// the expression the way the scheduler will), or why it cannot.
import { useEffect, useState } from "react";
import { api } from "../api/client";

const DEBOUNCE_MS = 300;

export function SchedulePreview({ config }: { config: Record<string, unknown> }) {
  const cron = typeof config.cron === "string" ? config.cron : "";
  const timezone = typeof config.timezone === "string" && config.timezone ? config.timezone : "UTC";
  const [fires, setFires] = useState<string[]>([]);
  const [explain, setExplain] = useState("");
  const [error, setError] = useState("");

  useEffect(() => {
    if (!cron.trim()) {
      setFires([]);
      setExplain("");
      setError("");
      return;
    }
    let ignore = false;
    const timer = window.setTimeout(() => {
      api
        .schedulePreview(cron, timezone)
        .then((answer) => {
          if (ignore) return;
          setFires(answer.next);
          setExplain(answer.explain);
          setError("");
        })
        .catch((err: unknown) => {
          if (ignore) return;
          setFires([]);
          setExplain("");
          setError(err instanceof Error ? err.message : String(err));
        });
    }, DEBOUNCE_MS);
    return () => {
      ignore = true;
      window.clearTimeout(timer);
    };
  }, [cron, timezone]);

  if (!cron.trim()) return null;
  return (
    <div className="schedule-preview" data-testid="schedule-preview">
      {error ? (
        <div className="field-error" role="alert">
          {error}
        </div>
      ) : (
        <>
          {explain && <div className="muted small">{explain} ({timezone})</div>}
          <div className="muted small">Next runs (live version only):</div>
          <ol>
            {fires.map((fire) => (
              <li key={fire} data-testid="schedule-next">
                {new Date(fire).toLocaleString(undefined, { timeZone: timezone, dateStyle: "medium", timeStyle: "medium" })}
              </li>
            ))}
          </ol>
        </>
      )}
    </div>
  );
}
