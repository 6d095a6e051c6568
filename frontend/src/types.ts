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
  /** What testing the block alone really does (a Slack post, a row written); "" when nothing. */
  test_effect?: string;
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
  // The draft: the newest saved version, what the editor shows and test runs run.
  version: number | null;
  // The live version: what the webhook, the REST API and the CLI run (null: never published).
  published_version?: number | null;
  // Whether the draft's graph is not the live one.
  draft_differs?: boolean;
  graph: GraphJson;
  webhook_url: string | null;
  // Whether posts to the webhook must be signed (the secret itself is never sent).
  webhook_signed?: boolean;
  // The largest body the webhook takes (KLYNTOS_WEBHOOK_MAX_BYTES): 413 past it.
  webhook_max_bytes?: number;
  // The largest REST API request body (KLYNTOS_REQUEST_MAX_BYTES): 413 past it. The Run
  // button's request carries the input, so the Input tab warns before an input that large.
  request_max_bytes?: number;
  // The operator's off-peak window (KLYNTOS_OFF_PEAK_HOURS), null when none is configured (a
  // run cannot be deferred). Not sent by every server: absent means unknown.
  off_peak_hours?: string | null;
  // Dollars each run may spend (null: none; a run's own budget_usd wins).
  budget_usd?: number | null;
  created_at: string;
  updated_at: string;
  validation?: { ok: boolean; errors: ValidationError[]; warnings?: ValidationError[] };
}

export interface VersionSummary {
  number: number;
  message: string;
  created_at: string;
  created_by: string | null;
  published_at: string | null;
  live: boolean;
  draft: boolean;
}

export interface FieldChange {
  path: string;
  change: "added" | "removed" | "changed";
  before: unknown;
  after: unknown;
}

export interface BlockLabel {
  id: string;
  name: string;
  type: string;
}

export interface VersionDiff {
  from: number;
  to: number;
  blocks: {
    added: BlockLabel[];
    removed: BlockLabel[];
    changed: (BlockLabel & { fields: FieldChange[] })[];
    moved: BlockLabel[];
  };
  edges: {
    added: { source: string; target: string; handle?: string }[];
    removed: { source: string; target: string; handle?: string }[];
  };
  /** Pinned test data (never run), listed apart from the blocks' changes. */
  pins?: { added: BlockLabel[]; removed: BlockLabel[]; changed: BlockLabel[] };
}

/** Test data saved on a block with the draft (its `pin`); runs never read it. */
export interface BlockPin {
  /** Stands for the block's output in tests of the blocks after it. */
  output?: unknown;
  /** A loop's: the item its body is tested with, and its index. */
  item?: unknown;
  index?: number;
  /** The run it was taken from, if any. */
  run?: string | null;
}

export interface TestSource {
  kind: "output" | "item" | "iteration" | "unknown";
  block: string | null;
  from?: "given" | "pin" | "run" | "missing";
}

/** What a test of one block would be given (GET, or POST with dry_run). */
export interface BlockTestPlan {
  block: { id: string; name: string; type: string };
  testable?: boolean;
  reason?: string;
  effect: string;
  run: string | null;
  inputs: Record<string, unknown>;
  sources: Record<string, TestSource>;
  notes: string[];
  trigger_input: unknown;
  trigger_from: string;
}

export interface BlockTestResult extends BlockTestPlan {
  status: "succeeded" | "failed";
  output: unknown;
  error: string | null;
  attempts: number;
  duration: number;
  retries: { attempt: number; delay: number; error: string }[];
  config: Record<string, unknown>;
}

export interface TemplateSummary {
  slug: string;
  name: string;
  description: string;
  /** The parallel-processing pattern the template shows ("" when it says none). */
  pattern?: string;
  sample: unknown;
  /** A picture of its graph: block boxes at their canvas positions and the edges between them. */
  preview?: TemplatePreview;
}

export interface TemplatePreview {
  width: number;
  height: number;
  blocks: { id: string; name: string; type: string; x: number; y: number; width: number; height: number }[];
  edges: { source: string; target: string }[];
}

