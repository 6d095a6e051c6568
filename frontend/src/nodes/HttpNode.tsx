import { memo } from "react";
import { BlockShell, oneLine, type BlockNodeProps } from "./BlockShell";

export function httpSummary(config: Record<string, unknown>): string {
  const method = typeof config.method === "string" ? config.method : "GET";
  const url = oneLine(config.url, 100);
  return url ? `${method} ${url}` : "";
}

export const HttpNode = memo(function HttpNode(props: BlockNodeProps) {
  return <BlockShell {...props} summary={httpSummary(props.data.config)} />;
});
