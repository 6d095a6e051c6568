// Node components by block type (React Flow's nodeTypes), with a generic fallback.
import type { NodeTypes } from "@xyflow/react";
import { AgentNode } from "./AgentNode";
import { DatabaseNode } from "./DatabaseNode";
import { GenericNode } from "./GenericNode";
import { HttpNode } from "./HttpNode";
import { LoopNode } from "./LoopNode";
import { ResponseNode } from "./ResponseNode";
import { ScheduleNode } from "./ScheduleNode";
import { SlackNode } from "./SlackNode";
import { TransformNode } from "./TransformNode";
import { WebhookNode } from "./WebhookNode";

export const NODE_TYPES = {
  webhook: WebhookNode,
  schedule: ScheduleNode,
  loop: LoopNode,
  agent: AgentNode,
  http: HttpNode,
  database: DatabaseNode,
  slack: SlackNode,
  transform: TransformNode,
  response: ResponseNode,
} satisfies NodeTypes;

export function nodeTypesFor(types: string[]): NodeTypes {
  const out: NodeTypes = { ...NODE_TYPES };
  for (const type of types) if (!(type in out)) out[type] = GenericNode;
  return out;
}
