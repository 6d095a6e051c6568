// The editing surface: React Flow bound to the graph store. Drop blocks from the palette
// (innermost Loop under the pointer becomes the parent), drag nodes into/out of loops,
// connect (cycles and loop-boundary crossings refused while dragging), delete, undo/redo,
// copy / cut / paste through the clipboard and duplicate (store/clipboard.ts).
import {
  Background,
  BackgroundVariant,
  ControlButton,
  Controls,
  MiniMap,
  ReactFlow,
  useReactFlow,
  type Connection,
  type Edge,
  type FinalConnectionState,
  type IsValidConnection,
  type OnBeforeDelete,
  type OnDelete,
  type EdgeMouseHandler,
  type NodeMouseHandler,
  type OnNodeDrag,
  type Viewport,
} from "@xyflow/react";
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type DragEvent, type RefObject } from "react";
import { nodeTypesFor } from "../nodes";
import { BLOCK_MIME, GRAB_MIME } from "../palette/Palette";
import { LOOP_TYPE, nodeSize, parseClip, useGraphStore, type BlockNode, type Clip, type Notice } from "../store/graphStore";
import type { CatalogueEntry } from "../types";
import { ConfirmDialog, type Question } from "./ConfirmDialog";
import { ContextMenu, type Menu, type MenuItem } from "./ContextMenu";
import { deleteKeyApplies, MULTI_SELECT_KEYS } from "./keys";
import { NoteNode } from "./NoteNode";
import { ShortcutSheet } from "./ShortcutSheet";
import { FIT_ALL_MIN_ZOOM, graphBounds, minimapReserve, minimapSize, openingViewport } from "./viewport";

const TYPE_COLORS: Record<string, string> = {
  webhook: "#7c3aed",
  schedule: "#9333ea",
  loop: "#0ea5e9",
  agent: "#db2777",
  http: "#2563eb",
  database: "#0d9488",
  slack: "#ca8a04",
  transform: "#64748b",
  response: "#16a34a",
};

function isTextTarget(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el || !el.tagName) return false;
  return el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName);
}

/** The edge under a point, even below a node (a loop's body), or null. */
function edgeAt(x: number, y: number): string | null {
  const edge = document
    .elementsFromPoint(x, y)
    .map((el) => el.closest<SVGGElement>(".react-flow__edge"))
    .find((el) => el !== null);
  return edge?.getAttribute("data-id") ?? null;
}

/** Whether a loop was hit on its body (not its header, handles or resize controls). */
function onLoopBody(node: BlockNode, target: EventTarget | null): boolean {
  return node.type === LOOP_TYPE && !(target as HTMLElement | null)?.closest(".loop-head, .react-flow__handle, .react-flow__resize-control");
}

/** The element's width, following resizes (null before the first measure). */
function useWidth(ref: RefObject<HTMLElement | null>): number | null {
  const [width, setWidth] = useState<number | null>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    setWidth(el.getBoundingClientRect().width);
    if (typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver((entries) => setWidth(entries[0]?.contentRect.width ?? null));
    observer.observe(el);
    return () => observer.disconnect();
  }, [ref]);
  return width;
}

