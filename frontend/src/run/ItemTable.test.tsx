import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ItemPage, ItemState } from "../types";
import { useRunStore } from "../store/runStore";
import { countLabel, ItemTable, LEFT, OVERSCAN, ROW_HEIGHT, shownRow, visibleRange } from "./ItemTable";
import { KEPT_PAGES, toRowView, type ItemPager, type PageFetcher } from "./itemPages";
import { PAGE_SIZE } from "./runApi";
import type { ItemQuery, PageStart } from "./runApi";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const N = 10_000;

function item(index: number): ItemState {
  return {
    key: `loop[${index}]`, loop_block: "loop", parent_key: "", index, status: index % 10 === 7 ? "failed" : "succeeded",
    error: index % 10 === 7 ? "boom" : "", failed_block: index % 10 === 7 ? "agent" : "", started_at: null,
    finished_at: null, duration: 0.5, data: { name: `lead ${index}` }, worker: `host-${index % 2}:${4000 + (index % 2)}`,
  };
}

interface Call {
  query: ItemQuery;
  start: PageStart;
}

/**
 * A server of n items like /api/runs/<id>/items/: pages on from a keyset cursor or at an
 * offset, a status filter and a search. `items` gives the rows as they are now (a live run).
 */
function server(calls: Call[], n = N, items: () => ItemState[] = () => Array.from({ length: n }, (_, i) => item(i))): PageFetcher {
  return async (_runId, query, start, limit) => {
    calls.push({ query, start });
    const all = items().filter(
      (i) => (!query.status || i.status === query.status) && (!query.q || JSON.stringify(i.data).includes(query.q)),
    );
    const from = !start ? 0 : "offset" in start ? start.offset : all.findIndex((i) => i.index >= Number(start.cursor));
    const rows = from < 0 ? [] : all.slice(from, from + limit);
    const more = from >= 0 && all.length > from + limit;
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
    const calls: Call[] = [];
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

    // Scroll to row 1,000: the pages in view only (rows 988.. are in page 4, 1000.. in page 5),
    // the first at its offset, the next on from its cursor; the DOM stays as small.
    const scroller = container.querySelector<HTMLElement>('[data-testid="item-scroll"]')!;
    await act(async () => {
      scroller.scrollTop = 1000 * ROW_HEIGHT;
      scroller.dispatchEvent(new Event("scroll"));
    });
    await flush();
    const later = rows();
    expect(later.length).toBe(first.length + OVERSCAN);
    expect(later.map((r) => r.dataset.itemKey)).toContain("loop[1000]");
    expect(calls.map((c) => c.start)).toEqual([null, { offset: 4 * PAGE_SIZE }, { cursor: String(5 * PAGE_SIZE) }]);
    expect(container.querySelectorAll('[data-testid="item-row-pending"]')).toHaveLength(0);
  });

  it("holds a bounded number of rows: pages far from the view are dropped and read again", async () => {
    const calls: Call[] = [];
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
    expect(calls.length).toBe(before + 1); // page 0 read again
    expect(pager.held).toBeLessThanOrEqual((2 * KEPT_PAGES + 2) * PAGE_SIZE);
  });

  it("filters and searches on the server, and a new query starts from the top", async () => {
    const calls: Call[] = [];
    const fetcher = server(calls);
    const view = (query: ItemQuery) => <ItemTable runId="r1" query={query} selected={null} onSelect={() => undefined} fetcher={fetcher} />;
    act(() => root.render(view({ status: "failed" })));
    await flush();
    expect(container.querySelector('[data-testid="item-count"]')?.textContent).toBe("1000 items");
    expect(new Set(rows().map((r) => r.dataset.status))).toEqual(new Set(["failed"]));
    expect(rows()[0].textContent).toContain("agent: boom");
    act(() => root.render(view({ q: "lead 4242" })));
    await flush();
    expect(calls.at(-1)).toEqual({ query: { q: "lead 4242" }, start: null });
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

describe("ItemTable: jumps, live re-reads and filters", () => {
  const scroll = async (row: number) => {
    const scroller = container.querySelector<HTMLElement>('[data-testid="item-scroll"]')!;
    await act(async () => {
      scroller.scrollTop = row * ROW_HEIGHT;
      scroller.dispatchEvent(new Event("scroll"));
    });
    await flush();
  };
  const count = () => container.querySelector('[data-testid="item-count"]')?.textContent;

  it("a jump to the end of 60,000 rows reads the page there in one request, not every page before it", async () => {
    const calls: Call[] = [];
    const n = 60_000;
    const pagers: ItemPager[] = [];
    act(() => root.render(<ItemTable runId="r1" query={{}} selected={null} onSelect={() => undefined} fetcher={server(calls, n)} onPager={(p) => pagers.push(p)} />));
    await flush();
    expect(calls).toHaveLength(1);
    await scroll(n);
    expect(calls.map((c) => c.start)).toEqual([null, { offset: n - PAGE_SIZE }]);
    expect(rows().map((r) => r.dataset.itemKey)).toContain(`loop[${n - 1}]`);
    // Row i is in page i / PAGE_SIZE: each row shown sits at its own index.
    for (const r of rows()) expect(Number(r.style.top.replace("px", "")) / ROW_HEIGHT).toBe(Number(r.dataset.itemKey!.slice(5, -1)));
    // Into the middle: one request again; then scrolling on reads the next page from its cursor.
    await scroll(30_000 + 100);
    expect(calls.slice(2).map((c) => c.start)).toEqual([{ offset: 30_000 }]);
    await scroll(30_000 + 190);
    expect(calls.slice(3).map((c) => c.start)).toEqual([{ cursor: String(30_200) }]);
    expect(pagers.at(-1)!.held).toBeLessThanOrEqual((2 * KEPT_PAGES + 2) * PAGE_SIZE);
    expect(container.querySelectorAll('[data-testid="item-row-pending"]')).toHaveLength(0);
  });

  it("re-reads the pages in view, wherever they are, while the run changes", async () => {
    const calls: Call[] = [];
    let data: ItemState[] = Array.from({ length: N }, (_, i) => ({ ...item(i), status: "running" }));
    act(() => useRunStore.setState({ runId: "r1", itemsVersion: 1, final: false, items: {} }));
    act(() => root.render(<ItemTable runId="r1" query={{}} selected={null} onSelect={() => undefined} fetcher={server(calls, N, () => data)} />));
    await flush();
    await scroll(5000);
    expect(rows().find((r) => r.dataset.itemKey === "loop[5000]")?.dataset.status).toBe("running");
    const before = calls.length;
    data = data.map((i) => ({ ...i, status: "succeeded" as const }));
    act(() => useRunStore.setState({ itemsVersion: 2 }));
    await flush();
    expect(calls.slice(before).map((c) => c.start)).toEqual([{ offset: 24 * PAGE_SIZE }, { cursor: String(25 * PAGE_SIZE) }]);
    expect(new Set(rows().map((r) => r.dataset.status))).toEqual(new Set(["succeeded"]));
  });

  it("a list filtered by status never shows a row the socket says left that status", async () => {
    const calls: Call[] = [];
    let data: ItemState[] = Array.from({ length: 100 }, (_, i) => ({ ...item(i), status: i < 10 ? "running" : "succeeded" }));
    act(() => useRunStore.setState({ runId: "r1", itemsVersion: 1, final: false, items: {} }));
    act(() => root.render(<ItemTable runId="r1" query={{ status: "running" }} selected={null} onSelect={() => undefined} fetcher={server(calls, 100, () => data)} />));
    await flush();
    expect(rows()).toHaveLength(10);
    // loop[3] ends: the socket says so before the list is read again.
    data = data.map((i) => (i.index === 3 ? { ...i, status: "succeeded" as const } : i));
    act(() => useRunStore.setState({ itemsVersion: 2, items: { "loop[3]": data[3] } }));
    expect(rows().map((r) => r.dataset.status)).toEqual(Array(9).fill("running"));
    expect(container.querySelector('[data-testid="item-row-left"]')?.textContent).toContain("loop[3] succeeded");
    await flush(); // the re-read
    expect(rows().map((r) => r.dataset.itemKey)).not.toContain("loop[3]");
    expect(rows()).toHaveLength(9);
    expect(container.querySelector('[data-testid="item-row-left"]')).toBeNull();
    expect(count()).toBe("9 items");
  });

  it("keeps a row the socket moved on when the list is not filtered by status", () => {
    const read = toRowView({ ...item(1), status: "running" });
    const live = { "loop[1]": { ...item(1), status: "succeeded" as const } };
    expect(shownRow(read, live)).toMatchObject({ key: "loop[1]", status: "succeeded" });
    expect(shownRow(read, live, "running")).toBe(LEFT);
    expect(shownRow(read, {}, "running")).toBe(read);
    expect(shownRow(toRowView(item(2)), live, "succeeded")).toMatchObject({ status: "succeeded" });
  });

  it("names the live count beside the list's while they differ", async () => {
    expect(countLabel(479, false)).toBe("479 items");
    expect(countLabel(1, false, 1)).toBe("1 item");
    expect(countLabel(479, false, 489)).toBe("479 items listed · 489 by the live count");
    expect(countLabel(100_000, true, 120_000)).toBe("100000+ items");
    const fetcher = server([], 40);
    act(() => root.render(<ItemTable runId="r1" query={{}} selected={null} onSelect={() => undefined} fetcher={fetcher} liveCount={50} />));
    await flush();
    expect(count()).toBe("40 items listed · 50 by the live count");
    expect(container.querySelector('[data-testid="item-count"]')?.getAttribute("title")).toContain("live count");
    act(() => root.render(<ItemTable runId="r1" query={{}} selected={null} onSelect={() => undefined} fetcher={fetcher} liveCount={40} />));
    expect(count()).toBe("40 items");
  });

  for (const final of [true, false]) {
    it(`one filter or search change sends one request (${final ? "ended" : "live"} run)`, async () => {
      const calls: Call[] = [];
      const fetcher = server(calls);
      act(() => useRunStore.setState({ runId: "r1", itemsVersion: 7, final, items: {} }));
      const view = (query: ItemQuery) => <ItemTable runId="r1" query={query} selected={null} onSelect={() => undefined} fetcher={fetcher} />;
      act(() => root.render(view({})));
      await flush();
      expect(calls).toHaveLength(1);
      act(() => root.render(view({ status: "failed" })));
      await flush();
      act(() => root.render(view({ status: "failed", q: "lead 17" })));
      await flush();
      expect(calls.map((c) => c.query)).toEqual([{}, { status: "failed" }, { status: "failed", q: "lead 17" }]);
      // A change of the run's items still re-reads the view, once.
      act(() => useRunStore.setState({ itemsVersion: 8 }));
      await flush();
      expect(calls).toHaveLength(4);
    });
  }
});