export type RunStatus =
  | "deferred"
  | "queued"
  | "running"
  | "succeeded"
  | "partially_succeeded"
  | "failed"
  | "cancelled";

/** Counters of items (docs/run-protocol.md `Counters`). */
export interface Progress {
  total: number;
  succeeded: number;
  failed: number;
  running: number;
  cancelled?: number;
  not_started?: number;
}

/** What a run start may add to its input (POST /api/workflows/<id>/runs/): only what is set. */
export interface RunStartOptions {
  weight?: number; // 0.01–100, among the owner's own runs
  priority?: number; // -100–100, among the owner's own runs
  defer?: "off_peak";
}

export interface RunSummary {
  id: string;
  workflow: number;
  workflow_version: number;
  status: RunStatus;
  /** editor | api | webhook | schedule | cli | retry */
  trigger: string;
  // A test run of a draft version (from the editor), not production.
  draft?: boolean;
  /** Its share of the providers it shares with other runs (`weight`, `priority`). */
  weight?: number;
  priority?: number;
  /** The run whose failed items this one retried, and the runs that retried this one. */
  retry_of?: string | null;
  retries?: string[];
  /** How many times the run was resumed after its process stopped. */
  resumes?: number;
  progress: Progress;
  error: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** A run deferred to the off-peak window (`defer: "off_peak"`): when it starts. */
  deferred_until?: string | null;
  duration: number | null;
  /** The cost line (REST answers only, never on the sockets). */
  summary?: CostSummary;
  last_seq: number;
  /** What the run met per provider key: its adaptive limit and its breaker. */
  providers?: Record<string, ProviderState>;
  /** The providers whose breaker pauses the run (REST answers; derived from `providers`). */
  paused?: PausedProvider[];
}

/** A provider's breaker as a run met it (engine/core/provider_state.py `fold_breaker`);
 * `gave_up`: it gave up on the provider (`give_up_after`), the run's calls to it failed and
 * it waits for it no more. */
export interface ProviderBreaker {
  state: "open" | "half_open" | "closed" | "gave_up";
  mode: "auto" | "manual" | "off";
  reason: string;
  message: string;
  trips?: number;
  since: number;
}

export interface ProviderState {
  limit?: number | null;
  cap?: number | null;
  reason?: string;
  breaker?: ProviderBreaker;
}

export interface PausedProvider {
  provider: string;
  state: "open" | "half_open";
  mode: "auto" | "manual";
  reason: string;
  message: string;
  since: number;
}

/** A run's cost line (docs/run-protocol.md `CostSummary`), summed by the server from its rows. */
export interface CostSummary {
  wall_seconds: number | null;
  sequential_seconds: number;
  /** Seconds the items' steps waited for providers (a paused breaker, a slot, a rate grant), left out of `sequential_seconds`. */
  waited_seconds?: number;
  items_measured: number;
  speedup: number | null;
  tokens: { prompt: number; completion: number; total: number };
  llm_calls: number;
  /** USD of the priced models' tokens; null when none has a price. */
  cost_usd: number | null;
  unpriced_models: string[];
  models: {
    model: string;
    prompt_tokens: number;
    completion_tokens: number;
    total_tokens: number;
    calls: number;
    price: { input: number; output: number } | null;
    cost_usd: number | null;
  }[];
  /** The result cache (blocks with `cache`): hits made no call; what they saved. */
  cache?: {
    hits: number;
    misses: number;
    calls_saved: number;
    llm_calls_saved: number;
    tokens_saved: number;
    saved_usd: number | null;
  };
  /** A retry's items and steps taken from the run it repeats: not done again, their calls
   * not paid again (none of this is in the tokens, dollars or times above). */
  reused?: {
    items: number;
    steps: number;
    seconds: number;
    llm_calls: number;
    tokens: number;
    cost_usd: number | null;
  };
}

export type BlockStatus =
  | "pending"
  | "running"
  | "succeeded"
  | "partially_succeeded"
  | "failed"
  | "cancelled"
  | "not_started";

/** One block's counters and the status the server computed from them (`BlockState`). */
export interface BlockState {
  status: BlockStatus;
  succeeded: number;
  failed: number;
  cancelled: number;
  not_started: number;
  running: number;
  total: number;
}

