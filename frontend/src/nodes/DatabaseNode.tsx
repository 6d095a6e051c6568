import { memo } from "react";
import { BlockShell, oneLine, type BlockNodeProps } from "./BlockShell";

export function databaseSummary(config: Record<string, unknown>): string {
  return oneLine(config.sql, 100);
}

export const DatabaseNode = memo(function DatabaseNode(props: BlockNodeProps) {
  return <BlockShell {...props} summary={databaseSummary(props.data.config)} />;
});
