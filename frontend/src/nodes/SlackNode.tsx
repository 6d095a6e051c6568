import { memo } from "react";
import { BlockShell, oneLine, type BlockNodeProps } from "./BlockShell";

export function slackSummary(config: Record<string, unknown>): string {
  const channel = oneLine(config.channel, 40);
  const text = oneLine(config.text, 80);
  return [channel, text].filter(Boolean).join(": ");
}

export const SlackNode = memo(function SlackNode(props: BlockNodeProps) {
  return <BlockShell {...props} summary={slackSummary(props.data.config)} />;
});