/** A Loop's item counters and concurrency (`LoopState`). */
export interface LoopState {
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  not_started: number;
  running: number;
  max_concurrent: number;
  limit: number;
  peak_running: number;
  /** Waves (the loop's `batch_size`): the batch under way and how many. */
  batch?: number;
  batches?: number;
}

export type ItemStatus = "running" | "succeeded" | "failed" | "cancelled" | "not_started";

export interface ItemState {
  key: string;
  loop_block: string;
  parent_key: string;
  index: number;
  status: ItemStatus;
  error: string;
  failed_block: string;
  /** The process that ran it (host:pid): which worker, when several share the runs. */
  worker?: string;
  started_at: string | null;
  finished_at: string | null;
  duration: number | null;
  attempts?: number;
  /** The item (on the socket: trimmed past 512 bytes to `{"$trimmed": true, ...}`). */
  data?: unknown;
  /** Its own steps' LLM tokens and their USD (REST item pages only; null: no price). */
  tokens?: number;
  cost_usd?: number | null;
}

export type StepStatus = "running" | "retrying" | "waiting" | "succeeded" | "failed" | "cancelled" | "not_started";

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
  /** `run_if` skipped it: stored as succeeded, painted as skipped. */
  skipped?: boolean;
}

// The run socket (docs/run-protocol.md): a bounded snapshot, then coalesced deltas, then a
// final snapshot.
export interface RunSnapshotMessage {
  type: "snapshot";
  seq: number;
  final: boolean;
  run: RunSummary;
  blocks?: Record<string, BlockState>;
  loops?: Record<string, LoopState>;
  items: ItemState[];
  steps: StepState[];
  recent?: string[];
  failed?: string[];
  items_omitted?: number;
}

export interface RunDeltaMessage {
  type: "delta";
  seq: number;
  run: Partial<RunSummary> & { status?: RunStatus };
  blocks?: Record<string, BlockState>;
  loops?: Record<string, LoopState>;
  items: Partial<ItemState>[];
  steps: Partial<StepState>[];
  items_omitted?: number;
}

export type RunMessage = RunSnapshotMessage | RunDeltaMessage;

/** The workflow's draft and live numbers as the server holds them (the header's status). */
export interface WorkflowNumbers {
  /** The draft: the newest saved version. */
  version: number | null;
  /** The live version (null: never published). */
  published_version: number | null;
  /** Whether the draft's graph is not the live one. */
  draft_differs: boolean;
}

// The workflow socket: every run of the workflow, whatever started it, and every save or
// publish of it, from whichever tab or process.
export type WorkflowMessage =
  | ({ type: "hello"; last_run: RunSummary | null } & Partial<WorkflowNumbers>)
  | { type: "run.started" | "run.progress" | "run.ended"; run: RunSummary }
  | ({ type: "workflow.changed" } & WorkflowNumbers);

/** A page of `GET /api/runs/<id>/items/`. */
export interface ItemPage {
  results: ItemState[];
  next: string | null;
  count: number;
  count_capped?: boolean;
}

/** `GET /api/runs/<id>/timeline/`. */
export interface RunTimeline {
  started_at: string;
  from: number;
  to: number;
  bucket_seconds: number;
  /** Per bucket: `in_flight` the mean number of items in flight during it (never above the
   * most at once); `overlapping` the items in flight at some moment of it (what a click lists). */
  concurrency: { t: number; in_flight: number; overlapping: number; started: number; finished: number; failed: number }[];
  durations: {
    edges: number[];
    counts: number[];
    p50: number | null;
    p95: number | null;
    max: number | null;
    count: number;
  };
  /** Each provider's adaptive limit over the window (engine/core/providers.py). */
  providers?: Record<string, { t: number; limit: number | null }[]>;
  /** Each provider's breaker periods in the window: open (no call starts) or half_open
   * (probe calls only); `to` null while it lasts. */
  paused?: Record<string, BreakerPeriod[]>;
}

export interface BreakerPeriod {
  from: number;
  to: number | null;
  state: "open" | "half_open";
}
