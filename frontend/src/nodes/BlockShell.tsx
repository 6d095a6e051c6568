// The frame every block node shares: icon + label, name, a one-line config summary, handles,
// the block's live run status (from the run store) and its validation errors (graph store).
import { Handle, Position, type NodeProps } from "@xyflow/react";
import type { ReactNode } from "react";
import { statusLabel, useBlockRunState, useRunStore } from "../store/runStore";
import { useGraphStore, type BlockNode } from "../store/graphStore";
import { BlockIcon } from "./icons";

export type BlockNodeProps = NodeProps<BlockNode>;

/** Collapses whitespace so a summary stays on one line. */
export function oneLine(value: unknown, max = 120): string {
  const text = typeof value === "string" ? value : value === undefined || value === null ? "" : JSON.stringify(value);
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

export function useBlockMeta(blockType: string): { label: string; icon: string } {
  const label = useGraphStore((s) => s.catalogue[blockType]?.label ?? blockType);
  const icon = useGraphStore((s) => s.catalogue[blockType]?.icon ?? "box");
  return { label, icon };
}

/** Status pill. Subscribes to this block only, so a run re-renders just this node. */
export function RunStatus({ id }: { id: string }) {
  const status = useBlockStatus(id);
  return (
    <span className="run-status" data-status={status}>
      <span className={`status-pill status-${status}`} title={`run status: ${statusLabel(status)}`}>
        {statusLabel(status)}
      </span>
    </span>
  );
}

/**
 * The server's counters of a block inside a loop (one per item) or of a Loop (its items):
 * ⟳ running, ✓ succeeded, ✗ failed, ⊘ cancelled or never started.
 */
export function RunCounts({ id }: { id: string }) {
  const state = useBlockRunState(id);
  if (!state) return null;
  const stopped = state.cancelled + state.not_started;
  const title = [
    `${state.succeeded} succeeded`,
    `${state.failed} failed`,
    `${state.cancelled} cancelled`,
    `${state.not_started} not started`,
    `${state.running} running`,
    `of ${state.total}`,
  ].join(" · ");
  return (
    <div className="run-counts" title={title} data-testid="run-counts">
      {state.running > 0 && (
        <span className="count-running" data-count="running">
          ⟳ {state.running}
        </span>
      )}
      <span className="count-succeeded" data-count="succeeded">
        ✓ {state.succeeded}
      </span>
      <span className="count-failed" data-count="failed">
        ✗ {state.failed}
      </span>
      {stopped > 0 && (
        <span className="count-cancelled" data-count="stopped">
          ⊘ {stopped}
        </span>
      )}
    </div>
  );
}

export function useBlockStatus(id: string): string {
  return useRunStore((s) => {
    const status = s.blocks[id]?.status ?? "idle";
    // A step `run_if` skipped is stored as succeeded: "succeeded" read as "it posted".
    return status === "succeeded" && s.steps[id]?.skipped ? "skipped" : status;
  });
}

export function NodeErrors({ id }: { id: string }) {
  const errors = useGraphStore((s) => s.errorsByBlock[id]);
  if (!errors?.length) return null;
  const first = errors[0];
  return (
    <div className="node-errors" data-testid="node-error" title={errors.map((e) => `${e.field}: ${e.message}`).join("\n")}>
      <span className="node-error-field">{first.field}</span> {first.message}
      {errors.length > 1 && <span className="node-error-more"> (+{errors.length - 1} more)</span>}
    </div>
  );
}

/** A block (or loop) with pinned test data: tests use it, runs never do. */
export function PinMarker({ pinned }: { pinned: boolean }) {
  if (!pinned) return null;
  return (
    <span className="block-pinned" data-testid="block-pinned" title="Pinned test data: tests of the blocks after it use it; runs never do">
      📌
    </span>
  );
}

/**
 * A block: its icon and name (the title), its type and a one-line summary of its settings
 * under it, then its run state once it has one (counters inside a loop, the state word).
 * Sizes in styles.css: the name and the run state read at ≥ 12 px, the rest at ≥ 10.5 px on
 * screen at the editor's least opening zoom (canvas/viewport.ts READABLE_ZOOM).
 */
export function BlockShell(props: BlockNodeProps & { summary: string; children?: ReactNode; hasInput?: boolean }) {
  const { id, data, selected, parentId, summary, children, hasInput = true } = props;
  const { label, icon } = useBlockMeta(data.blockType);
  const invalid = useGraphStore((s) => Boolean(s.errorsByBlock[id]?.length));
  const status = useBlockStatus(id);
  return (
    <div
      className={`block-node type-${data.blockType} status-${status}${invalid ? " invalid" : ""}${selected ? " selected" : ""}`}
      data-block-id={id}
      data-block-name={data.name}
      data-block-type={data.blockType}
      data-status={status}
      data-invalid={invalid ? "true" : undefined}
    >
      {hasInput && <Handle type="target" position={Position.Left} className="handle handle-in" />}
      <div className="block-head">
        <span className="block-icon-wrap">
          <BlockIcon name={icon} size={15} />
        </span>
        <span className="block-name" data-testid="block-name" title={data.name}>
          {data.name}
        </span>
        <PinMarker pinned={data.extra.pin !== undefined} />
      </div>
      <div className="block-sub">
        <span className="block-label" title={label}>
          {label}
        </span>
        <span className="block-summary" title={summary}>
          {summary || <span className="muted">not configured</span>}
        </span>
      </div>
      {status !== "idle" && (
        <div className="block-run" data-testid="block-run">
          {parentId && <RunCounts id={id} />}
          <RunStatus id={id} />
        </div>
      )}
      {children}
      <NodeErrors id={id} />
      <Handle type="source" position={Position.Right} className="handle handle-out" />
    </div>
  );
}
