// Workflow files: what "Export" downloads (GET /api/workflows/<id>/export/, made by the
// server: secrets by name only) and what "Import" reads back into a new workflow.
import type { GraphJson, Workflow } from "../types";
import { api } from "./client";

export const EXPORT_KIND = "klyntos/workflow";
/** The server's KLYNTOS_REQUEST_MAX_BYTES default: a larger file could not be posted. */
export const MAX_IMPORT_BYTES = 10 * 1024 * 1024;

export interface WorkflowFile {
  name: string;
  description: string;
  graph: GraphJson;
  /** Names of the secrets the workflow reads (never values). */
  secrets: string[];
}

export const exportUrl = (id: number) => `/api/workflows/${id}/export/`;

/** The workflow in a file's text, or why it is not one. */
export function parseWorkflowFile(text: string): WorkflowFile | string {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return "the file is not JSON";
  }
  if (!data || typeof data !== "object" || Array.isArray(data)) return "the file is not a workflow";
  const doc = data as Record<string, unknown>;
  // A bare graph ({blocks, edges}) is accepted too.
  const graph = (doc.kind === EXPORT_KIND ? doc.graph : "blocks" in doc ? doc : null) as GraphJson | null;
  if (doc.kind !== undefined && doc.kind !== EXPORT_KIND) return `the file is a '${String(doc.kind)}', not a Klyntos workflow`;
  if (!graph || typeof graph !== "object" || !Array.isArray(graph.blocks) || !Array.isArray(graph.edges ?? [])) {
    return "the file holds no workflow graph (blocks and edges)";
  }
  const name = typeof doc.name === "string" && doc.name.trim() ? doc.name.trim().slice(0, 190) : "Imported workflow";
  return {
    name,
    description: typeof doc.description === "string" ? doc.description : "",
    graph: { ...graph, edges: graph.edges ?? [] },
    secrets: Array.isArray(doc.secrets) ? doc.secrets.filter((s): s is string => typeof s === "string") : [],
  };
}

/** Creates a new workflow from a file (the server validates it); throws with a message. */
export async function importWorkflowFile(file: File): Promise<Workflow> {
  if (file.size > MAX_IMPORT_BYTES) throw new Error(`the file is larger than ${MAX_IMPORT_BYTES / 1024 / 1024} MB`);
  const parsed = parseWorkflowFile(await file.text());
  if (typeof parsed === "string") throw new Error(parsed);
  return api.createWorkflow(`${parsed.name} (imported)`, parsed.graph, parsed.description);
}

/** Starts the download of the workflow's saved version. */
export function downloadExport(id: number): void {
  const link = document.createElement("a");
  link.href = exportUrl(id);
  link.download = "";
  document.body.appendChild(link);
  link.click();
  link.remove();
}
