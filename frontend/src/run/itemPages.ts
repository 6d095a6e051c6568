// The item list of a run, read page by page from the server (docs/run-protocol.md: keyset
// cursor, filters and search run on the server). Rows are kept compact (a label instead of
// the item's data), loaded in order as the table scrolls towards them, and the pages in view
// are re-read while the run changes. Every page but the last holds exactly PAGE_SIZE rows
// (the server fills a page whenever more rows follow), so row i lives in page i / PAGE_SIZE.
// Pages further than KEPT_PAGES from the view drop their rows (keeping their cursor, so they
// are read again when scrolled back to): the rows held stay bounded whatever N.
import type { ItemPage, ItemState } from "../types";
import { itemLabel } from "./metrics";
import { fetchItemPage, PAGE_SIZE, type ItemQuery } from "./runApi";

export interface ItemRowView {
  key: string;
  index: number;
  parent_key: string;
  loop_block: string;
  status: ItemState["status"];
  label: string;
  duration: number | null;
  error: string;
  failed_block: string;
  /** host:pid of the process that ran it. */
  worker?: string;
  /** Its own steps' LLM tokens and USD (null: no price); undefined until a page says. */
  tokens?: number;
  cost_usd?: number | null;
}

const ERROR_CHARS = 300;

export function toRowView(item: ItemState): ItemRowView {
  return {
    key: item.key,
    index: item.index,
    parent_key: item.parent_key,
    loop_block: item.loop_block,
    status: item.status,
    label: itemLabel(item.data),
    duration: item.duration,
    error: item.error ? item.error.slice(0, ERROR_CHARS) : "",
    failed_block: item.failed_block,
    worker: item.worker,
    tokens: item.tokens,
    cost_usd: item.cost_usd,
  };
}

interface Page {
  cursor: string | null;
  /** null: dropped (far from the view); read again from `cursor` when needed. */
  rows: ItemRowView[] | null;
  next: string | null;
}

/** Pages kept on each side of the ones in view. */
export const KEPT_PAGES = 2;

export type PageFetcher = (runId: string, query: ItemQuery, cursor: string | null, limit: number, signal: AbortSignal) => Promise<ItemPage>;

export class ItemPager {
  /** Matching items on the server (null before the first answer). */
  count: number | null = null;
  capped = false;
  error = "";
  private pages: Page[] = [];
  private busy = false;
  private wanted: [number, number] = [0, 0];
  private refreshWanted: [number, number] | null = null;
  private controller = new AbortController();
  private disposed = false;

  constructor(
    readonly runId: string,
    readonly query: ItemQuery,
    private readonly onChange: () => void,
    private readonly fetcher: PageFetcher = fetchItemPage,
  ) {}

  /** Rows up to the end of the last page read (dropped pages included). */
  get loaded(): number {
    const end = this.pages.at(-1);
    return end ? (this.pages.length - 1) * PAGE_SIZE + (end.rows?.length ?? PAGE_SIZE) : 0;
  }

  /** Rows held in memory. */
  get held(): number {
    return this.pages.reduce((n, p) => n + (p.rows?.length ?? 0), 0);
  }

  row(index: number): ItemRowView | undefined {
    return this.pages[Math.floor(index / PAGE_SIZE)]?.rows?.[index % PAGE_SIZE];
  }

  /** Makes rows [first, last] available: pages read in order up to them, dropped ones again. */
  ensure(first: number, last: number): void {
    this.wanted = [Math.max(0, first), Math.max(first, last)];
    void this.pump();
  }

  /** Re-reads the pages holding rows [first, last] (and the first page when none is loaded). */
  refresh(first: number, last: number): void {
    this.refreshWanted = [Math.max(0, first), Math.max(first, last)];
    void this.pump();
  }

  dispose(): void {
    this.disposed = true;
    this.controller.abort();
    this.pages = [];
  }

  private async fetch(cursor: string | null): Promise<ItemPage> {
    return this.fetcher(this.runId, this.query, cursor, PAGE_SIZE, this.controller.signal);
  }

  private take(page: ItemPage): void {
    this.count = page.count;
    this.capped = Boolean(page.count_capped);
    this.error = "";
  }

  // One request at a time: refreshes first (what is in view), then dropped pages in view,
  // then further pages.
  private async pump(): Promise<void> {
    if (this.busy || this.disposed) return;
    this.busy = true;
    try {
      while (!this.disposed) {
        if (this.refreshWanted) {
          const [first, last] = this.refreshWanted;
          this.refreshWanted = null;
          await this.reread(first, last);
          continue;
        }
        const [first, last] = this.wanted;
        const dropped = this.pages.findIndex(
          (p, i) => p.rows === null && i >= Math.floor(first / PAGE_SIZE) && i <= Math.floor(last / PAGE_SIZE),
        );
        if (dropped >= 0) {
          await this.reread(dropped * PAGE_SIZE, dropped * PAGE_SIZE);
          continue;
        }
        const end = this.pages.at(-1);
        const more = !end || end.next !== null;
        if (!more || this.loaded > last) break;
        const cursor = end ? end.next : null;
        const answer = await this.fetch(cursor);
        if (this.disposed) return;
        this.take(answer);
        this.pages.push({ cursor, rows: answer.results.map(toRowView), next: answer.next });
        this.evict();
        this.onChange();
      }
    } catch (err) {
      if (this.disposed) return;
      this.error = err instanceof Error ? err.message : String(err);
      this.onChange();
    } finally {
      this.busy = false;
    }
  }

  /** Drops the rows of pages far from the view (never the last page: it marks the end). */
  private evict(): void {
    const [first, last] = this.wanted;
    const low = Math.floor(first / PAGE_SIZE) - KEPT_PAGES;
    const high = Math.floor(last / PAGE_SIZE) + KEPT_PAGES;
    this.pages.forEach((page, i) => {
      if ((i < low || i > high) && i < this.pages.length - 1) page.rows = null;
    });
  }

  private async reread(first: number, last: number): Promise<void> {
    const from = Math.min(Math.floor(first / PAGE_SIZE), Math.max(0, this.pages.length - 1));
    const to = Math.floor(last / PAGE_SIZE);
    let cursor = from === 0 ? null : (this.pages[from]?.cursor ?? null);
    for (let p = from; p <= to; p += 1) {
      if (p > 0 && cursor === null) {
        this.pages.length = p; // the list now ends before this page
        break;
      }
      const answer = await this.fetch(cursor);
      if (this.disposed) return;
      this.take(answer);
      const old = this.pages[p];
      this.pages[p] = { cursor, rows: answer.results.map(toRowView), next: answer.next };
      // Later pages began after this page's old end: keep them only if that did not move.
      if (old && old.next !== answer.next) this.pages.length = p + 1;
      cursor = answer.next;
    }
    this.evict();
    this.onChange();
  }
}
