import { describe, expect, it } from "vitest";
import { parseWorkflowFile } from "./workflowFile";

const GRAPH = { blocks: [{ id: "a", type: "http", name: "a", parent: null, config: {}, position: { x: 0, y: 0 } }], edges: [] };

describe("parseWorkflowFile", () => {
  it("reads an export and a bare graph", () => {
    const doc = { kind: "klyntos/workflow", format: 1, name: " Leads ", description: "d", secrets: ["K", 3], graph: GRAPH };
    expect(parseWorkflowFile(JSON.stringify(doc))).toEqual({ name: "Leads", description: "d", graph: GRAPH, secrets: ["K"] });
    expect(parseWorkflowFile(JSON.stringify({ blocks: [] }))).toEqual({
      name: "Imported workflow",
      description: "",
      graph: { blocks: [], edges: [] },
      secrets: [],
    });
  });

  it("says why a file is not a workflow", () => {
    expect(parseWorkflowFile("{")).toBe("the file is not JSON");
    expect(parseWorkflowFile("[1]")).toBe("the file is not a workflow");
    expect(parseWorkflowFile('{"kind": "klyntos/blocks", "blocks": []}')).toBe("the file is a 'klyntos/blocks', not a Klyntos workflow");
    expect(parseWorkflowFile('{"kind": "klyntos/workflow", "graph": {"blocks": {}}}')).toBe(
      "the file holds no workflow graph (blocks and edges)",
    );
    expect(parseWorkflowFile('{"name": "x"}')).toBe("the file holds no workflow graph (blocks and edges)");
  });
});
