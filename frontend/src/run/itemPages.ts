// The item list of a run, read page by page from the server (docs/run-protocol.md: keyset
// cursor or offset, filters and search run on the server). Rows are kept compact (a label
// instead of the item's data), and the pages in view are re-read while the run changes. Every
// page but the last holds exactly PAGE_SIZE rows (the server fills a page whenever more rows
// follow), so row i lives in page i / PAGE_SIZE: a page in view is read straight from its
// offset (a jump to row 59,999 is one request, not 300), or on from the previous page's
// cursor when that page is held (scrolling on: cheap at any depth, and contiguous with the
// rows shown). Pages further than KEPT_PAGES from the view are forgotten and read again when
// scrolled back to: the rows held stay bounded whatever N.
import type { ItemPage, ItemState } from "../types";
import { itemLabel } from "./metrics";
import { fetchItemPage, PAGE_SIZE, type ItemQuery, type PageStart } from "./runApi";

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
  rows: ItemRowView[];
  /** Cursor after its last row (null: nothing followed): the next page reads on from it. */
  next: string | null;
  /** Read before a live re-read of other pages: still shown, read again once in view. */
  stale: boolean;
}

/** Pages kept on each side of the ones in view. */
export const KEPT_PAGES = 2;

export type PageFetcher = (runId: string, query: ItemQuery, start: PageStart, limit: number, signal: AbortSignal) => Promise<ItemPage>;

export class ItemPager {
  /** Matching items on the server (null before the first answer). */
  count: number | null = null;
  capped = false;
  error = "";
  private pages = new Map<number, Page>();
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

  /** Rows held in memory. */
  get held(): number {
    let n = 0;
    for (const page of this.pages.values()) n += page.rows.length;
    return n;
  }

  row(index: number): ItemRowView | undefined {
    return this.pages.get(Math.floor(index / PAGE_SIZE))?.rows[index % PAGE_SIZE];
  }

  /** Makes rows [first, last] available: the pages holding them, read where they start. */
  ensure(first: number, last: number): void {
    this.wanted = [Math.max(0, first), Math.max(first, last)];
    void this.pump();
  }

  /** Re-reads the pages holding rows [first, last] (the first page when nothing is counted yet). */
  refresh(first: number, last: number): void {
    this.refreshWanted = [Math.max(0, first), Math.max(first, last)];
    void this.pump();
  }

  dispose(): void {
    this.disposed = true;
    this.controller.abort();
    this.pages.clear();
  }

  private async fetch(start: PageStart): Promise<ItemPage> {
    return this.fetcher(this.runId, this.query, start, PAGE_SIZE, this.controller.signal);
  }

  private take(page: ItemPage): void {
    this.count = page.count;
    this.capped = Boolean(page.count_capped);
    this.error = "";
  }

  /** The last page the count says there is (page 0 before the first answer). */
  private lastPage(): number {
    return this.count ? Math.ceil(this.count / PAGE_SIZE) - 1 : 0;
  }

  /** Where page p starts: on from page p - 1 when it is held and fresh, else at its offset. */
  private start(p: number): PageStart {
    if (p === 0) return null;
    const before = this.pages.get(p - 1);
    if (before && !before.stale && before.next !== null) return { cursor: before.next };
    return { offset: p * PAGE_SIZE };
  }

  /** The first page in view that is not held, or held but stale; null when all are there. */
  private missing(): number | null {
    const [first, last] = this.wanted;
    const to = Math.min(Math.floor(last / PAGE_SIZE), this.lastPage());
    for (let p = Math.floor(first / PAGE_SIZE); p <= to; p += 1) {
      const page = this.pages.get(p);
      if (!page || page.stale) return p;
    }
    return null;
  }

  private keep(p: number, answer: ItemPage): void {
    this.take(answer);
    this.pages.set(p, { rows: answer.results.map(toRowView), next: answer.next, stale: false });
  }

  // One request at a time: refreshes first (what is in view), then the pages in view that are
  // not held. The view is looked at again after each answer, so a drag of the scrollbar reads
  // only where it stops, not every page it passed.
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
        const p = this.missing();
        if (p === null) break;
        const answer = await this.fetch(this.start(p));
        if (this.disposed) return;
        this.keep(p, answer);
        this.forget();
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

  /** Forgets pages far from the view, and pages past the end when the count shrank. */
  private forget(): void {
    const [first, last] = this.wanted;
    const low = Math.floor(first / PAGE_SIZE) - KEPT_PAGES;
    const high = Math.min(Math.floor(last / PAGE_SIZE) + KEPT_PAGES, this.lastPage());
    for (const p of this.pages.keys()) {
      if (p < low || p > high) this.pages.delete(p);
    }
  }

  // The first page by its position now, the next ones on from it; the rows of the other pages
  // held may have moved meanwhile (a live list), so they are read again when they come in view.
  private async reread(first: number, last: number): Promise<void> {
    const from = Math.floor(first / PAGE_SIZE);
    const to = Math.floor(last / PAGE_SIZE);
    for (let p = from; p <= Math.min(to, this.lastPage()); p += 1) {
      const start = p === from && p > 0 ? { offset: p * PAGE_SIZE } : this.start(p);
      const answer = await this.fetch(start);
      if (this.disposed) return;
      this.keep(p, answer);
    }
    for (const [p, page] of this.pages) {
      if (p < from || p > to) page.stale = true;
    }
    this.forget();
    this.onChange();
  }
}
