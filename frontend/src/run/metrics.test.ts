import { describe, expect, it } from "vitest";
import type { RunSummary } from "../types";
import type { RunItem } from "../store/runStore";
import { attemptsByItem, formatDuration, itemLabel, loopStats, measuredSpeedup, timeline } from "./metrics";
import { curlCommand, curlFileCommand, signedSnippet } from "./WebhookTab";

const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s)).toISOString();

function item(index: number, start: number, end: number | null, over: Partial<RunItem> = {}): RunItem {
  return {
    key: `L[${index}]`, loop_block: "loop", parent_key: "", index, status: end === null ? "running" : "succeeded",
    error: "", failed_block: "", started_at: at(start), finished_at: end === null ? null : at(end),
    duration: end === null ? null : end - start, ...over,
  };
}

describe("itemLabel", () => {
  it("prefers name, then id, then compact JSON", () => {
    expect(itemLabel({ name: "Ada", id: 7 })).toBe("Ada");
    expect(itemLabel({ id: 7 })).toBe("7");
    expect(itemLabel({ email: "a@b.c" })).toBe('{"email":"a@b.c"}');
    expect(itemLabel("plain")).toBe("plain");
    expect(itemLabel(null)).toBe("null");
    expect(itemLabel({ name: "x".repeat(200) }).length).toBe(80);
  });
});

describe("loop numbers", () => {
  const items = [item(0, 0, 4), item(1, 0, 4), item(2, 2, 6, { status: "failed" }), item(3, 4, 8), item(4, 6, null)];

  it("computes throughput and ETA from server timestamps", () => {
    const run = { progress: { total: 10, succeeded: 3, failed: 1, running: 1 } } as RunSummary;
    const stats = loopStats(run, items);
    expect(stats.done).toBe(4);
    expect(stats.throughput).toBeCloseTo(4 / 8);
    expect(stats.eta).toBeCloseTo(6 / 0.5);
  });

  it("builds a timeline with the peak concurrency", () => {
    const t = timeline(items);
    expect(t.bars).toHaveLength(5);
    expect(t.span).toBe(8000);
    // 0-4: two items; 2-6 overlaps them: three at once. Back-to-back items do not overlap.
    expect(t.maxConcurrent).toBe(3);
    expect(t.bars[4]).toMatchObject({ status: "running", start: 6000, end: 8000 });
  });

  it("measures the speedup over a sequential run", () => {
    const s = measuredSpeedup(items)!;
    expect(s.sequentialSeconds).toBe(16);
    expect(s.wallSeconds).toBe(8);
    expect(s.speedup).toBe(2);
    expect(measuredSpeedup([])).toBeNull();
  });

  it("leaves cancelled items out of done, throughput, ETA and speedup", () => {
    const withCancelled = [
      item(0, 0, 4),
      item(1, 0, 4),
      item(2, 1, 9, { status: "cancelled" }),
      item(3, 2, null, { status: "cancelled", started_at: null }),
      item(4, 2, null, { status: "cancelled" }),
    ];
    const run = { progress: { total: 5, succeeded: 2, failed: 0, running: 0 } } as RunSummary;
    const stats = loopStats(run, withCancelled);
    expect(stats.done).toBe(2);
    expect(stats.cancelled).toBe(3);
    expect(stats.throughput).toBeCloseTo(2 / 4); // the cancelled item's late end does not count
    expect(stats.eta).toBe(0); // nothing left to run
    // Once the run is over, items it never started are cancelled too.
    const over = loopStats({ progress: { total: 9, succeeded: 2, failed: 0, running: 0 } } as RunSummary, withCancelled, true);
    expect(over.cancelled).toBe(7);
    const s = measuredSpeedup(withCancelled)!;
    expect(s.sequentialSeconds).toBe(8);
    expect(s.wallSeconds).toBe(4);
    expect(timeline(withCancelled).bars.map((b) => b.status)).toEqual(["succeeded", "succeeded", "cancelled", "cancelled"]);
  });

  it("gives no speedup for fewer than two finished items", () => {
    expect(measuredSpeedup([item(0, 0, 4)])).toBeNull();
    expect(measuredSpeedup([item(0, 0, 4), item(1, 0, 3, { status: "cancelled" })])).toBeNull();
    expect(measuredSpeedup([item(0, 0, 4), item(1, 0, 3, { status: "failed" })])).not.toBeNull();
  });
});

describe("helpers", () => {
  it("formats durations", () => {
    expect(formatDuration(0.25)).toBe("250 ms");
    expect(formatDuration(2.5)).toBe("2.50 s");
    expect(formatDuration(125)).toBe("2m 05s");
    expect(formatDuration(null)).toBe("");
  });

  it("takes the most attempts of an item's steps", () => {
    const step = (item_key: string, block_id: string, attempts: number) => ({
      item_key, block_id, name: block_id, status: "succeeded" as const, error: "", attempts,
      started_at: null, finished_at: null, duration: null,
    });
    expect(attemptsByItem({ a: step("L[0]", "x", 1), b: step("L[0]", "y", 3), c: step("", "t", 5) })).toEqual({ "L[0]": 3 });
  });

  it("quotes the curl body for the shell", () => {
    expect(curlCommand("http://h/hooks/abc", `{"name":"O'Brien"}`)).toBe(
      `curl -X POST -H 'Content-Type: application/json' --data '{"name":"O'\\''Brien"}' http://h/hooks/abc`,
    );
  });

  it("posts body.json, signed with openssl when there is a secret", () => {
    expect(curlFileCommand("http://h/hooks/abc")).toBe(
      "curl -X POST -H 'Content-Type: application/json' --data-binary @body.json http://h/hooks/abc",
    );
    const unknown = signedSnippet("http://h/hooks/abc", null);
    expect(unknown).toContain(': "${KLYNTOS_SIGNING_SECRET:?');
    expect(unknown).toContain(`openssl dgst -sha256 -hmac "$KLYNTOS_SIGNING_SECRET"`);
    expect(unknown).toContain(`{ printf '%s.' "$T"; cat body.json; }`);
    expect(unknown.split("\n").at(-1)).toBe(
      `curl -X POST -H 'Content-Type: application/json' -H "X-Klyntos-Signature: t=$T,v1=$SIG" --data-binary @body.json http://h/hooks/abc`,
    );
    expect(signedSnippet("http://h/x", "it's").split("\n")[0]).toBe(`KLYNTOS_SIGNING_SECRET='it'\\''s'`);
  });
});
