// The run's items, virtualised: only the rows in view (plus a margin) are in the DOM, each
// ROW_HEIGHT pixels high in a spacer as tall as the whole list, so 10,000 or 100,000 items
// cost what 40 do. Rows come page by page from the server (run/itemPages.ts) as the list
// scrolls; filters and search run on the server. While the run changes, the rows in view
// are re-read at most once per REFRESH_MS; meanwhile a row the socket says left the status the
// list is filtered by is hidden, never shown under the wrong filter. A click opens the item in
// the side panel.
import { memo, useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import { statusLabel, useRunStore, type RunItem } from "../store/runStore";
import { ItemPager, toRowView, type ItemRowView, type PageFetcher } from "./itemPages";
import { formatDuration, formatTokens, formatUsd } from "./metrics";
import type { ItemQuery } from "./runApi";

export const ROW_HEIGHT = 28;
/** Rows rendered above and below the ones in view. */
export const OVERSCAN = 12;
const DEFAULT_VIEW_HEIGHT = 320;
export const REFRESH_MS = 1000;

/** Rows [first, last] to render for a scroll position (clamped to the list). */
export function visibleRange(scrollTop: number, viewHeight: number, count: number): [number, number] {
  if (count <= 0) return [0, -1];
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(count - 1, Math.ceil((scrollTop + viewHeight) / ROW_HEIGHT) + OVERSCAN);
  return [first, Math.max(first - 1, last)];
}

const Row = memo(function Row(props: {
  row: ItemRowView;
  top: number;
  selected: boolean;
  onSelect: (key: string) => void;
}) {
  const { row, top, selected, onSelect } = props;
  const error = row.failed_block && row.error ? `${row.failed_block}: ${row.error}` : row.error;
  return (
    <div
      role="row"
      data-testid="item-row"
      data-item-key={row.key}
      data-status={row.status}
      className={selected ? "kr-vrow kr-selected" : "kr-vrow"}
      style={{ top }}
      tabIndex={0}
      onClick={() => onSelect(row.key)}
      onKeyDown={(e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          onSelect(row.key);
        }
      }}
    >
      <span role="cell" className="kr-num" title={row.key}>
        {row.parent_key ? row.key : row.index}
      </span>
      <span role="cell" className="kr-label-cell" title={row.label}>
        {row.label}
      </span>
      <span role="cell">
        <span className={`kr-badge kr-s-${row.status}`}>{statusLabel(row.status)}</span>
      </span>
      <span role="cell" className="kr-num">
        {formatDuration(row.duration)}
      </span>
      <span role="cell" className="kr-num" data-testid="item-cost" title={row.tokens ? formatTokens(row.tokens) : undefined}>
        {row.tokens ? (row.cost_usd === null ? "no price" : formatUsd(row.cost_usd)) : ""}
      </span>
      <span role="cell" className="kr-worker-cell" data-testid="item-worker" title={row.worker}>
        {row.worker ?? ""}
      </span>
      <span role="cell" className="kr-err-cell" title={error}>
        {error}
      </span>
    </div>
  );
});