export function Canvas({ catalogue }: { catalogue: CatalogueEntry[] }) {
  const nodes = useGraphStore((s) => s.nodes);
  const edges = useGraphStore((s) => s.edges);
  const onNodesChange = useGraphStore((s) => s.onNodesChange);
  const onEdgesChange = useGraphStore((s) => s.onEdgesChange);
  const notice = useGraphStore((s) => s.notice);
  const { screenToFlowPosition, getZoom, setViewport } = useReactFlow();
  const [hint, setHint] = useState<Notice | null>(null);
  const [menu, setMenu] = useState<Menu | null>(null);
  const [sheet, setSheet] = useState(false);
  const hintTimer = useRef<number | undefined>(undefined);
  const canvasRef = useRef<HTMLDivElement>(null);
  const width = useWidth(canvasRef);
  // The mini map can be put away when it covers blocks one is working on (remembered).
  const [minimapShown, setMinimapShown] = useState(() => readMinimapShown());
  const minimap = minimapShown ? minimapSize(width) : null;
  // Read once: the saved viewport is restored on mount, later moves only write it. A graph
  // without one opens at a readable zoom (canvas/viewport.ts), computed from the canvas size
  // before React Flow mounts; an empty graph starts at 100%.
  const [initialViewport, setInitialViewport] = useState<Viewport | null>(() => useGraphStore.getState().viewport);
  useLayoutEffect(() => {
    if (initialViewport) return;
    const rect = canvasRef.current?.getBoundingClientRect();
    const bounds = graphBounds(useGraphStore.getState().nodes);
    setInitialViewport(bounds && rect ? openingViewport(bounds, rect.width, rect.height, minimapReserve(rect.width)) : { x: 40, y: 40, zoom: 1 });
  }, [initialViewport]);

  const nodeTypes = useMemo(() => ({ ...nodeTypesFor(catalogue.map((c) => c.type)), note: NoteNode }), [catalogue]);

  // Every notice (refused connection, connections removed by a move, …) shows for a while.
  useEffect(() => {
    if (!notice) return;
    setHint(notice);
    window.clearTimeout(hintTimer.current);
    hintTimer.current = window.setTimeout(() => setHint(null), notice.undo ? 6000 : 3500);
  }, [notice]);

  const flash = useCallback((message: string) => useGraphStore.getState().notify(message), []);

  // Deleting a loop that holds blocks asks first (its children go with it).
  const [question, setQuestion] = useState<Question | null>(null);
  const asking = useRef(false);
  const confirmDelete = useCallback(async (ids: string[]): Promise<boolean> => {
    const loops = useGraphStore.getState().loopsWithChildren(ids);
    if (!loops.length) return true;
    // Delete pressed again while the question is open: the open question answers.
    if (asking.current) return false;
    asking.current = true;
    const count = loops.reduce((sum, l) => sum + l.count, 0);
    const what = loops.length === 1 ? `the loop ${loops[0].name}` : `${loops.length} loops`;
    return new Promise<boolean>((resolve) =>
      setQuestion({
        text: `Delete ${what} and the ${count} block${count === 1 ? "" : "s"} inside ${loops.length === 1 ? "it" : "them"}?`,
        confirm: `Delete ${1 + count > 2 ? `${loops.length + count} blocks` : "both"}`,
        answer: (ok) => {
          asking.current = false;
          setQuestion(null);
          resolve(ok);
        },
      }),
    );
  }, []);

  // This tab's last copy, by Ctrl+C or a menu: what the menu's Paste takes when the browser
  // refuses to read the clipboard.
  const lastClip = useRef<Clip | null>(null);

  // The last pointer position over the canvas (screen coordinates): a paste lands there.
  const pointer = useRef<{ x: number; y: number } | null>(null);
  useEffect(() => {
    const el = canvasRef.current;
    if (!el) return;
    const onMove = (event: PointerEvent) => {
      pointer.current = { x: event.clientX, y: event.clientY };
    };
    const onLeave = () => {
      pointer.current = null;
    };
    el.addEventListener("pointermove", onMove);
    el.addEventListener("pointerleave", onLeave);
    return () => {
      el.removeEventListener("pointermove", onMove);
      el.removeEventListener("pointerleave", onLeave);
    };
  }, []);

  // Copy / cut / paste through the system clipboard (JSON text), so blocks travel between
  // workflows and tabs. Text fields and selected text keep the browser's own behaviour.
  useEffect(() => {
    const ours = (event: Event) => {
      if (isTextTarget(event.target) || isTextTarget(document.activeElement)) return false;
      const text = window.getSelection()?.toString() ?? "";
      return text.length === 0;
    };
    const hasSelection = () => useGraphStore.getState().selectedIds().length > 0;
    // Without a text selection the browser disables Copy; cancelling "before" enables it.
    const onBeforeCopy = (event: Event) => {
      if (ours(event) && hasSelection()) event.preventDefault();
    };
    const onBeforePaste = (event: Event) => {
      if (ours(event)) event.preventDefault();
    };
    const onCopy = (event: ClipboardEvent, cut: boolean) => {
      if (!ours(event) || !event.clipboardData) return;
      const store = useGraphStore.getState();
      const clip = store.copySelection();
      if (!clip) return;
      lastClip.current = clip;
      event.clipboardData.setData("text/plain", JSON.stringify(clip));
      event.preventDefault();
      if (cut) {
        const ids = store.selectedIds();
        void confirmDelete(ids).then((ok) => ok && useGraphStore.getState().deleteElements(ids));
      } else store.notify(`Copied ${clip.blocks.length} block${clip.blocks.length === 1 ? "" : "s"}`, "info");
    };
    const onPaste = (event: ClipboardEvent) => {
      if (!ours(event) || !event.clipboardData) return;
      const clip = parseClip(event.clipboardData.getData("text/plain"));
      if (clip === null) return;
      event.preventDefault();
      if (typeof clip === "string") {
        flash(`Not pasted: ${clip}`);
        return;
      }
      const rect = canvasRef.current?.getBoundingClientRect();
      const at = pointer.current;
      const inside = at && rect && at.x >= rect.left && at.x <= rect.right && at.y >= rect.top && at.y <= rect.bottom;
      useGraphStore.getState().paste(clip, { at: inside ? screenToFlowPosition(at) : null });
    };
    const copy = (event: ClipboardEvent) => onCopy(event, false);
    const cut = (event: ClipboardEvent) => onCopy(event, true);
    document.addEventListener("beforecopy", onBeforeCopy);
    document.addEventListener("beforecut", onBeforeCopy);
    document.addEventListener("beforepaste", onBeforePaste);
    document.addEventListener("copy", copy);
    document.addEventListener("cut", cut);
    document.addEventListener("paste", onPaste);
    return () => {
      document.removeEventListener("beforecopy", onBeforeCopy);
      document.removeEventListener("beforecut", onBeforeCopy);
      document.removeEventListener("beforepaste", onBeforePaste);
      document.removeEventListener("copy", copy);
      document.removeEventListener("cut", cut);
      document.removeEventListener("paste", onPaste);
    };
  }, [flash, screenToFlowPosition, confirmDelete]);

  useEffect(() => () => window.clearTimeout(hintTimer.current), []);

  // Ctrl/Cmd+Z undo, Shift+Ctrl/Cmd+Z (or Ctrl+Y) redo, Ctrl+D duplicate, Shift+L layout,
  // ? the shortcut sheet — not while typing in a field.
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (isTextTarget(event.target) || event.defaultPrevented) return;
      if (!event.ctrlKey && !event.metaKey && !event.altKey) {
        if (event.key === "?") {
          event.preventDefault();
          setSheet(true);
        } else if (event.key === "L" && event.shiftKey) {
          event.preventDefault();
          useGraphStore.getState().layout();
          // Then the whole laid-out graph in the canvas (above the mini map), even below the
          // readable zoom: a graph wider than the canvas was left clipped.
          const rect = canvasRef.current?.getBoundingClientRect();
          const bounds = graphBounds(useGraphStore.getState().nodes);
          if (rect && bounds) {
            void setViewport(openingViewport(bounds, rect.width, rect.height, minimapReserve(rect.width), FIT_ALL_MIN_ZOOM), { duration: 200 });
          }
        }
        return;
      }
      if (event.altKey) return;
      const key = event.key.toLowerCase();
      if (key === "d" && !event.shiftKey) {
        // Duplicate (the browser's bookmark shortcut otherwise).
        event.preventDefault();
        useGraphStore.getState().duplicate();
      } else if (key === "z" && !event.shiftKey) {
        event.preventDefault();
        useGraphStore.getState().undo();
      } else if ((key === "z" && event.shiftKey) || key === "y") {
        event.preventDefault();
        useGraphStore.getState().redo();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [setViewport]);

  const isValidConnection: IsValidConnection<Edge> = useCallback(
    (c) => useGraphStore.getState().canConnect({ source: c.source, target: c.target, sourceHandle: c.sourceHandle }) === null,
    [],
  );

  const onConnect = useCallback(
    (c: Connection) => {
      const store = useGraphStore.getState();
      const problem = store.canConnect(c);
      if (problem) flash(problem);
      else store.connect(c);
    },
    [flash],
  );

  const onConnectEnd = useCallback(
    (_: MouseEvent | TouchEvent, state: FinalConnectionState) => {
      if (state.isValid !== false || !state.fromNode || !state.toNode) return;
      const from = state.fromHandle?.type === "target" ? state.toNode.id : state.fromNode.id;
      const to = state.fromHandle?.type === "target" ? state.fromNode.id : state.toNode.id;
      const problem = useGraphStore.getState().canConnect({
        source: from,
        target: to,
        sourceHandle: state.fromHandle?.type === "source" ? state.fromHandle.id : null,
      });
      if (problem) flash(`Not connected: ${problem}`);
    },
    [flash],
  );

  const onBeforeDelete: OnBeforeDelete<BlockNode, Edge> = useCallback(
    async ({ nodes: gone }) => confirmDelete(gone.map((n) => n.id)),
    [confirmDelete],
  );

  // A loop is a big rectangle over whatever runs beneath it: a click on its body where an
  // edge lies under the pointer selects that edge (so Delete removes the edge alone).
  const onNodeClick: NodeMouseHandler<BlockNode> = useCallback((event, node) => {
    if (!onLoopBody(node, event.target)) return;
    const id = edgeAt(event.clientX, event.clientY);
    if (id) useGraphStore.getState().selectEdge(id);
  }, []);

  // The right-click menus. Copy and paste from a menu use the async clipboard API, and this
  // tab's last copy (lastClip) when the browser does not allow reading it.
  const closeMenu = useCallback(() => setMenu(null), []);
  const openMenu = useCallback((event: { clientX: number; clientY: number }, kind: Menu["kind"], items: MenuItem[]) => {
    const rect = canvasRef.current?.getBoundingClientRect();
    if (!rect) return;
    // Kept inside the canvas.
    const x = Math.min(event.clientX - rect.left, rect.width - 220);
    const y = Math.min(event.clientY - rect.top, rect.height - 34 * items.length - 12);
    setMenu({ x: Math.max(0, x), y: Math.max(0, y), kind, items });
  }, []);

  const copyToClipboard = useCallback((cut: boolean) => {
    const store = useGraphStore.getState();
    const clip = store.copySelection();
    if (!clip) return;
    lastClip.current = clip;
    void navigator.clipboard?.writeText(JSON.stringify(clip)).catch(() => undefined);
    if (cut) {
      const ids = store.selectedIds();
      void confirmDelete(ids).then((ok) => ok && useGraphStore.getState().deleteElements(ids));
    } else {
      store.notify(`Copied ${clip.blocks.length} block${clip.blocks.length === 1 ? "" : "s"}`, "info");
    }
  }, [confirmDelete]);

  const pasteFromClipboard = useCallback(
    async (screen: { x: number; y: number }) => {
      let clip: Clip | string | null = null;
      try {
        clip = parseClip((await navigator.clipboard.readText()) ?? "");
      } catch {
        clip = null;
      }
      if (clip === null) clip = lastClip.current;
      if (typeof clip === "string") {
        flash(`Not pasted: ${clip}`);
        return;
      }
      if (!clip) {
        flash("Nothing to paste: copy blocks first (Ctrl+C)");
        return;
      }
      useGraphStore.getState().paste(clip, { at: screenToFlowPosition(screen) });
    },
    [flash, screenToFlowPosition],
  );

  const deleteSelection = useCallback(async () => {
    const store = useGraphStore.getState();
    const ids = store.selectedIds();
    const edgeIds = store.edges.filter((e) => e.selected).map((e) => e.id);
    if (ids.length && !(await confirmDelete(ids))) return;
    useGraphStore.getState().deleteElements(ids, edgeIds);
  }, [confirmDelete]);

  const edgeMenu = useCallback(
    (event: { clientX: number; clientY: number }, id: string) => {
      useGraphStore.getState().selectEdge(id);
      openMenu(event, "edge", [
        { label: "Delete connection", shortcut: "Del", danger: true, action: () => useGraphStore.getState().deleteElements([], [id]) },
      ]);
    },
    [openMenu],
  );

  const onNodeContextMenu: NodeMouseHandler<BlockNode> = useCallback(
    (event, node) => {
      event.preventDefault();
      if (onLoopBody(node, event.target)) {
        const edge = edgeAt(event.clientX, event.clientY);
        if (edge) return edgeMenu(event, edge);
      }
      const store = useGraphStore.getState();
      if (!store.selectedIds().includes(node.id)) store.select(node.id);
      const count = useGraphStore.getState().selectedIds().length;
      const what = count > 1 ? `${count} blocks` : "";
      openMenu(event, "block", [
        { label: what ? `Copy ${what}` : "Copy", shortcut: "Ctrl+C", action: () => copyToClipboard(false) },
        { label: what ? `Cut ${what}` : "Cut", shortcut: "Ctrl+X", action: () => copyToClipboard(true) },
        { label: "Duplicate", shortcut: "Ctrl+D", action: () => useGraphStore.getState().duplicate() },
        { label: what ? `Delete ${what}` : "Delete", shortcut: "Del", danger: true, action: () => void deleteSelection() },
      ]);
    },
    [openMenu, edgeMenu, copyToClipboard, deleteSelection],
  );

  const onEdgeContextMenu: EdgeMouseHandler<Edge> = useCallback(
    (event, edge) => {
      event.preventDefault();
      edgeMenu(event, edge.id);
    },
    [edgeMenu],
  );

  const onPaneContextMenu = useCallback(
    (event: MouseEvent | React.MouseEvent) => {
      event.preventDefault();
      const screen = { x: event.clientX, y: event.clientY };
      openMenu(event, "canvas", [
        { label: "Paste", shortcut: "Ctrl+V", action: () => void pasteFromClipboard(screen) },
        { label: "Auto-layout", shortcut: "Shift+L", action: () => useGraphStore.getState().layout() },
        { label: "Add note", action: () => useGraphStore.getState().addNote(screenToFlowPosition(screen)) },
        { label: "Keyboard shortcuts", shortcut: "?", action: () => setSheet(true) },
      ]);
    },
    [openMenu, pasteFromClipboard, setSheet, screenToFlowPosition],
  );

  // Delete/Backspace, only with focus on the canvas or on nothing (React Flow's own delete key
  // listens page-wide: a Backspace on a Run-panel row deleted the selected block).
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if ((event.key !== "Delete" && event.key !== "Backspace") || event.defaultPrevented) return;
      if (event.ctrlKey || event.metaKey || event.altKey || isTextTarget(event.target)) return;
      if (!deleteKeyApplies(document.activeElement, canvasRef.current?.querySelector(".react-flow") ?? null)) return;
      event.preventDefault();
      void deleteSelection();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [deleteSelection]);

  const onDelete: OnDelete<BlockNode, Edge> = useCallback(({ nodes: gone, edges: cut }) => {
    useGraphStore.getState().deleteElements(
      gone.map((n) => n.id),
      cut.map((e) => e.id),
    );
  }, []);

  // A child is held inside its loop (extent "parent") until the pointer leaves the loop.
  const onNodeDrag: OnNodeDrag<BlockNode> = useCallback(
    (event, node) => {
      if (!node.parentId || node.extent !== "parent" || !("clientX" in event)) return;
      const store = useGraphStore.getState();
      const parent = store.nodes.find((n) => n.id === node.parentId);
      if (!parent) return;
      const point = screenToFlowPosition({ x: event.clientX, y: event.clientY });
      const origin = store.absolutePosition(parent.id);
      const { width, height } = nodeSize(parent);
      if (point.x < origin.x || point.y < origin.y || point.x > origin.x + width || point.y > origin.y + height) {
        store.releaseExtent(node.id);
      }
    },
    [screenToFlowPosition],
  );

  const onNodeDragStop: OnNodeDrag<BlockNode> = useCallback(
    (event, node) => {
      const store = useGraphStore.getState();
      if ("clientX" in event) {
        store.dropNode(node.id, screenToFlowPosition({ x: event.clientX, y: event.clientY }));
      }
      store.endGesture();
    },
    [screenToFlowPosition],
  );

  const onDragOver = useCallback((event: DragEvent) => {
    if (!event.dataTransfer.types.includes(BLOCK_MIME)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
  }, []);

  const onDrop = useCallback(
    (event: DragEvent) => {
      const type = event.dataTransfer.getData(BLOCK_MIME);
      if (!type) return;
      event.preventDefault();
      let grab: { x: number; y: number } | null = null;
      try {
        const parsed = JSON.parse(event.dataTransfer.getData(GRAB_MIME) || "null");
        const zoom = getZoom() || 1;
        if (parsed && Number.isFinite(parsed.x) && Number.isFinite(parsed.y)) grab = { x: parsed.x / zoom, y: parsed.y / zoom };
      } catch {
        grab = null;
      }
      // The new block is centred on the pointer and kept within the visible canvas.
      const rect = canvasRef.current?.getBoundingClientRect();
      let bounds = null;
      if (rect) {
        const a = screenToFlowPosition({ x: rect.left, y: rect.top });
        const b = screenToFlowPosition({ x: rect.right, y: rect.bottom });
        bounds = { x: a.x, y: a.y, width: b.x - a.x, height: b.y - a.y };
      }
      useGraphStore.getState().dropBlock(type, screenToFlowPosition({ x: event.clientX, y: event.clientY }), { grab, bounds });
    },
    [screenToFlowPosition, getZoom],
  );

  const onMoveEnd = useCallback((_: unknown, viewport: Viewport) => useGraphStore.getState().setViewport(viewport), []);

  return (
    <div className="canvas" data-testid="canvas" ref={canvasRef} onDragOver={onDragOver} onDrop={onDrop}>
      {initialViewport && (
        <ReactFlow<BlockNode, Edge>
          nodes={nodes}
          edges={edges}
          nodeTypes={nodeTypes}
          onNodesChange={onNodesChange}
          onEdgesChange={onEdgesChange}
          onConnect={onConnect}
          onConnectEnd={onConnectEnd}
          isValidConnection={isValidConnection}
          onBeforeDelete={onBeforeDelete}
          onDelete={onDelete}
          onNodeClick={onNodeClick}
          onNodeContextMenu={onNodeContextMenu}
          onEdgeContextMenu={onEdgeContextMenu}
          onPaneContextMenu={onPaneContextMenu}
          onMoveStart={closeMenu}
          onNodeDrag={onNodeDrag}
          onNodeDragStop={onNodeDragStop}
          onSelectionDragStop={() => useGraphStore.getState().endGesture()}
          onMoveEnd={onMoveEnd}
          defaultViewport={initialViewport}
          deleteKeyCode={null}
          multiSelectionKeyCode={MULTI_SELECT_KEYS}
          minZoom={0.2}
          maxZoom={2}
          defaultEdgeOptions={{ type: "default" }}
          // A selected edge is drawn above the blocks, so one picked under a loop shows.
          elevateEdgesOnSelect
          proOptions={{ hideAttribution: true }}
        >
          <Background variant={BackgroundVariant.Dots} gap={18} size={1} />
          <Controls position="bottom-left">
            <ControlButton onClick={() => setSheet(true)} title="Keyboard shortcuts (?)" aria-label="Keyboard shortcuts" data-action="shortcuts">
              ?
            </ControlButton>
            {minimapSize(width) ? (
              <ControlButton
                onClick={() => setMinimapShown(writeMinimapShown(!minimapShown))}
                title={minimapShown ? "Hide the mini map" : "Show the mini map"}
                aria-label={minimapShown ? "Hide the mini map" : "Show the mini map"}
                aria-pressed={minimapShown}
                data-action="toggle-minimap"
              >
                ▣
              </ControlButton>
            ) : null}
          </Controls>
          {minimap ? (
            <MiniMap
              position="bottom-right"
              pannable
              zoomable
              ariaLabel="Mini map: drag to pan, scroll to zoom"
              nodeColor={(n) => TYPE_COLORS[(n as BlockNode).data?.blockType] ?? "#94a3b8"}
              nodeStrokeWidth={2}
              style={minimap}
            />
          ) : null}
        </ReactFlow>
      )}
      {hint && (
        <div className={`canvas-hint ${hint.kind}`} role="status" data-testid="canvas-notice">
          <span>{hint.text}</span>
          {hint.undo && (
            <button
              type="button"
              className="link-button"
              data-action="notice-undo"
              onClick={() => {
                useGraphStore.getState().undo();
                setHint(null);
              }}
            >
              Undo
            </button>
          )}
        </div>
      )}
      {menu && <ContextMenu menu={menu} onClose={closeMenu} />}
      {sheet && <ShortcutSheet onClose={() => setSheet(false)} />}
      {question && <ConfirmDialog question={question} />}
      {nodes.length === 0 && <div className="canvas-empty">Drag a block from the left to start.</div>}
    </div>
  );
}

const MINIMAP_KEY = "klyntos.minimap";

function readMinimapShown(): boolean {
  try {
    return window.localStorage.getItem(MINIMAP_KEY) !== "hidden";
  } catch {
    return true; // storage refused (private mode): shown, as by default
  }
}

function writeMinimapShown(shown: boolean): boolean {
  try {
    window.localStorage.setItem(MINIMAP_KEY, shown ? "shown" : "hidden");
  } catch {
    // not remembered; the choice still holds for this page
  }
  return shown;
}
