import { describe, expect, it } from "vitest";
import type { LoopState, RunSummary } from "../types";
import type { RunItem } from "../store/runStore";
import { etaOf, formatDuration, formatSpeedup, formatTokens, formatUsd, itemLabel, runCounters, shownJson, throughputOf, topLoopOf, visibleControls } from "./metrics";
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

  it("shows bidi controls as code points, so a name cannot read backwards", () => {
    // The tester's name: shown as "exe.png edirrevo LTR" in the table before.
    expect(itemLabel({ name: "\u202eRTL override gnp.exe" })).toBe("[U+202E]RTL override gnp.exe");
    expect(visibleControls("a\u2066b\u2069c\u202ad")).toBe("a[U+2066]b[U+2069]c[U+202A]d");
    expect(visibleControls("محمد بن سلمان")).toBe("محمد بن سلمان"); // right-to-left text itself is untouched
  });

  it("writes bidi controls in the detail's JSON as escapes that parse back to the same data", () => {
    const data = { name: "\u202eRTL override gnp.exe", note: "a\u2066b", city: "القاهرة" };
    const shown = shownJson(data);
    expect(shown).toContain('"\\u202eRTL override gnp.exe"');
    expect(shown).not.toMatch(/[\u202A-\u202E\u2066-\u2069]/);
    expect(JSON.parse(shown)).toEqual(data);
    expect(shown).toContain("القاهرة");
    expect(shownJson(undefined)).toBe("null");
  });
});

describe("run numbers", () => {
  const items = [item(0, 0, 4), item(1, 0, 4), item(2, 2, 6, { status: "failed" }), item(3, 4, 8), item(4, 6, null)];

  it("reads the server's counters, cancelled and never-started items apart from done", () => {
    const run = { progress: { total: 10, succeeded: 3, failed: 1, running: 1, cancelled: 2, not_started: 3 } } as RunSummary;
    expect(runCounters(run)).toEqual({ total: 10, done: 4, succeeded: 3, failed: 1, cancelled: 2, not_started: 3, running: 1 });
    expect(runCounters(null).total).toBe(0);
  });

  it("computes throughput from the run's start to the latest item end (server clocks)", () => {
    const run = { started_at: at(0), progress: { total: 10, succeeded: 3, failed: 1, running: 1 } } as RunSummary;
    expect(throughputOf(run, items)).toBeCloseTo(4 / 8);
    expect(throughputOf({ ...run, progress: { ...run.progress, succeeded: 1, failed: 0 } }, items)).toBeNull();
    // A cancelled item's late end does not count.
    expect(throughputOf(run, [item(0, 0, 4), item(1, 1, 20, { status: "cancelled" })])).toBeCloseTo(4 / 4);
  });
});

describe("helpers", () => {
  it("formats durations", () => {
    expect(formatDuration(0.25)).toBe("250 ms");
    expect(formatDuration(2.5)).toBe("2.50 s");
    expect(formatDuration(125)).toBe("2m 05s");
    expect(formatDuration(null)).toBe("");
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

describe("cost formatting", () => {
  it("writes dollars to the cent from $1 and to four decimals below", () => {
    expect(formatUsd(0)).toBe("$0.00");
    expect(formatUsd(0.00004)).toBe("<$0.0001");
    expect(formatUsd(0.01234)).toBe("$0.0123");
    expect(formatUsd(12.345)).toBe("$12.35");
    expect(formatUsd(null)).toBe("");
    expect(formatTokens(45120)).toBe("45,120 tokens");
    expect(formatTokens(1)).toBe("1 token");
    expect(formatSpeedup(9.96)).toBe("10.0×");
    expect(formatSpeedup(null)).toBe("");
  });
});

describe("progress line choices", () => {
  const loop = (cap: number, peak: number): LoopState => ({ total: 0, succeeded: 0, failed: 0, cancelled: 0, not_started: 0, running: 0, max_concurrent: cap, limit: cap, peak_running: peak });

  it("leaves a retry's reused items out of its throughput", () => {
    const run = { started_at: at(0), progress: { total: 10, succeeded: 10, failed: 0, running: 0 } } as RunSummary;
    const ran = [item(0, 0, 2), item(1, 0, 4)];
    expect(throughputOf(run, ran)).toBeCloseTo(10 / 4);
    expect(throughputOf(run, ran, 8)).toBeCloseTo(2 / 4);
    expect(throughputOf(run, ran, 9)).toBeNull();
  });

  it("tells no ETA while paused, and one from the pace otherwise", () => {
    expect(etaOf(2, 10, true)).toBe("paused");
    expect(etaOf(2, 10, false)).toBe(5);
    expect(etaOf(null, 10, false)).toBeNull();
    expect(etaOf(2, 0, true)).toBeNull();
  });

  it("picks the top-level loop, by the graph, else by its items", () => {
    const loops = { outer: loop(3, 3), inner: loop(4, 4) };
    expect(topLoopOf(loops, new Map([["outer", null], ["inner", "outer"]]), [])).toBe(loops.outer);
    const nested = item(0, 0, 1, { loop_block: "inner", parent_key: "L[0]" });
    expect(topLoopOf(loops, new Map(), [nested])).toBe(loops.outer);
    expect(topLoopOf({}, new Map(), [])).toBeNull();
    // Two top-level loops one after the other: the one with the higher peak.
    expect(topLoopOf({ a: loop(2, 2), b: loop(5, 5) }, new Map([["a", null], ["b", null]]), [])?.max_concurrent).toBe(5);
  });
});
