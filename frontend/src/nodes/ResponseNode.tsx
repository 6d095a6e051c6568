import { memo } from "react";
import { BlockShell, oneLine, type BlockNodeProps } from "./BlockShell";

/** "201 · body {…} · on error 502": what a waiting caller gets back. */
export function responseSummary(config: Record<string, unknown>): string {
  const status = typeof config.status === "number" ? config.status : 200;
  const body = config.body === undefined ? "" : `body ${oneLine(config.body, 50)}`;
  const onError = typeof config.error_status === "number" ? `on error ${config.error_status}` : "";
  return [String(status), body, onError].filter(Boolean).join(" · ");
}

export const ResponseNode = memo(function ResponseNode(props: BlockNodeProps) {
  return <BlockShell {...props} summary={responseSummary(props.data.config)} />;
});
