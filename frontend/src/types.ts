// Shapes shared by the editor and the server (see builder/serializers.py and engine/store.py).

export type JsonSchema = Record<string, unknown>;

export interface BlockJson {
  id: string;
  type: string;
  name: string;
  parent: string | null;
  config: Record<string, unknown>;
  position: { x: number; y: number };
  // Size of a Loop container on the canvas (React Flow's style width/height).
  style?: { width?: number; height?: number };
}

export interface EdgeJson {
  source: string;
  target: string;
  handle?: string;
}

export interface GraphJson {
  blocks: BlockJson[];
  edges: EdgeJson[];
  viewport?: { x: number; y: number; zoom: number };
}

export interface CatalogueEntry {
  type: string;
  label: string;
  description: string;
  icon: string;
  config_schema: JsonSchema;
  outputs: JsonSchema;
}

export interface ValidationError {
  block_id: string | null;
  block: string | null;
  field: string;
  message: string;
  /** On an `<env.NAME>` reference to a missing secret: NAME (the editor links to adding it). */
  secret?: string;
}

export interface ScopeEntry {
  ref: string;
  type: string;
}

export interface ValidationResponse {
  ok: boolean;
  errors: ValidationError[];
  /** Advice that blocks neither a save nor a run (a list that grows with the batch in a prompt). */
  warnings?: ValidationError[];
  scopes: Record<string, ScopeEntry[]>;
}

export interface Workflow {
  id: number;
  name: string;
  description: string;
  template_slug: string;
  version: number | null;
  graph: GraphJson;
  webhook_url: string | null;
  // Whether posts to the webhook must be signed (the secret itself is never sent).
  webhook_signed?: boolean;
  created_at: string;
  updated_at: string;
  validation?: { ok: boolean; errors: ValidationError[]; warnings?: ValidationError[] };
}

export interface TemplateSummary {
  slug: string;
  name: string;
  description: string;
  sample: unknown;
}

export type RunStatus = "queued" | "running" | "succeeded" | "partially_succeeded" | "failed" | "cancelled";

export interface Progress {
  total: number;
  succeeded: number;
  failed: number;
  running: number;
}

export interface RunSummary {
  id: string;
  workflow: number;
  workflow_version: number;
  status: RunStatus;
  trigger: string;
  progress: Progress;
  error: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  duration: number | null;
  last_seq: number;
}

export type ItemStatus = "running" | "succeeded" | "failed" | "cancelled";

export interface ItemState {
  key: string;
  loop_block: string;
  parent_key: string;
  index: number;
  status: ItemStatus;
  error: string;
  failed_block: string;
  started_at: string | null;
  finished_at: string | null;
  duration: number | null;
  attempts?: number;
}

export type StepStatus = "running" | "retrying" | "succeeded" | "failed" | "cancelled";

export interface StepState {
  item_key: string;
  block_id: string;
  name: string;
  status: StepStatus;
  error: string;
  attempts: number;
  started_at: string | null;
  finished_at: string | null;
  duration: number | null;
}

// What the websocket sends (engine/consumers.py): a snapshot, then deltas with a seq.
export interface RunSnapshotMessage {
  type: "snapshot";
  seq: number;
  final: boolean;
  run: RunSummary;
  items: ItemState[];
  steps: StepState[];
}

export interface RunDeltaMessage {
  type: "delta";
  seq: number;
  run: Partial<RunSummary> & { status?: RunStatus; total?: number; succeeded?: number; failed?: number; running?: number };
  items: Partial<ItemState>[];
  steps: Partial<StepState>[];
}

export type RunMessage = RunSnapshotMessage | RunDeltaMessage;
