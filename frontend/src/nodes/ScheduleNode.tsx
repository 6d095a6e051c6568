import { memo } from "react";
import { BlockShell, oneLine, type BlockNodeProps } from "./BlockShell";

export function scheduleSummary(config: Record<string, unknown>): string {
  const cron = typeof config.cron === "string" && config.cron.trim() ? config.cron.trim() : "no cron yet";
  const zone = typeof config.timezone === "string" && config.timezone ? config.timezone : "UTC";
  return `${cron} · ${zone}`;
}

export const ScheduleNode = memo(function ScheduleNode(props: BlockNodeProps) {
  return <BlockShell {...props} hasInput={false} summary={oneLine(scheduleSummary(props.data.config))} />;
});
