// Where a graph without a saved viewport opens: fitted when that keeps labels legible, else at
// the least readable zoom with its start (the trigger, on the left) in view; above the mini
// map, which would otherwise cover the bottom-right blocks. The shipped template fits whole
// in a 1440×900 window at a readable zoom (a test holds it to that).
import type { Viewport } from "@xyflow/react";
import type { BlockNode } from "../store/model";
import { nodeSize } from "../store/geometry";

/**
 * The editor never opens below this zoom. The canvas's type is sized for it (styles.css): a
 * block's 16 px name and run state render at 12 px on screen here, its 14 px type, summary
 * and hints at 10.5 px (CANVAS_TEXT_PX; viewport.test.ts reads the style sheet).
 */
export const READABLE_ZOOM = 0.75;
/** The least on-screen sizes of the canvas's text at the opening zoom. */
export const CANVAS_TEXT_PX = { main: 12, secondary: 10.5 };
/** Opening zoom never exceeds 100 % (a one-block graph is not blown up). */
export const OPEN_MAX_ZOOM = 1;
const PADDING = 24;
/** The mini map's sizes on a wide and on a narrow canvas (none below MINIMAP_MIN_WIDTH). */
export const MINIMAP_LARGE = { width: 160, height: 110 };
export const MINIMAP_SMALL = { width: 112, height: 76 };
export const MINIMAP_MIN_WIDTH = 380;
const MINIMAP_SMALL_BELOW = 720;
const PANEL_MARGIN = 15; // React Flow's panels sit this far from the canvas's edge

/** The mini map's size on a canvas `width` px wide; null when it is not shown. */
export function minimapSize(width: number | null): { width: number; height: number } | null {
  if (width === null || width >= MINIMAP_SMALL_BELOW) return MINIMAP_LARGE;
  return width >= MINIMAP_MIN_WIDTH ? MINIMAP_SMALL : null;
}

/** How much of the canvas's bottom the mini map takes. */
export function minimapReserve(width: number): number {
  const size = minimapSize(width);
  return size ? size.height + PANEL_MARGIN : 0;
}

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The box around the top-level nodes (children lie inside their loop's box). */
export function graphBounds(nodes: BlockNode[]): Rect | null {
  let left = Infinity;
  let top = Infinity;
  let right = -Infinity;
  let bottom = -Infinity;
  for (const node of nodes) {
    if (node.parentId) continue;
    const { width, height } = nodeSize(node);
    left = Math.min(left, node.position.x);
    top = Math.min(top, node.position.y);
    right = Math.max(right, node.position.x + width);
    bottom = Math.max(bottom, node.position.y + height);
  }
  if (!Number.isFinite(left)) return null;
  return { x: left, y: top, width: right - left, height: bottom - top };
}

/** The least zoom Shift+L (lay out and show the whole graph) goes down to: the whole graph
 * in view is what it is asked for, even below the readable zoom the editor opens at. */
export const FIT_ALL_MIN_ZOOM = 0.2;

/**
 * `minZoom`: the least zoom (the readable one when the editor opens; FIT_ALL_MIN_ZOOM for
 * Shift+L, which shows the whole graph).
 *
 * The opening viewport for `bounds` in a `width`×`height` canvas whose bottom `reserve` px are
 * covered (the mini map): the fitting zoom clamped to [READABLE_ZOOM, OPEN_MAX_ZOOM]; an axis
 * that fits is centred, one that does not starts at the graph's left (or top) edge.
 */
export function openingViewport(
  bounds: Rect,
  width: number,
  fullHeight: number,
  reserve = 0,
  minZoom = READABLE_ZOOM,
): Viewport {
  const height = Math.max(1, fullHeight - reserve);
  const fitX = (width - 2 * PADDING) / Math.max(1, bounds.width);
  const fitY = (height - 2 * PADDING) / Math.max(1, bounds.height);
  const zoom = Math.min(OPEN_MAX_ZOOM, Math.max(minZoom, Math.min(fitX, fitY)));
  const place = (start: number, size: number, room: number) => {
    const scaled = size * zoom;
    return scaled + 2 * PADDING <= room ? (room - scaled) / 2 - start * zoom : PADDING - start * zoom;
  };
  return { x: place(bounds.x, bounds.width, width), y: place(bounds.y, bounds.height, height), zoom };
}
