// "Import…": pick a workflow file, create a new workflow from it and open it.
import { useRef, useState } from "react";
import { importWorkflowFile } from "../api/workflowFile";

export function ImportButton({ className, onError }: { className: string; onError: (message: string) => void }) {
  const input = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState(false);
  return (
    <>
      <button type="button" className={className} data-action="import-workflow" disabled={busy} onClick={() => input.current?.click()} title="Create a new workflow from an exported file">
        {busy ? "Importing…" : "Import…"}
      </button>
      <input
        ref={input}
        type="file"
        accept=".json,application/json"
        hidden
        data-testid="import-file"
        onChange={async (event) => {
          const file = event.target.files?.[0];
          event.target.value = "";
          if (!file) return;
          setBusy(true);
          try {
            const workflow = await importWorkflowFile(file);
            window.location.assign(`/workflows/${workflow.id}/`);
          } catch (error) {
            onError(`Not imported: ${error instanceof Error ? error.message : String(error)}`);
            setBusy(false);
          }
        }}
      />
    </>
  );
}
