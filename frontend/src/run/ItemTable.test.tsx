import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ItemPage, ItemState } from "../types";
import { useRunStore } from "../store/runStore";
import { ItemTable, OVERSCAN, ROW_HEIGHT, visibleRange } from "./ItemTable";
import { KEPT_PAGES, type ItemPager, type PageFetcher } from "./itemPages";
import { PAGE_SIZE } from "./runApi";
import type { ItemQuery } from "./runApi";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const N = 10_000;

function item(index: number): ItemState {
  return {
    key: `loop[${index}]`, loop_block: "loop", parent_key: "", index, status: index % 10 === 7 ? "failed" : "succeeded",
    error: index % 10 === 7 ? "boom" : "", failed_block: index % 10 === 7 ? "agent" : "", started_at: null,
    finished_at: null, duration: 0.5, data: { name: `lead ${index}` }, worker: `host-${index % 2}:${4000 + (index % 2)}`,
  };
}

/** A server of N items: keyset pages, a status filter and a search, like /api/runs/<id>/items/. */
function server(calls: { query: ItemQuery; cursor: string | null }[]): PageFetcher {
  return async (_runId, query, cursor, limit) => {
    calls.push({ query, cursor });
    const all = Array.from({ length: N }, (_, i) => item(i)).filter(
      (i) => (!query.status || i.status === query.status) && (!query.q || JSON.stringify(i.data).includes(query.q)),
    );
    const start = cursor ? Number(cursor) : 0;
    const rows = all.filter((i) => i.index > start - 1).slice(0, limit);
    const more = all.filter((i) => i.index > start - 1).length > limit;
    const page: ItemPage = { results: rows, next: more ? String(rows.at(-1)!.index + 1) : null, count: all.length };
    return page;
  };
}

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
  useRunStore.getState().reset();
});

async function flush() {
  for (let i = 0; i < 5; i += 1) await act(async () => await new Promise((r) => setTimeout(r, 0)));
}

const rows = () => Array.from(container.querySelectorAll<HTMLElement>('[data-testid="item-row"]'));

describe("ItemTable", () => {
  it("renders only the rows in view of 10,000, paging from the server as it scrolls", async () => {
    const calls: { query: ItemQuery; cursor: string | null }[] = [];
    const fetcher = server(calls);
    act(() => root.render(<ItemTable runId="r1" query={{}} selected={null} onSelect={() => undefined} fetcher={fetcher} />));
    await flush();
    expect(container.querySelector('[data-testid="item-count"]')?.textContent).toBe("10000 items");
    const first = rows();
    expect(first.length).toBeLessThanOrEqual(Math.ceil(320 / ROW_HEIGHT) + 2 * OVERSCAN + 1);
    expect(first[0].dataset.itemKey).toBe("loop[0]");
    // Which worker ran each item (KLYNTOS_EXECUTOR=workers), in a column of its own.
    expect(first[0].querySelector('[data-testid="item-worker"]')?.textContent).toBe("host-0:4000");
    expect(first[1].querySelector('[data-testid="item-worker"]')?.textContent).toBe("host-1:4001");
    expect(calls).toHaveLength(1); // one page of 200 covers the view
    const space = container.querySelector<HTMLElement>(".kr-vspace")!;
    expect(space.style.height).toBe(`${N * ROW_HEIGHT}px`);

    // Scroll to row 1,000: pages load in order up to it; the DOM stays as small.
    const scroller = container.querySelector<HTMLElement>('[data-testid="item-scroll"]')!;
    await act(async () => {
      scroller.scrollTop = 1000 * ROW_HEIGHT;
      scroller.dispatchEvent(new Event("scroll"));
    });
    await flush();
    const later = rows();
    expect(later.length).toBe(first.length + OVERSCAN);
    expect(later.map((r) => r.dataset.itemKey)).toContain("loop[1000]");
    expect(calls.length).toBe(6);
    expect(container.querySelectorAll('[data-testid="item-row-pending"]')).toHaveLength(0);
  });

  it("holds a bounded number of rows: pages far from the view are dropped and read again", async () => {
    const calls: { query: ItemQuery; cursor: string | null }[] = [];
    const pagers: ItemPager[] = [];
    const fetcher = server(calls);
    const spy: PageFetcher = (...args) => fetcher(...args);
    act(() => root.render(<ItemTable runId="r1" query={{}} selected={null} onSelect={() => undefined} fetcher={spy} onPager={(p) => pagers.push(p)} />));
    await flush();
    const scroller = container.querySelector<HTMLElement>('[data-testid="item-scroll"]')!;
    const scrollTo = async (row: number) => {
      await act(async () => {
        scroller.scrollTop = row * ROW_HEIGHT;
        scroller.dispatchEvent(new Event("scroll"));
      });
      await flush();
      await flush();
    };
    await scrollTo(9000);
    expect(rows().map((r) => r.dataset.itemKey)).toContain("loop[9000]");
    const pager = pagers.at(-1)!;
    expect(pager.held).toBeLessThanOrEqual((2 * KEPT_PAGES + 2) * PAGE_SIZE);
    const before = calls.length;
    await scrollTo(0);
    expect(rows()[0].dataset.itemKey).toBe("loop[0]");
    expect(calls.length).toBe(before + 1); // page 0 read again from its cursor
    expect(pager.held).toBeLessThanOrEqual((2 * KEPT_PAGES + 2) * PAGE_SIZE);
  });

  it("filters and searches on the server, and a new query starts from the top", async () => {
    const calls: { query: ItemQuery; cursor: string | null }[] = [];
    const fetcher = server(calls);
    const view = (query: ItemQuery) => <ItemTable runId="r1" query={query} selected={null} onSelect={() => undefined} fetcher={fetcher} />;
    act(() => root.render(view({ status: "failed" })));
    await flush();
    expect(container.querySelector('[data-testid="item-count"]')?.textContent).toBe("1000 items");
    expect(new Set(rows().map((r) => r.dataset.status))).toEqual(new Set(["failed"]));
    expect(rows()[0].textContent).toContain("agent: boom");
    act(() => root.render(view({ q: "lead 4242" })));
    await flush();
    expect(calls.at(-1)).toEqual({ query: { q: "lead 4242" }, cursor: null });
    expect(rows().map((r) => r.dataset.itemKey)).toEqual(["loop[4242]"]);
  });

  it("re-mounting leaves the same number of nodes (nothing kept from the last mount)", async () => {
    const fetcher = server([]);
    const counts: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      act(() => root.render(<ItemTable runId="r1" query={{}} selected={null} onSelect={() => undefined} fetcher={fetcher} />));
      await flush();
      counts.push(container.querySelectorAll("*").length);
      act(() => root.render(<p>history</p>));
    }
    expect(new Set(counts).size).toBe(1);
  });

  it("windows the rows for a scroll position", () => {
    expect(visibleRange(0, 320, 0)).toEqual([0, -1]);
    expect(visibleRange(0, 280, 5)).toEqual([0, 4]);
    expect(visibleRange(100 * ROW_HEIGHT, 280, N)).toEqual([100 - OVERSCAN, 110 + OVERSCAN]);
  });
});
