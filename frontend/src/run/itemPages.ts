// The item list of a run, read page by page from the server (docs/run-protocol.md: keyset
// cursor, filters and search run on the server). Rows are kept compact (a label instead of
// the item's data), loaded in order as the table scrolls towards them, and the pages in view
// are re-read while the run changes. Every page but the last holds exactly PAGE_SIZE rows
// (the server fills a page whenever more rows follow), so row i lives in page i / PAGE_SIZE.
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
  };
}

interface Page {
  cursor: string | null;
  rows: ItemRowView[];
  next: string | null;
}

export type PageFetcher = (runId: string, query: ItemQuery, cursor: string | null, limit: number, signal: AbortSignal) => Promise<ItemPage>;

export class ItemPager {
  /** Matching items on the server (null before the first answer). */
  count: number | null = null;
  capped = false;
  error = "";
  private pages: Page[] = [];
  private busy = false;
  private wanted = 0;
  private refreshWanted: [number, number] | null = null;
  private controller = new AbortController();
  private disposed = false;

  constructor(
    readonly runId: string,
    readonly query: ItemQuery,
    private readonly onChange: () => void,
    private readonly fetcher: PageFetcher = fetchItemPage,
  ) {}

  get loaded(): number {
    return this.pages.reduce((n, p) => n + p.rows.length, 0);
  }

  row(index: number): ItemRowView | undefined {
    return this.pages[Math.floor(index / PAGE_SIZE)]?.rows[index % PAGE_SIZE];
  }

  /** Loads pages in order until row `last` is loaded (or the list ends). */
  ensure(last: number): void {
    this.wanted = Math.max(this.wanted, last);
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

  // One request at a time: refreshes first (what is in view), then loading further pages.
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
        const end = this.pages.at(-1);
        const more = !end || end.next !== null;
        if (!more || this.loaded > this.wanted) break;
        const cursor = end ? end.next : null;
        const answer = await this.fetch(cursor);
        if (this.disposed) return;
        this.take(answer);
        this.pages.push({ cursor, rows: answer.results.map(toRowView), next: answer.next });
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
    this.onChange();
  }
}
