// One bar per item over time, so overlap (the concurrency actually achieved) is visible.
import { useMemo } from "react";
import type { RunItem } from "../store/runStore";
import { formatDuration, itemLabel, timeline } from "./metrics";

const WIDTH = 1000;
const MAX_HEIGHT = 240;

export function TimelineView(props: { items: RunItem[] }) {
  const data = useMemo(() => timeline(props.items), [props.items]);
  if (!data.bars.length) return null;
  const n = data.bars.length;
  const row = Math.max(1, Math.min(10, MAX_HEIGHT / n));
  const gap = row >= 4 ? 1 : 0;
  const height = row * n;
  const scale = data.span > 0 ? WIDTH / data.span : 0;

  return (
    <div className="kr-timeline" data-testid="timeline">
      <div className="kr-row kr-small">
        <strong>Timeline</strong>
        <span data-testid="max-concurrency">max {data.maxConcurrent} running at once</span>
        <span className="kr-muted kr-grow kr-right">{formatDuration(data.span / 1000)}</span>
      </div>
      <svg
        className="kr-timeline-svg"
        viewBox={`0 0 ${WIDTH} ${height}`}
        preserveAspectRatio="none"
        style={{ height: Math.max(24, Math.min(MAX_HEIGHT, height)) }}
        role="img"
        aria-label="item timeline"
      >
        {data.bars.map((bar, i) => (
          <rect
            key={bar.key}
            className={`kr-tl-${bar.status}`}
            x={bar.start * scale}
            y={i * row}
            width={Math.max(2, (bar.end - bar.start) * scale)}
            height={Math.max(0.5, row - gap)}
          >
            <title>{`#${bar.index} ${itemLabel(bar.data)} · ${bar.status} · ${formatDuration((bar.end - bar.start) / 1000)}`}</title>
          </rect>
        ))}
      </svg>
    </div>
  );
}
