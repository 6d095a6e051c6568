import { memo } from "react";
import { BlockShell, type BlockNodeProps } from "./BlockShell";

export function webhookSummary(config: Record<string, unknown>): string {
  const schema = config.body_schema as { properties?: Record<string, unknown> } | undefined;
  const fields = Object.keys(schema?.properties ?? {});
  return fields.length ? `POST body: ${fields.join(", ")}` : "POST any JSON body";
}

export const WebhookNode = memo(function WebhookNode(props: BlockNodeProps) {
  return <BlockShell {...props} hasInput={false} summary={webhookSummary(props.data.config)} />;
});
