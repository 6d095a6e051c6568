// One item's data and step outputs, fetched on demand (the websocket carries no outputs).
import { useEffect, useState } from "react";
import { useRunStore } from "../store/runStore";
import { formatDuration, formatTokens, formatUsd, shownJson } from "./metrics";
import { fetchItem, type ItemDetail } from "./runApi";

export function ItemDetailView(props: { runId: string; itemKey: string; onClose: () => void }) {
  const { runId, itemKey, onClose } = props;
  // Refetch when the item changes state, so outputs appear once its steps finish.
  const status = useRunStore((s) => s.items[itemKey]?.status);
  const [detail, setDetail] = useState<ItemDetail | null>(null);
  const [error, setError] = useState("");
  const [loading, setLoading] = useState(true);

  useEffect(() => {
    let ignore = false;
    setLoading(true);
    setError("");
    fetchItem(runId, itemKey)
      .then((item) => {
        if (ignore) return;
        setDetail(item);
        if (!item) setError("This item is not stored yet.");
      })
      .catch((err: unknown) => {
        if (!ignore) setError(err instanceof Error ? err.message : String(err));
      })
      .finally(() => {
        if (!ignore) setLoading(false);
      });
    return () => {
      ignore = true;
    };
  }, [runId, itemKey, status]);

  // Esc closes it, as it closes the editor's other panels (not while typing in a field).
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const el = event.target as HTMLElement | null;
      const typing = Boolean(el?.isContentEditable || (el?.tagName && ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)));
      if (event.key !== "Escape" || event.defaultPrevented || typing) return;
      event.preventDefault();
      onClose();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);

  const shown = detail && detail.key === itemKey ? detail : null;

  return (
    <div className="kr-detail" data-testid="item-detail" data-item-key={itemKey}>
      <div className="kr-row">
        <strong className="kr-grow">{itemKey}</strong>
        {shown && Boolean(shown.tokens) && (
          <span className="kr-small" data-testid="item-detail-cost">
            {formatTokens(shown.tokens)} · {shown.cost_usd === null ? "no price" : formatUsd(shown.cost_usd)}
          </span>
        )}
        {loading && <span className="kr-muted">loading…</span>}
        <button type="button" className="kr-btn" onClick={onClose} data-testid="item-detail-close">
          Close
        </button>
      </div>
      {error && <p className="kr-error">{error}</p>}
      {shown && (
        <>
          {shown.error && (
            <p className="kr-error">
              {shown.failed_block ? `${shown.failed_block}: ` : ""}
              {shown.error}
            </p>
          )}
          <details open>
            <summary>Item data</summary>
            <pre className="kr-pre">{shownJson(shown.data)}</pre>
          </details>
          {shown.steps.length === 0 && <p className="kr-muted">No steps recorded.</p>}
          {shown.steps.map((step) => (
            <div className="kr-step" key={step.block_id} data-testid="item-step" data-block-id={step.block_id}>
              <div className="kr-row kr-small">
                <strong>{step.name || step.block_id}</strong>
                <span className={`kr-badge kr-s-${step.status}`}>{step.status}</span>
                <span>{formatDuration(step.duration)}</span>
                {step.attempts > 1 && <span>{step.attempts} attempts</span>}
                {Boolean(step.tokens) && (
                  <span data-testid="step-cost">
                    {formatTokens(step.tokens)} · {step.cost_usd === null ? "no price" : formatUsd(step.cost_usd)}
                  </span>
                )}
              </div>
              {step.error && (
                // A step waiting for its provider says why ("waiting for api.openai.com: tokens/min").
                <p className={step.status === "waiting" ? "kr-muted" : "kr-error"}>{step.error}</p>
              )}
              <pre className="kr-pre">{shownJson(step.output)}</pre>
            </div>
          ))}
        </>
      )}
    </div>
  );
}
