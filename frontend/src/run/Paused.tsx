// A run paused by a provider's breaker (engine/core/providers.py): which provider, why, and
// a Resume button (a manual breaker stays open until someone resumes it; an automatic one
// may be resumed before its cool-down ends). The state comes with the run's `providers`, on
// the socket's deltas as on REST.
import { useState } from "react";
import { api } from "../api/client";
import { isFinalStatus, useRunStore } from "../store/runStore";
import type { PausedProvider, RunSummary } from "../types";

/** The providers whose breaker is open or probing, as the server's `paused` lists them (not one
 * that gave up on its provider: the run's calls to it fail instead of waiting). */
export function pausedProviders(run: RunSummary | null | undefined): PausedProvider[] {
  if (!run || isFinalStatus(run.status)) return [];
  return Object.entries(run.providers ?? {})
    .filter(([, entry]) => entry.breaker && (entry.breaker.state === "open" || entry.breaker.state === "half_open"))
    .map(([provider, entry]) => {
      const b = entry.breaker!;
      return {
        provider,
        state: b.state as PausedProvider["state"],
        mode: b.mode as PausedProvider["mode"],
        reason: b.reason,
        message: b.message,
        since: b.since,
      };
    })
    .sort((a, b) => a.provider.localeCompare(b.provider));
}

export function PausedProviders(props: { run: RunSummary; onError: (message: string) => void }) {
  const { run, onError } = props;
  const [busy, setBusy] = useState<string | null>(null);
  const paused = pausedProviders(run);
  if (paused.length === 0) return null;
  const resume = async (provider: string) => {
    setBusy(provider);
    try {
      const answer = await api.resumeProvider(run.id, provider);
      const state = useRunStore.getState();
      if (state.run && state.run.id === answer.id && answer.providers && !state.final) {
        useRunStore.setState({ run: { ...state.run, providers: answer.providers } });
      }
    } catch (err) {
      onError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(null);
    }
  };
  return (
    <span className="kr-paused" data-testid="run-paused">
      {paused.map((p) => (
        <span key={p.provider} className="kr-row" data-testid="paused-provider" data-provider={p.provider} data-mode={p.mode}>
          <span className="kr-badge kr-s-paused" title={p.message}>
            paused
          </span>
          <span className="kr-small" data-testid="paused-reason" title={p.message}>
            {p.provider}: {p.state === "half_open" ? `probing (${p.reason})` : p.reason}
            {p.mode === "manual" ? " · waits for Resume" : ""}
          </span>
          <button
            type="button"
            className="kr-btn"
            data-testid="resume-provider-button"
            disabled={busy === p.provider}
            title={`Close ${p.provider}'s breaker: paused calls start again`}
            onClick={() => void resume(p.provider)}
          >
            {busy === p.provider ? "Resuming…" : "Resume"}
          </button>
        </span>
      ))}
    </span>
  );
}
