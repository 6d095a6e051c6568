// What the header says about drafts and the live version: production (webhook, API, CLI)
// runs the published version; Save only writes a draft.
import type { Workflow, WorkflowNumbers } from "../types";

export interface LiveStatus {
  text: string;
  // "live": the draft is what runs; "differs": a newer draft is not live; "none": nothing is live.
  kind: "live" | "differs" | "none";
}

export function liveStatus(workflow: Pick<Workflow, "version" | "published_version" | "draft_differs">): LiveStatus {
  const draft = workflow.version;
  const live = workflow.published_version ?? null;
  if (draft == null) return { text: "not saved yet", kind: "none" };
  if (live == null) return { text: `draft v${draft} · not published`, kind: "none" };
  if (live === draft) return { text: `v${live} live`, kind: "live" };
  if (workflow.draft_differs) return { text: `v${live} live · draft v${draft} differs`, kind: "differs" };
  return { text: `v${live} live · draft v${draft} is the same`, kind: "live" };
}

export interface HeaderStatus {
  live: LiveStatus;
  /** "v5 saved elsewhere — your next save merges" when the server's draft is newer than the
   * version this tab edits (its unsaved edits stay; Save merges them, store/merge.ts). */
  elsewhere: string | null;
}

/**
 * The header's status: the live/draft pill from the numbers last heard from the server
 * (`heard`: the workflow socket's notices and this tab's own answers, latest wins), and whether
 * a newer draft was saved elsewhere than the version this tab is editing (`editing`).
 * `busy`: this tab is saving or publishing (its own save's notice may come before its answer).
 */
export function headerStatus(
  editing: Pick<Workflow, "version" | "published_version" | "draft_differs">,
  heard: WorkflowNumbers | null,
  busy = false,
): HeaderStatus {
  const live = liveStatus(heard ?? editing);
  const newer = heard?.version != null && (editing.version == null || heard.version > editing.version);
  return { live, elsewhere: newer && !busy ? `v${heard.version} saved elsewhere — your next save merges` : null };
}
