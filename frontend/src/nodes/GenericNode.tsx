// Fallback for a block type the editor has no dedicated node for.
import { memo } from "react";
import { BlockShell, oneLine, type BlockNodeProps } from "./BlockShell";

export const GenericNode = memo(function GenericNode(props: BlockNodeProps) {
  const keys = Object.keys(props.data.config);
  return <BlockShell {...props} summary={oneLine(keys.length ? `${keys.length} settings` : "")} />;
});
