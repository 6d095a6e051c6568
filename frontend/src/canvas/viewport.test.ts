import { describe, expect, it } from "vitest";
import type { BlockNode } from "../store/model";
import template from "../../../builder/gallery/parallel-lead-enrichment.json";
import { graphToFlow } from "../store/graphJson";
import type { GraphJson } from "../types";
import { READABLE_ZOOM, graphBounds, openingViewport } from "./viewport";

describe("opening viewport", () => {
  // The canvas at 1440×900 with the palette, the settings panel and the run panel open.
  const CANVAS = { width: 890, height: 552 };

  it("opens the shipped template at a readable zoom with the trigger in view", () => {
    const graph = ((template as { graph?: GraphJson }).graph ?? template) as GraphJson;
    const { nodes } = graphToFlow(graph);
    const bounds = graphBounds(nodes as BlockNode[])!;
    expect(bounds.width).toBeGreaterThan(1500); // too wide to fit legibly
    const view = openingViewport(bounds, CANVAS.width, CANVAS.height);
    expect(view.zoom).toBeGreaterThanOrEqual(READABLE_ZOOM);
    // The graph's left edge (the webhook) is on screen, 24 px in.
    expect(bounds.x * view.zoom + view.x).toBeCloseTo(24);
    // It fits vertically at that zoom, so it is centred.
    const top = bounds.y * view.zoom + view.y;
    const bottom = (bounds.y + bounds.height) * view.zoom + view.y;
    expect(top).toBeGreaterThan(0);
    expect(bottom).toBeLessThan(CANVAS.height);
    expect(top).toBeCloseTo(CANVAS.height - bottom);
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

  it("has no bounds for an empty graph", () => {
    expect(graphBounds([])).toBeNull();
  });
});
