// The run's cost line (docs/run-protocol.md `CostSummary`): its wall time, the measured
// sequential time (its items' durations one after the other), the speedup, the tokens its LLM
// calls used and their dollars, as the server summed them from the stored rows. Read when the
// run is opened, every COST_REFRESH_MS while it goes on, at once when it ends and again shortly
// after (COST_FINAL_REREADS_MS). A retry's figures are what it did itself; what it reused from
// the run it retries is said apart.
import { useEffect, useRef, useState } from "react";
import type { CostSummary } from "../types";
import { formatDuration, formatSpeedup, formatTokens, formatUsd, shownSpeedup } from "./metrics";
import { fetchCostSummary } from "./runApi";

export const COST_REFRESH_MS = 3000;
/** After a run ends while shown: read again at once, then after these delays (its last rows
 * may still be being written), so the final view's figures agree with its counters. */
export const COST_FINAL_REREADS_MS = [1500, 5000];

/** "12.3× faster than sequential"; a run that mostly waited for its providers did less work
 * per second than one item at a time would have: "0.5× the sequential pace". */
export function speedupText(speedup: number): string {
  return speedup >= 1 ? `${formatSpeedup(speedup)} faster than sequential` : `${formatSpeedup(speedup)} the sequential pace`;
}

/** What a retry took from the run it retries, in words: "reused 975 items from the retried
 * run: 115,759 tokens in 1,976 LLM calls ($0.0123) not spent again". Empty for other runs. */
export function reusedText(summary: CostSummary): string {
  const reused = summary.reused;
  if (!reused || (reused.items === 0 && reused.steps === 0)) return "";
  const what = reused.items > 0 ? `${reused.items.toLocaleString("en-US")} item${reused.items === 1 ? "" : "s"}` : `${reused.steps.toLocaleString("en-US")} step${reused.steps === 1 ? "" : "s"}`;
  if (reused.llm_calls === 0) return `reused ${what} from the retried run`;
  const usd = reused.cost_usd !== null && reused.cost_usd > 0 ? ` (${formatUsd(reused.cost_usd)})` : "";
  const calls = `${reused.llm_calls.toLocaleString("en-US")} LLM call${reused.llm_calls === 1 ? "" : "s"}`;
  return `reused ${what} from the retried run: ${formatTokens(reused.tokens)} in ${calls}${usd} not spent again`;
}

function perModel(summary: CostSummary): string {
  return summary.models
    .map((m) => {
      const price = m.price ? ` at $${m.price.input}/$${m.price.output} per 1M in/out = ${formatUsd(m.cost_usd)}` : " (no price)";
      return `${m.model}: ${m.prompt_tokens.toLocaleString("en-US")} in + ${m.completion_tokens.toLocaleString("en-US")} out, ${m.calls} calls${price}`;
    })
    .join("\n");
}

export function CostLine(props: { runId: string; finished: boolean; onSummary?: (summary: CostSummary) => void }) {
  const { runId, finished, onSummary } = props;
  const onSummaryRef = useRef(onSummary);
  useEffect(() => {
    onSummaryRef.current = onSummary;
  }, [onSummary]);
  const [read, setRead] = useState<{ runId: string; summary: CostSummary } | null>(null);
  // The run this line saw going on: when it ends under our eyes, the server may still be
  // writing its last rows, so the final figures are read again a moment later.
  const sawRunning = useRef<string | null>(null);

  useEffect(() => {
    let ignore = false;
    let asked = 0;
    let shown = 0;
    const controller = new AbortController();
    const load = () => {
      const n = (asked += 1);
      fetchCostSummary(runId, controller.signal)
        .then((answer) => {
          // An earlier read answering late never replaces a later one.
          if (ignore || n < shown) return;
          shown = n;
          setRead({ runId, summary: answer.summary });
          onSummaryRef.current?.(answer.summary);
        })
        .catch(() => undefined);
    };
    load();
    let timer: ReturnType<typeof setInterval> | undefined;
    const again: ReturnType<typeof setTimeout>[] = [];
    if (!finished) {
      sawRunning.current = runId;
      timer = setInterval(load, COST_REFRESH_MS);
    } else if (sawRunning.current === runId) {
      for (const delay of COST_FINAL_REREADS_MS) again.push(setTimeout(load, delay));
    }
    return () => {
      ignore = true;
      controller.abort();
      clearInterval(timer);
      for (const t of again) clearTimeout(t);
    };
  }, [runId, finished]);

  const summary = read && read.runId === runId ? read.summary : null;
  if (!summary || summary.wall_seconds === null) return null;
  const priced = summary.cost_usd !== null;
  const reused = reusedText(summary);
  const waited = summary.waited_seconds ?? 0;
  // A run that did nothing (failed before any item) has no pace to compare.
  const speedup = shownSpeedup(summary);
  return (
    <div className="kr-row kr-small kr-cost" data-testid="cost-line">
      <span data-testid="cost-wall" title="from the run's start to its end (or now)">
        wall {formatDuration(summary.wall_seconds)}
      </span>
      <span data-testid="cost-sequential" title={`${summary.items_measured} items' measured durations less their waits for providers, plus the steps outside loops, one after the other${reused ? " (what this run ran; the reused items are not counted)" : ""}`}>
        sequential {formatDuration(summary.sequential_seconds) || "0 ms"}
      </span>
      {speedup !== null && (
        <strong className="kr-speedup" data-testid="speedup" title="sequential time ÷ wall time">
          {speedupText(speedup)}
        </strong>
      )}
      {waited > 0 && (
        <span data-testid="cost-waited" title="time items spent waiting for a provider (a paused breaker, a concurrency slot, a rate grant), summed over the items: not work, so not in the sequential time">
          {formatDuration(waited)} waiting for providers not counted
        </span>
      )}
      <span data-testid="cost-tokens" title={perModel(summary)}>
        {formatTokens(summary.tokens.total)}
        {summary.llm_calls > 0 ? ` in ${summary.llm_calls} LLM call${summary.llm_calls === 1 ? "" : "s"}` : ""}
      </span>
      <strong data-testid="cost-usd" title={perModel(summary) || "no LLM calls"}>
        {priced ? formatUsd(summary.cost_usd) : "no price"}
      </strong>
      {summary.cache && summary.cache.hits > 0 && (
        <span data-testid="cost-cache" title={`result cache: ${summary.cache.hits} hits, ${summary.cache.misses} misses; ${formatTokens(summary.cache.tokens_saved)} not spent`}>
          {summary.cache.calls_saved} call{summary.cache.calls_saved === 1 ? "" : "s"} from cache
          {summary.cache.saved_usd !== null ? `, ${formatUsd(summary.cache.saved_usd)} saved` : ""}
        </span>
      )}
      {reused && (
        <span
          className="kr-muted"
          data-testid="cost-reused"
          title={`A retry runs again only what failed. The rest was taken as it was from the run it retries (${formatDuration(summary.reused?.seconds ?? 0) || "0 ms"} of work not done again): the time, tokens and dollars before this count only what this run did.`}
        >
          {reused}
        </span>
      )}
      {summary.unpriced_models.length > 0 && (
        <span className="kr-muted" data-testid="cost-unpriced" title="set KLYNTOS_MODEL_PRICES to price them">
          {priced ? "+ " : ""}no price for {summary.unpriced_models.join(", ")}
        </span>
      )}
    </div>
  );
}
