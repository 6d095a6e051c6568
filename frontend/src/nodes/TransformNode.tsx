import { memo } from "react";
import { BlockShell, oneLine, type BlockNodeProps } from "./BlockShell";

export function transformSummary(config: Record<string, unknown>): string {
  const expression = oneLine(config.expression, 80);
  const input = oneLine(config.input, 40);
  return [expression, input ? `over ${input}` : ""].filter(Boolean).join(" ");
}

export const TransformNode = memo(function TransformNode(props: BlockNodeProps) {
  return <BlockShell {...props} summary={transformSummary(props.data.config)} />;
});
