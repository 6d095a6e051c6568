// What the header says about drafts and the live version: production (webhook, API, CLI)
// runs the published version; Save only writes a draft.
import type { Workflow } from "../types";

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
