// The run over time, bounded whatever its N (GET /api/runs/<id>/timeline/): items in flight
// per time bucket (on average over the bucket, so never more than ran at once; a bucket
// longer than an item is overlapped by many more, which its title says and a click lists)
// and a histogram of item durations. Dragging across the concurrency chart
// zooms into that window (re-read from the server at full resolution); a click on a bucket or
// a histogram bar narrows the item table to the items of that moment or duration.
import { useEffect, useRef, useState, type PointerEvent as ReactPointerEvent } from "react";
import type { BreakerPeriod, RunTimeline } from "../types";
import { useRunStore } from "../store/runStore";
import { throttle } from "./ItemTable";
import { formatDuration, formatMean, formatMoment } from "./metrics";
import { fetchTimeline, type ItemQuery } from "./runApi";

const WIDTH = 1000;
const CHART_HEIGHT = 70;
const HIST_HEIGHT = 50;
/** A pointer that moved less than this (in chart units) clicked rather than dragged. */
const DRAG_MIN = 6;
export const TIMELINE_REFRESH_MS = 2000;

export interface Window {
  from?: number;
  to?: number;
}

/** The bucket under a point at `fraction` (0..1) of the chart's width. */
export function bucketAt(data: RunTimeline, fraction: number): number {
  const n = data.concurrency.length;
  return Math.max(0, Math.min(n - 1, Math.floor(fraction * n)));
}

/** Seconds since the run started at `fraction` of the chart's width. */
export function timeAt(data: RunTimeline, fraction: number): number {
  return data.from + Math.max(0, Math.min(1, fraction)) * (data.to - data.from);
}

/** A provider's limit over the chart as a step line (its value holds until the next change). */
export function limitPath(data: RunTimeline, points: { t: number; limit: number | null }[], peak: number): string {
  const span = Math.max(1e-9, data.to - data.from);
  const x = (t: number) => (Math.max(0, Math.min(1, (t - data.from) / span)) * WIDTH).toFixed(1);
  const y = (n: number | null) => (CHART_HEIGHT - ((n ?? 0) / Math.max(1, peak)) * (CHART_HEIGHT - 2)).toFixed(1);
  const steps = points.map((p, i) => (i === 0 ? `M${x(p.t)} ${y(p.limit)}` : `H${x(p.t)} V${y(p.limit)}`));
  return `${steps.join(" ")} H${WIDTH}`;
}

/** A breaker period as a band across the chart: [x, width] in chart units, clipped to the
 * window (a period still going reaches the right edge). */
export function pausedBand(data: RunTimeline, period: BreakerPeriod): [number, number] {
  const span = Math.max(1e-9, data.to - data.from);
  const x = (t: number) => Math.max(0, Math.min(1, (t - data.from) / span)) * WIDTH;
  const left = x(period.from);
  return [left, Math.max(1, (period.to === null ? WIDTH : x(period.to)) - left)];
}

function pausedTitle(key: string, period: BreakerPeriod): string {
  const what = period.state === "open" ? "breaker open, no call started" : "breaker half-open, probe calls only";
  const until = period.to === null ? "until the end of the window" : `to ${formatDuration(period.to)}`;
  return `${key}: ${what} from ${formatDuration(period.from)} ${until}`;
}

