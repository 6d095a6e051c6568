import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { formatMoment } from "./metrics";
import { bucketAt, limitPath, pausedBand, timeAt, TimelineView } from "./TimelineView";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let root: Root;
let container: HTMLDivElement;

beforeEach(() => {
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

async function flush() {
  for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
}

describe("timeline reading", () => {
  const data = {
    started_at: "", from: 10, to: 20, bucket_seconds: 2,
    concurrency: [0, 1, 2, 3, 4].map((i) => ({ t: 10 + 2 * i, in_flight: 5, overlapping: 5, started: i === 1 ? 10 : 0, finished: i === 3 ? 10 : 0, failed: 0 })),
    durations: { edges: [0, 2, 4], counts: [0, 10], p50: 3, p95: 3, max: 4, count: 10 },
  };

  it("maps a point of the chart to its bucket and time", () => {
    expect(bucketAt(data, 0)).toBe(0);
    expect(bucketAt(data, 0.5)).toBe(2);
    expect(bucketAt(data, 1)).toBe(4);
    expect(timeAt(data, 0.25)).toBe(12.5);
  });
});

describe("TimelineView", () => {
  it("draws the server's buckets and histogram; a histogram bar narrows the items to its durations", async () => {
    const timeline = {
      started_at: "", from: 0, to: 10, bucket_seconds: 2,
      concurrency: [0, 1, 2, 3, 4].map((i) => ({ t: 2 * i, in_flight: i + 1, overlapping: i + 1, started: i === 0 ? 5 : 0, finished: i === 4 ? 5 : 0, failed: i === 4 ? 1 : 0 })),
      durations: { edges: [0, 1, 2, 3], counts: [1, 3, 1], p50: 1.5, p95: 2.5, max: 3, count: 5 },
    };
    const urls: string[] = [];
    vi.stubGlobal("fetch", async (url: string) => {
      urls.push(url);
      return { ok: true, status: 200, text: async () => JSON.stringify(timeline) };
    });
    const onPick = vi.fn();
    try {
      act(() => root.render(<TimelineView runId="r1" finished onPick={onPick} />));
      await flush();
      expect(urls).toEqual(["/api/runs/r1/timeline/?buckets=100"]);
      expect(container.querySelectorAll('[data-testid="timeline-chart"] rect.kr-tl-running')).toHaveLength(5);
      expect(container.querySelectorAll('[data-testid="timeline-chart"] rect.kr-tl-failed')).toHaveLength(1);
      expect(container.querySelector('[data-testid="duration-stats"]')?.textContent).toBe("5 items · p50 1.50 s · p95 2.50 s · max 3.00 s");
      const bars = container.querySelectorAll('[data-testid="duration-histogram"] rect');
      expect(bars).toHaveLength(3);
      act(() => bars[1].dispatchEvent(new MouseEvent("click", { bubbles: true })));
      expect(onPick).toHaveBeenCalledWith({ minDuration: 1, maxDuration: 2 }, "took 1.00 s–2.00 s");
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe("provider limits on the timeline", () => {
  const timeline = {
    started_at: "", from: 0, to: 10, bucket_seconds: 2,
    concurrency: [0, 1, 2, 3, 4].map((i) => ({ t: 2 * i, in_flight: 4, overlapping: 4, started: i === 0 ? 4 : 0, finished: i === 4 ? 4 : 0, failed: 0 })),
    durations: { edges: [0, 1], counts: [4], p50: 1, p95: 1, max: 1, count: 4 },
    providers: { "api.clearbit.com": [{ t: 0, limit: 10 }, { t: 5, limit: 5 }] },
  };

  it("draws each provider's limit as a step line on the in-flight scale", () => {
    // 10 is the chart's top (68 of 70 units), 5 half of it; the line holds to the right edge.
    expect(limitPath(timeline, timeline.providers["api.clearbit.com"], 10)).toBe("M0.0 2.0 H500.0 V36.0 H1000");
  });

  it("shows the limit line and its latest value", async () => {
    vi.stubGlobal("fetch", async () => ({ ok: true, status: 200, text: async () => JSON.stringify(timeline) }));
    try {
      act(() => root.render(<TimelineView runId="r2" finished onPick={vi.fn()} />));
      await flush();
      const line = container.querySelector('[data-testid="timeline-limit"]');
      expect(line?.getAttribute("d")).toBe("M0.0 2.0 H500.0 V36.0 H1000");
      expect(line?.textContent).toBe("api.clearbit.com: adaptive limit 5");
      expect(container.querySelector('[data-testid="timeline-limits"]')?.textContent).toBe("api.clearbit.com limit 5");
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe("breaker periods on the timeline", () => {
  const timeline = {
    started_at: "", from: 0, to: 10, bucket_seconds: 2,
    concurrency: [0, 1, 2, 3, 4].map((i) => ({ t: 2 * i, in_flight: 4, overlapping: 4, started: i === 0 ? 4 : 0, finished: i === 4 ? 4 : 0, failed: 0 })),
    durations: { edges: [0, 1], counts: [4], p50: 1, p95: 1, max: 1, count: 4 },
    paused: {
      "api.clearbit.com": [
        { from: 2, to: 4, state: "open" as const },
        { from: 4, to: 4.5, state: "half_open" as const },
        { from: 8, to: null, state: "open" as const },
      ],
    },
  };

  it("places each period as a band clipped to the window", () => {
    const [first, , last] = timeline.paused["api.clearbit.com"];
    expect(pausedBand(timeline, first)).toEqual([200, 200]);
    expect(pausedBand(timeline, last)).toEqual([800, 200]); // still open: to the right edge
    expect(pausedBand({ ...timeline, from: 3 }, first)).toEqual([0, expect.closeTo(142.857, 2)]);
  });

  it("draws the bands behind the bars with what each one means", async () => {
    vi.stubGlobal("fetch", async () => ({ ok: true, status: 200, text: async () => JSON.stringify(timeline) }));
    try {
      act(() => root.render(<TimelineView runId="r3" finished onPick={vi.fn()} />));
      await flush();
      const bands = container.querySelectorAll('[data-testid="timeline-pause"]');
      expect(bands).toHaveLength(3);
      expect(bands[0].getAttribute("class")).toBe("kr-tl-paused kr-tl-open");
      expect(bands[1].getAttribute("class")).toBe("kr-tl-paused kr-tl-half_open");
      expect(bands[0].textContent).toBe("api.clearbit.com: breaker open, no call started from 2.00 s to 4.00 s");
      expect(bands[2].textContent).toBe("api.clearbit.com: breaker open, no call started from 8.00 s until the end of the window");
      // Behind the bars: the bands come first in the chart.
      expect(container.querySelector('[data-testid="timeline-chart"] > *')?.getAttribute("data-testid")).toBe("timeline-pause");
      expect(container.querySelector('[data-testid="timeline-paused"]')?.textContent).toBe("api.clearbit.com breaker open 2×");
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe("items in flight on average", () => {
  it("formats a bucket's ends apart however short it is", () => {
    expect(formatMoment(1.24, 0.008)).toBe("1.240 s");
    expect(formatMoment(1.248, 0.008)).toBe("1.248 s");
    expect(formatMoment(0.24, 0.008)).toBe("240 ms");
    expect(formatMoment(0.2405, 0.0005)).toBe("240.5 ms");
    expect(formatMoment(1.25, 0.25)).toBe("1.25 s");
    expect(formatMoment(65.24, 0.008)).toBe("1m 05.240s");
    expect(formatMoment(12, 2)).toBe("12.0 s"); // long buckets: as durations read
  });

  it("heads the chart with the mean, titles each bar with both counts, and a click's chip tells an 8 ms bucket's ends apart", async () => {
    // Zoomed into 40 ms of a 10,000-item loop capped at 50: 5 buckets of 8 ms.
    const timeline = {
      started_at: "", from: 1.24, to: 1.28, bucket_seconds: 0.008,
      concurrency: [0, 1, 2, 3, 4].map((i) => ({ t: 1.24 + 0.008 * i, in_flight: 49.96 - i, overlapping: 218, started: 3, finished: 3, failed: 0 })),
      durations: { edges: [0, 0.0003, 0.0006], counts: [0, 10], p50: 0.0005, p95: 0.0005, max: 0.0006, count: 10 },
    };
    vi.stubGlobal("fetch", async () => ({ ok: true, status: 200, text: async () => JSON.stringify(timeline) }));
    const onPick = vi.fn();
    try {
      act(() => root.render(<TimelineView runId="r4" finished onPick={onPick} />));
      await flush();
      const head = container.querySelector('[data-testid="timeline"] .kr-muted')?.textContent;
      expect(head).toBe("1.240 s–1.280 s in 5 steps of 8 ms · at most 50 in flight on average in a step");
      const bar = container.querySelector('[data-testid="timeline-chart"] rect.kr-tl-running');
      expect(bar?.textContent).toBe("1.240 s–1.248 s: 50 in flight on average, 218 in flight at some moment (a click lists them), 3 started, 3 finished, 0 failed");
      const chart = container.querySelector('[data-testid="timeline-chart"]') as SVGSVGElement;
      act(() => chart.dispatchEvent(new MouseEvent("pointerdown", { bubbles: true, clientX: 0 })));
      act(() => chart.dispatchEvent(new MouseEvent("pointerup", { bubbles: true, clientX: 0 })));
      expect(onPick).toHaveBeenCalledWith({ from: 1.24, to: expect.closeTo(1.248, 9) }, "in flight during 1.240 s–1.248 s");
      const bars = container.querySelectorAll('[data-testid="duration-histogram"] rect');
      act(() => bars[1].dispatchEvent(new MouseEvent("click", { bubbles: true })));
      expect(onPick).toHaveBeenLastCalledWith({ minDuration: 0.0003, maxDuration: expect.closeTo(0.000601, 9) }, "took 0.3 ms–0.6 ms");
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
