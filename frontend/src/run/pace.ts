// The recent pace of a run, for its ETA. The average since the start (`throughputOf`) counts
// every pause in it: after a breaker held a run for five minutes, the average said the rest
// would take several times as long as it did. The ETA reads the items done over the last
// `WINDOW_MS` instead, as seen by this browser (differences of its own clock only), and starts
// over after a pause, so a pace holds only once the run has moved again for `SETTLE_MS`.

export const WINDOW_MS = 30_000;
export const SETTLE_MS = 3_000;
// Enough samples to span the window at the socket's ten messages a second.
const MAX_SAMPLES = 400;

interface Sample {
  at: number;
  done: number;
}

export class PaceWindow {
  private samples: Sample[] = [];

  /** `done` items at `at` (ms). A count that goes back (a new run) starts over. */
  observe(at: number, done: number): void {
    const last = this.samples[this.samples.length - 1];
    if (last && done < last.done) this.samples = [];
    if (last && done === last.done && this.samples.length > 1) {
      // The same count again: only the latest moment of it matters (a stall shows as time).
      const before = this.samples[this.samples.length - 2];
      if (before.done === done) this.samples.pop();
    }
    this.samples.push({ at, done });
    const oldest = at - WINDOW_MS;
    let drop = 0;
    while (drop < this.samples.length - 2 && this.samples[drop + 1].at <= oldest) drop += 1;
    if (drop > 0) this.samples.splice(0, drop);
    if (this.samples.length > MAX_SAMPLES) this.samples.splice(0, this.samples.length - MAX_SAMPLES);
  }

  /** A pause (or anything after which the past pace says nothing): start over. */
  reset(): void {
    this.samples = [];
  }

  /** Items per second over the window, or null until the samples span `SETTLE_MS`. */
  pace(): number | null {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last) return null;
    const span = last.at - first.at;
    if (span < SETTLE_MS) return null;
    const done = last.done - first.done;
    return done > 0 ? (done * 1000) / span : null;
  }
}
