// A Loop is a resizable container (React Flow sub-flow): its children run once per item.
// Handles: input on the left edge, output (after all items) on the right edge, and "body"
// inside the left edge, which feeds the blocks inside the loop.
import { Handle, NodeResizer, Position } from "@xyflow/react";
import { memo } from "react";
import { BODY_HANDLE, useGraphStore } from "../store/graphStore";
import { NodeErrors, PinMarker, RunCounts, RunStatus, oneLine, useBlockMeta, useBlockStatus, type BlockNodeProps } from "./BlockShell";
import { BlockIcon } from "./icons";

export function loopSummary(config: Record<string, unknown>): string {
  const items = Array.isArray(config.items) ? `${config.items.length} items` : oneLine(config.items, 60);
  const variable = typeof config.variable === "string" && config.variable ? config.variable : "item";
  const mode =
    config.execution === "sequential"
      ? "sequential"
      : `parallel ×${typeof config.max_concurrent === "number" ? config.max_concurrent : 10}`;
  const aggregations = Object.keys((config.aggregations as object | undefined) ?? {}).length;
  return [items ? `each ${variable} in ${items}` : "", mode, aggregations ? `${aggregations} aggregation${aggregations === 1 ? "" : "s"}` : ""]
    .filter(Boolean)
    .join(" · ");
}

export const LoopNode = memo(function LoopNode(props: BlockNodeProps) {
  const { id, data, selected } = props;
  const { label, icon } = useBlockMeta(data.blockType);
  const invalid = useGraphStore((s) => Boolean(s.errorsByBlock[id]?.length));
  const status = useBlockStatus(id);
  const summary = loopSummary(data.config);
  return (
    <>
      <NodeResizer
        isVisible={Boolean(selected)}
        minWidth={260}
        minHeight={140}
        lineClassName="loop-resize-line"
        handleClassName="loop-resize-handle"
      />
      <div
        className={`loop-node status-${status}${invalid ? " invalid" : ""}${selected ? " selected" : ""}`}
        data-block-id={id}
        data-block-name={data.name}
        data-block-type={data.blockType}
        data-status={status}
        data-invalid={invalid ? "true" : undefined}
      >
        <Handle type="target" position={Position.Left} className="handle handle-in" />
        {/* The default source handle must come first: edges without a handle attach to it. */}
        <Handle type="source" position={Position.Right} className="handle handle-out" />
        <div className="loop-head">
          <span className="block-icon-wrap">
            <BlockIcon name={icon} size={15} />
          </span>
          <span className="block-label" title={label}>
            {label}
          </span>
          <span className="block-name" data-testid="block-name" title={data.name}>
            {data.name}
          </span>
          {/* Counts and status before the summary: a loop is often wider than the canvas at
              the opening zoom, and its right end was where its state was cut off. */}
          <RunCounts id={id} />
          <PinMarker pinned={data.extra.pin !== undefined} />
          {status !== "idle" && <RunStatus id={id} />}
          <span className="block-summary" title={summary}>
            {summary}
          </span>
        </div>
        <NodeErrors id={id} />
        <Handle
          type="source"
          id={BODY_HANDLE}
          position={Position.Right}
          className="handle handle-body"
          title="each item: connect to the first blocks inside the loop"
        />
      </div>
    </>
  );
});