export function TimelineView(props: {
  runId: string;
  finished: boolean;
  onPick: (query: ItemQuery, label: string) => void;
}) {
  const { runId, finished, onPick } = props;
  const [zoom, setZoom] = useState<Window>({});
  const [data, setData] = useState<RunTimeline | null>(null);
  const [drag, setDrag] = useState<{ x0: number; x1: number } | null>(null);
  const itemsVersion = useRunStore((s) => (s.runId === runId ? s.itemsVersion : 0));
  const lastRead = useRef(0);

  useEffect(() => {
    setZoom({});
    setData(null);
  }, [runId]);

  // One reader per run and zoom window. While the run changes, it re-reads at most every
  // TIMELINE_REFRESH_MS, one request at a time: a new frame never aborts a read under way
  // (frames come 10 a second, a big run's timeline can take longer than that to compute).
  const zoomKey = JSON.stringify(zoom);
  const reader = useRef<{ busy: boolean; again: boolean; controller: AbortController } | null>(null);
  useEffect(() => {
    const mine = { busy: false, again: false, controller: new AbortController() };
    reader.current = mine;
    return () => {
      mine.controller.abort();
      if (reader.current === mine) reader.current = null;
    };
  }, [runId, zoomKey]);

  useEffect(() => {
    const read = () => {
      const mine = reader.current;
      if (!mine) return;
      if (mine.busy) {
        mine.again = true;
        return;
      }
      mine.busy = true;
      lastRead.current = Date.now();
      fetchTimeline(runId, JSON.parse(zoomKey) as Window, 100, mine.controller.signal)
        .then((answer) => {
          if (reader.current === mine) setData(answer);
        })
        .catch(() => undefined)
        .finally(() => {
          mine.busy = false;
          if (mine.again && reader.current === mine) {
            mine.again = false;
            read();
          }
        });
    };
    const timer = setTimeout(read, finished ? 0 : throttle(lastRead.current, TIMELINE_REFRESH_MS));
    return () => clearTimeout(timer);
  }, [runId, zoomKey, finished, itemsVersion]);

  if (!data || data.durations.count === 0) return null;
  const busiest = Math.max(0, ...data.concurrency.map((b) => b.in_flight));
  const inFlightPeak = Math.max(1, busiest);
  const moment = (t: number) => formatMoment(t, data.bucket_seconds);
  // Provider limits share the chart's scale: calls allowed against items in flight.
  const limits = Object.entries(data.providers ?? {}).filter(([, points]) => points.length > 0);
  const peak = Math.max(inFlightPeak, ...limits.flatMap(([, points]) => points.map((p) => p.limit ?? 0)));
  const paused = Object.entries(data.paused ?? {}).flatMap(([key, periods]) => periods.map((p) => ({ key, ...p })));
  const bw = WIDTH / Math.max(1, data.concurrency.length);
  const zoomed = zoom.from !== undefined || zoom.to !== undefined;
  const hist = data.durations;
  const histPeak = Math.max(1, ...hist.counts);
  const hw = WIDTH / Math.max(1, hist.counts.length);

  const fraction = (e: ReactPointerEvent<SVGSVGElement>) => {
    const rect = e.currentTarget.getBoundingClientRect();
    return rect.width > 0 ? (e.clientX - rect.left) / rect.width : 0;
  };
  const onDown = (e: ReactPointerEvent<SVGSVGElement>) => {
    const f = fraction(e);
    e.currentTarget.setPointerCapture?.(e.pointerId);
    setDrag({ x0: f, x1: f });
  };
  const onMove = (e: ReactPointerEvent<SVGSVGElement>) => {
    if (drag) setDrag({ ...drag, x1: fraction(e) });
  };
  const onUp = (e: ReactPointerEvent<SVGSVGElement>) => {
    if (!drag) return;
    const x1 = fraction(e);
    setDrag(null);
    if (Math.abs(x1 - drag.x0) * WIDTH >= DRAG_MIN) {
      const [a, b] = [Math.min(drag.x0, x1), Math.max(drag.x0, x1)];
      setZoom({ from: timeAt(data, a), to: timeAt(data, b) });
      return;
    }
    const bucket = data.concurrency[bucketAt(data, x1)];
    const from = bucket.t;
    const to = bucket.t + data.bucket_seconds;
    // The table lists the items in flight at some moment of the bucket (`overlapping`).
    onPick({ from, to }, `in flight during ${moment(from)}–${moment(to)}`);
  };

  return (
    <div className="kr-timeline" data-testid="timeline">
      <div className="kr-row kr-small">
        <strong>Timeline</strong>
        <span className="kr-muted">
          {moment(data.from)}–{moment(data.to)} in {data.concurrency.length} steps of{" "}
          {formatMoment(data.bucket_seconds, data.bucket_seconds)} · at most {formatMean(busiest)} in flight on average in a step
        </span>
        {limits.length > 0 && (
          <span className="kr-tl-limit-legend" data-testid="timeline-limits">
            {limits.map(([key, points]) => `${key} limit ${points[points.length - 1].limit ?? "none"}`).join(" · ")}
          </span>
        )}
        {paused.length > 0 && (
          <span className="kr-tl-paused-legend" data-testid="timeline-paused">
            {Object.entries(data.paused ?? {})
              .map(([key, periods]) => `${key} breaker open ${periods.filter((p) => p.state === "open").length}×`)
              .join(" · ")}
          </span>
        )}
        {zoomed && (
          <button type="button" className="kr-btn" data-testid="timeline-reset" onClick={() => setZoom({})}>
            Whole run
          </button>
        )}
        <span className="kr-muted kr-grow kr-right">drag to zoom · click to list the items of that moment</span>
      </div>
      <svg
        className="kr-timeline-svg"
        data-testid="timeline-chart"
        viewBox={`0 0 ${WIDTH} ${CHART_HEIGHT}`}
        preserveAspectRatio="none"
        style={{ height: CHART_HEIGHT }}
        role="img"
        aria-label="items in flight over time"
        onPointerDown={onDown}
        onPointerMove={onMove}
        onPointerUp={onUp}
      >
        {paused.map((p) => {
          const [x, width] = pausedBand(data, p);
          return (
            <rect key={`${p.key}-${p.from}`} className={`kr-tl-paused kr-tl-${p.state}`} data-testid="timeline-pause" x={x} y={0} width={width} height={CHART_HEIGHT}>
              <title>{pausedTitle(p.key, p)}</title>
            </rect>
          );
        })}
        {data.concurrency.map((b, i) => {
          const h = (b.in_flight / peak) * (CHART_HEIGHT - 2);
          const hf = b.finished > 0 ? (b.failed / b.finished) * h : 0;
          return (
            <g key={i}>
              <rect className="kr-tl-running" x={i * bw} y={CHART_HEIGHT - h} width={Math.max(1, bw - 0.5)} height={h}>
                <title>{`${moment(b.t)}–${moment(b.t + data.bucket_seconds)}: ${formatMean(b.in_flight)} in flight on average, ${b.overlapping} in flight at some moment (a click lists them), ${b.started} started, ${b.finished} finished, ${b.failed} failed`}</title>
              </rect>
              {hf > 0 && <rect className="kr-tl-failed" x={i * bw} y={CHART_HEIGHT - hf} width={Math.max(1, bw - 0.5)} height={hf} />}
            </g>
          );
        })}
        {limits.map(([key, points]) => (
          <path key={key} className="kr-tl-limit" data-testid="timeline-limit" d={limitPath(data, points, peak)}>
            <title>{`${key}: adaptive limit ${points[points.length - 1].limit ?? "none"}`}</title>
          </path>
        ))}
        {drag && (
          <rect
            className="kr-tl-select"
            x={Math.min(drag.x0, drag.x1) * WIDTH}
            y={0}
            width={Math.abs(drag.x1 - drag.x0) * WIDTH}
            height={CHART_HEIGHT}
          />
        )}
      </svg>
      <div className="kr-row kr-small">
        <strong>Durations</strong>
        <span className="kr-muted" data-testid="duration-stats">
          {hist.count} items · p50 {formatDuration(hist.p50)} · p95 {formatDuration(hist.p95)} · max {formatDuration(hist.max)}
        </span>
      </div>
      <svg
        className="kr-timeline-svg"
        data-testid="duration-histogram"
        viewBox={`0 0 ${WIDTH} ${HIST_HEIGHT}`}
        preserveAspectRatio="none"
        style={{ height: HIST_HEIGHT }}
        role="img"
        aria-label="item durations"
      >
        {hist.counts.map((n, i) => {
          const h = (n / histPeak) * (HIST_HEIGHT - 2);
          const low = hist.edges[i];
          const high = hist.edges[i + 1];
          const span = `${formatMoment(low, high - low)}–${formatMoment(high, high - low)}`;
          return (
            <rect
              key={i}
              className="kr-tl-succeeded kr-clickable"
              x={i * hw}
              y={HIST_HEIGHT - Math.max(h, n > 0 ? 1 : 0)}
              width={Math.max(1, hw - 1)}
              height={Math.max(h, n > 0 ? 1 : 0)}
              onClick={() => onPick({ minDuration: low, maxDuration: i === hist.counts.length - 1 ? high + 1e-6 : high }, `took ${span}`)}
            >
              <title>{`${span}: ${n} items`}</title>
            </rect>
          );
        })}
      </svg>
    </div>
  );
}
