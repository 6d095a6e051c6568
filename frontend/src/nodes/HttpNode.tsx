import { memo } from "react";
import { BlockShell, oneLine, type BlockNodeProps } from "./BlockShell";

/** "GET api.clearbit.com/v2/…": https:// left out, the block is narrow (plain http:// shows). */
export function httpSummary(config: Record<string, unknown>): string {
  const method = typeof config.method === "string" ? config.method : "GET";
  const url = oneLine(config.url, 100).replace(/^https:\/\//i, "");
  return url ? `${method} ${url}` : "";
}

export const HttpNode = memo(function HttpNode(props: BlockNodeProps) {
  return <BlockShell {...props} summary={httpSummary(props.data.config)} />;
});
