import { describe, expect, it } from "vitest";
import type { BlockNode } from "../store/model";
import template from "../../../builder/gallery/parallel-lead-enrichment.json";
import { graphToFlow } from "../store/graphJson";
import type { GraphJson } from "../types";
import { CANVAS_TEXT_PX, FIT_ALL_MIN_ZOOM, READABLE_ZOOM, graphBounds, minimapReserve, minimapSize, openingViewport } from "./viewport";

/** The editor's style sheet, read from disk: Vitest blanks `.css?raw` imports (vitest#10788). */
function styleSheet(): string {
  type Fs = { readFileSync(path: string, encoding: "utf8"): string };
  const { process } = globalThis as unknown as { process: { getBuiltinModule(id: "node:fs"): Fs } };
  const here = import.meta.url; // not inline: Vite would rewrite new URL(…, import.meta.url)
  const path = decodeURIComponent(new URL("../styles.css", here).pathname);
  return process.getBuiltinModule("node:fs").readFileSync(path, "utf8");
}

/** Every font size the style sheet gives `selector` (as one of a rule's selectors). */
function fontSizes(selector: string): number[] {
  const sheet = styleSheet().replace(/\/\*[\s\S]*?\*\//g, "");
  const sizes: number[] = [];
  for (const [, selectors, body] of sheet.matchAll(/([^{}]+)\{([^{}]*)\}/g)) {
    const names = selectors.split(",").map((name) => name.trim().replace(/\s+/g, " "));
    if (!names.includes(selector)) continue;
    for (const [, px] of body.matchAll(/font-size:\s*([\d.]+)px/g)) sizes.push(Number(px));
  }
  return sizes;
}

describe("opening viewport", () => {
  // The canvas at 1440×900 with the palette, the settings panel and the run panel open.
  const CANVAS = { width: 890, height: 552 };

  it("opens the shipped template whole, legible, and clear of the mini map", () => {
    const graph = ((template as { graph?: GraphJson }).graph ?? template) as GraphJson;
    const { nodes } = graphToFlow(graph);
    const bounds = graphBounds(nodes as BlockNode[])!;
    const reserve = minimapReserve(CANVAS.width);
    expect(reserve).toBe(110 + 15);
    const view = openingViewport(bounds, CANVAS.width, CANVAS.height, reserve);
    expect(view.zoom).toBeGreaterThanOrEqual(READABLE_ZOOM);
    const left = bounds.x * view.zoom + view.x;
    const right = (bounds.x + bounds.width) * view.zoom + view.x;
    const top = bounds.y * view.zoom + view.y;
    const bottom = (bounds.y + bounds.height) * view.zoom + view.y;
    expect(left).toBeGreaterThanOrEqual(24 - 1e-6);
    expect(right).toBeLessThanOrEqual(CANVAS.width - 24 + 1e-6);
    expect(top).toBeGreaterThanOrEqual(24 - 1e-6);
    expect(bottom).toBeLessThanOrEqual(CANVAS.height - reserve - 24 + 1e-6);
  });

  it("starts a graph too wide to fit legibly at its left edge, at the readable zoom", () => {
    const view = openingViewport({ x: 0, y: 100, width: 3000, height: 300 }, CANVAS.width, CANVAS.height, 125);
    expect(view.zoom).toBe(READABLE_ZOOM);
    expect(view.x).toBeCloseTo(24);
    // Centred in the room above the mini map.
    expect(view.y).toBeCloseTo((CANVAS.height - 125 - 300 * READABLE_ZOOM) / 2 - 100 * READABLE_ZOOM);
  });

  it("fits a graph too wide for the readable zoom whole when asked to (Shift+L)", () => {
    const bounds = { x: 0, y: 40, width: 1580, height: 400 };
    const view = openingViewport(bounds, 890, 500, 125, FIT_ALL_MIN_ZOOM);
    expect(view.zoom).toBeLessThan(READABLE_ZOOM);
    expect(bounds.x * view.zoom + view.x).toBeGreaterThanOrEqual(24 - 1e-6);
    expect((bounds.x + bounds.width) * view.zoom + view.x).toBeLessThanOrEqual(890 - 24 + 1e-6);
    expect((bounds.y + bounds.height) * view.zoom + view.y).toBeLessThanOrEqual(500 - 125 - 24 + 1e-6);
  });

  it("sizes the mini map to the canvas, and reserves nothing without one", () => {
    expect(minimapSize(null)).toEqual({ width: 160, height: 110 });
    expect(minimapSize(500)).toEqual({ width: 112, height: 76 });
    expect(minimapSize(300)).toBeNull();
    expect(minimapReserve(300)).toBe(0);
  });

  it("fits and centres a small graph, never above 100%", () => {
    const view = openingViewport({ x: 100, y: 50, width: 220, height: 80 }, 800, 600);
    expect(view.zoom).toBe(1);
    expect(view.x).toBeCloseTo((800 - 220) / 2 - 100);
    expect(view.y).toBeCloseTo((600 - 80) / 2 - 50);
  });

  it("zooms out to fit a graph between the readable and the full zoom", () => {
    const view = openingViewport({ x: 0, y: 0, width: 1000, height: 300 }, 900, 600);
    expect(view.zoom).toBeCloseTo((900 - 48) / 1000);
  });

  it("sizes the blocks' text to read at the least opening zoom", () => {
    // A block's name and its run state (counters, state word): 12 px on screen or more.
    const main = [".block-name", ".run-status", ".run-counts"];
    // Its type, summary, errors and hints, and any other text on a node: 10.5 px or more.
    const secondary = [".react-flow__node", ".block-label", ".block-summary", ".node-errors", ".block-pinned", ".loop-node .handle-body::after"];
    for (const [selectors, least] of [[main, CANVAS_TEXT_PX.main], [secondary, CANVAS_TEXT_PX.secondary]] as const) {
      for (const selector of selectors) {
        const sizes = fontSizes(selector);
        expect(sizes.length, selector).toBeGreaterThan(0);
        for (const size of sizes) expect(size * READABLE_ZOOM, selector).toBeGreaterThanOrEqual(least);
      }
    }
    // The state word and the counters inherit their line's size.
    for (const selector of [".status-pill", "[data-count]", ".count-succeeded", ".count-failed", ".count-cancelled", ".count-running"])
      expect(fontSizes(selector), selector).toEqual([]);
  });

  it("has no bounds for an empty graph", () => {
    expect(graphBounds([])).toBeNull();
  });
});