export function ItemTable(props: {
  runId: string;
  query: ItemQuery;
  selected: string | null;
  onSelect: (key: string) => void;
  fetcher?: PageFetcher;
  /** Tells a test the pager in use. */
  onPager?: (pager: ItemPager) => void;
  /** While the run goes on: the live counters' number for this query, when they count the same rows. */
  liveCount?: number | null;
}) {
  const { runId, query, selected, onSelect, fetcher, onPager, liveCount } = props;
  const [, setVersion] = useState(0);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewHeight, setViewHeight] = useState(DEFAULT_VIEW_HEIGHT);
  const scroller = useRef<HTMLDivElement>(null);
  const pagerRef = useRef<ItemPager | null>(null);
  const queryKey = JSON.stringify(query);

  // One pager per run and query; the old one is disposed (its requests aborted, rows dropped).
  const [pager, setPager] = useState<ItemPager | null>(null);
  useEffect(() => {
    const made = new ItemPager(runId, JSON.parse(queryKey) as ItemQuery, () => setVersion((v) => v + 1), fetcher);
    pagerRef.current = made;
    setPager(made);
    onPager?.(made);
    if (scroller.current) scroller.current.scrollTop = 0;
    setScrollTop(0);
    return () => {
      made.dispose();
      if (pagerRef.current === made) pagerRef.current = null;
    };
  }, [runId, queryKey, fetcher, onPager]);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && el.clientHeight > 0) setViewHeight(el.clientHeight);
  }, [pager]);

  const count = pager?.count ?? 0;
  const [first, last] = visibleRange(scrollTop, viewHeight, count);
  const lastWanted = pager?.count === null ? PAGE_HINT : last;

  useEffect(() => {
    pager?.ensure(first, lastWanted);
  }, [pager, first, lastWanted]);

  // Re-read the rows in view while the run changes (throttled), and once more at its end.
  const itemsVersion = useRunStore((s) => (s.runId === runId ? s.itemsVersion : 0));
  const live = useRunStore((s) => (s.runId === runId ? s.items : NO_ITEMS));
  const final = useRunStore((s) => s.runId === runId && s.final);
  const range = useRef<[number, number]>([first, last]);
  useEffect(() => {
    range.current = [first, last];
  }, [first, last]);
  const lastRefresh = useRef(0);
  // A new pager's first read already sees the items so far: re-reading for them too sent each
  // filter change's request twice. Only what changes after it re-reads.
  const seen = useRef<{ pager: ItemPager | null; itemsVersion: number; final: boolean }>({ pager: null, itemsVersion: 0, final: false });
  useEffect(() => {
    if (!pager) return;
    const before = seen.current;
    seen.current = { pager, itemsVersion, final };
    if (before.pager !== pager || itemsVersion === 0) return;
    if (before.itemsVersion === itemsVersion && before.final === final) return;
    const timer = setTimeout(() => {
      lastRefresh.current = now();
      const [a, b] = range.current;
      pager.refresh(a, Math.max(a, b));
    }, final ? 0 : throttle(lastRefresh.current, REFRESH_MS));
    return () => clearTimeout(timer);
  }, [pager, itemsVersion, final]);

  const onScroll = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    if (el.clientHeight > 0) setViewHeight(el.clientHeight);
  }, []);

  const rows = [];
  for (let i = first; i <= last; i += 1) {
    const read = pager?.row(i);
    const row = shownRow(read, live, query.status);
    rows.push(
      row === LEFT ? (
        <div key={`left-${i}`} className="kr-vrow kr-muted" data-testid="item-row-left" style={{ top: i * ROW_HEIGHT }}>
          {read?.key} {statusLabel(live[read?.key ?? ""]?.status ?? "")} · updating the list…
        </div>
      ) : row ? (
        <Row key={row.key} row={row} top={i * ROW_HEIGHT} selected={row.key === selected} onSelect={onSelect} />
      ) : (
        <div key={`pending-${i}`} className="kr-vrow kr-muted" data-testid="item-row-pending" style={{ top: i * ROW_HEIGHT }}>
          loading…
        </div>
      ),
    );
  }

  return (
    <div className="kr-items">
      <div className="kr-vtable" role="table" data-testid="item-table" aria-rowcount={count}>
        <div className="kr-vrow kr-vhead" role="row">
          <span role="columnheader">#</span>
          <span role="columnheader">Item</span>
          <span role="columnheader">Status</span>
          <span role="columnheader">Duration</span>
          <span role="columnheader" title="the item's own LLM calls: tokens × price">Cost</span>
          <span role="columnheader" title="the process that ran the item (host:pid)">Worker</span>
          <span role="columnheader">Error</span>
        </div>
        <div className="kr-vscroll" ref={scroller} onScroll={onScroll} data-testid="item-scroll">
          <div className="kr-vspace" style={{ height: count * ROW_HEIGHT }}>
            {rows}
          </div>
        </div>
      </div>
      <div className="kr-row kr-small">
        <span
          className="kr-muted"
          data-testid="item-count"
          title={pager && pager.count !== null && countLabel(count, pager.capped, liveCount) !== countLabel(count, pager.capped) ? COUNT_LAG : undefined}
        >
          {pager?.count === null || !pager ? "loading…" : countLabel(count, pager.capped, liveCount)}
        </span>
        {pager?.error && <span className="kr-error">{pager.error}</span>}
        {pager && pager.count === 0 && <span className="kr-muted">No items match.</span>}
      </div>
    </div>
  );
}

const NO_ITEMS: Record<string, RunItem> = {};

/**
 * A loaded row, or the socket's newer word on it: a row read as running that the socket has
 * since seen end shows its end at once (the page is re-read within REFRESH_MS anyway).
 */
export function fresher(row: ItemRowView | undefined, live: Record<string, RunItem>): ItemRowView | undefined {
  if (!row || row.status !== "running") return row;
  const item = live[row.key];
  if (!item || item.status === "running") return row;
  // The socket carries no tokens: the page's stay until it is re-read.
  const { label: _label, tokens: _tokens, cost_usd: _cost, ...rest } = toRowView(item);
  return { ...row, ...rest };
}

/** What a filtered table shows for a row that no longer has the filter's status. */
export const LEFT = "left";

/**
 * The row to show at a position: the page's row with the socket's newer word on it, or LEFT
 * when that word says it left the status the list is filtered by (hidden until the pages in
 * view are re-read, within REFRESH_MS: a "running" list never shows a succeeded row).
 */
export function shownRow(row: ItemRowView | undefined, live: Record<string, RunItem>, status?: string): ItemRowView | typeof LEFT | undefined {
  const fresh = fresher(row, live);
  return fresh && status && fresh.status !== status ? LEFT : fresh;
}

const COUNT_LAG =
  "While the run goes on the live count (the filter's number) moves first; the list is read from the stored items about once a second, and an item that just started is stored a moment later.";

/** "479 items", or "479 items listed · 489 by the live count" while the two differ. */
export function countLabel(count: number, capped: boolean, liveCount?: number | null): string {
  const listed = `${count}${capped ? "+" : ""} item${count === 1 ? "" : "s"}`;
  if (liveCount === null || liveCount === undefined || capped || liveCount === count) return listed;
  return `${listed} listed · ${liveCount} by the live count`;
}

function now(): number {
  return Date.now();
}

/** Milliseconds to wait so that two reads are at least `every` apart. */
export function throttle(last: number, every: number): number {
  return Math.max(0, last + every - now());
}

/** Before the first answer, ask for the first page's worth of rows. */
const PAGE_HINT = 50;
