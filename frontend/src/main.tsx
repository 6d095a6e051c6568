// Entry: Django renders one page per URL and tells us which screen to mount.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import "@xyflow/react/dist/style.css";
import "./styles.css";
import { EditorPage } from "./pages/EditorPage";
import { SecretsPage } from "./pages/SecretsPage";
import { WorkflowListPage } from "./pages/WorkflowListPage";

const root = document.getElementById("root");
if (root) {
  const page = root.dataset.page;
  const workflowId = Number(root.dataset.workflowId);
  createRoot(root).render(
    <StrictMode>
      {page === "editor" ? <EditorPage workflowId={workflowId} /> : page === "secrets" ? <SecretsPage /> : <WorkflowListPage />}
    </StrictMode>,
  );
}
