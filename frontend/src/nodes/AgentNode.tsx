import { memo } from "react";
import { BlockShell, oneLine, type BlockNodeProps } from "./BlockShell";

export function agentSummary(config: Record<string, unknown>): string {
  const model = typeof config.model === "string" && config.model ? config.model : "gpt-4o-mini";
  const fields = Object.keys((config.response_format as { properties?: object } | undefined)?.properties ?? {});
  const prompt = oneLine(config.user_prompt, 80);
  return [model, fields.length ? `→ ${fields.length} fields` : "", prompt].filter(Boolean).join(" · ");
}

export const AgentNode = memo(function AgentNode(props: BlockNodeProps) {
  return <BlockShell {...props} summary={agentSummary(props.data.config)} />;
});
