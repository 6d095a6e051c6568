import { beforeEach, describe, expect, it, vi } from "vitest";
import type { GraphJson } from "../types";
import { renameInExpression as renameIn } from "./loopRefs";
import { useGraphStore } from "./graphStore";

const store = () => useGraphStore.getState();
const config = (id: string) => store().nodes.find((n) => n.id === id)?.data.config ?? {};

const GRAPH: GraphJson = {
  blocks: [
    { id: "webhook", type: "webhook", name: "webhook", parent: null, position: { x: 0, y: 0 }, config: {} },
    {
      id: "loop",
      type: "loop",
      name: "loop",
      parent: null,
      position: { x: 260, y: 0 },
      config: {
        items: "<webhook.body.leads>",
        variable: "lead",
        priority: "outputs.agent.score",
        aggregations: {
          top: "results[*].outputs.agent_analysis.qualification_score",
          count: "{a: length(failed[?block=='agent_analysis'].index), b: length(failed[?block == 'agent'].index)}",
          other: "results[?outputs.agent.x == 'agent_analysis'].outputs.agent_analysis_2 || outputs.after",
        },
      },
    },
    { id: "agent_analysis", type: "agent", name: "agent_analysis", parent: "loop", position: { x: 40, y: 40 }, config: { user_prompt: "<lead.name> <lead> <leads.x>" } },
    { id: "agent", type: "agent", name: "agent", parent: "loop", position: { x: 300, y: 40 }, config: { user_prompt: "<lead.company>" } },
    { id: "after", type: "slack", name: "after", parent: null, position: { x: 900, y: 0 }, config: { text: "<lead.name> <loop.top>" } },
  ],
  edges: [
    { source: "webhook", target: "loop" },
    { source: "loop", target: "agent_analysis", handle: "body" },
    { source: "loop", target: "after" },
  ],
};

beforeEach(() => {
  vi.useRealTimers();
  store().load(structuredClone(GRAPH));
});

describe("renameInExpression", () => {
  it("rewrites outputs.<name> and block=='<name>' whole names only", () => {
    expect(renameIn("results[*].outputs.agent_analysis.qualification_score", new Map([["agent_analysis", "analysis"]]))).toBe(
      "results[*].outputs.analysis.qualification_score",
    );
    expect(renameIn("failed[?block=='agent_analysis'].index", new Map([["agent_analysis", "a"]]))).toBe("failed[?block=='a'].index");
    expect(renameIn("failed[?'agent' != block]", new Map([["agent", "a"]]))).toBe("failed[?'a' != block]");
    for (const end of ["", ".x", "[0]", ")", " ", "}", ","]) {
      expect(renameIn(`f(outputs.agent${end}`, new Map([["agent", "b"]]))).toBe(`f(outputs.b${end}`);
    }
    // Prefixes, other fields and other literals stay.
    expect(renameIn("outputs.agent_analysis", new Map([["agent", "b"]]))).toBe("outputs.agent_analysis");
    expect(renameIn("myoutputs.agent", new Map([["agent", "b"]]))).toBe("myoutputs.agent");
    expect(renameIn("kind=='agent' || item.block=='agent'", new Map([["agent", "b"]]))).toBe("kind=='agent' || item.block=='agent'");
    expect(renameIn("block=='agent_analysis'", new Map([["agent", "b"]]))).toBe("block=='agent_analysis'");
    // Several at once never chain (a paste renaming a → b and b → c).
    const names = new Map([["a", "b"], ["b", "c"]]);
    expect(renameIn(`outputs.a || outputs."b" || block=='a'`, names)).toBe(`outputs.b || outputs.c || block=='b'`);
  });
});

describe("renaming a block inside a loop", () => {
  it("rewrites the loop's aggregations (not its priority, over an item), and undo restores both", () => {
    const before = structuredClone(config("loop"));
    expect(store().rename("agent_analysis", "analysis")).toBeNull();
    expect(config("loop").aggregations).toEqual({
      top: "results[*].outputs.analysis.qualification_score",
      count: "{a: length(failed[?block=='analysis'].index), b: length(failed[?block == 'agent'].index)}",
      other: "results[?outputs.agent.x == 'agent_analysis'].outputs.agent_analysis_2 || outputs.after",
    });
    expect(store().rename("agent", "scorer")).toBeNull();
    expect(config("loop").priority).toBe("outputs.agent.score");
    expect((config("loop").aggregations as Record<string, string>).count).toContain("block == 'scorer'");
    store().undo();
    store().undo();
    expect(config("loop")).toEqual(before);
    expect(store().nodes.find((n) => n.id === "agent_analysis")?.data.name).toBe("agent_analysis");
  });

  it("leaves the expressions of a loop that does not hold the block", () => {
    expect(store().rename("after", "post")).toBeNull();
    expect((config("loop").aggregations as Record<string, string>).other).toContain("outputs.after");
  });
});

describe("changing a loop's variable", () => {
  it("rewrites <variable…> in the loop's blocks only, as one undo step", () => {
    store().updateConfig("loop", "variable", "prospect");
    expect(config("agent_analysis").user_prompt).toBe("<prospect.name> <prospect> <leads.x>");
    expect(config("agent").user_prompt).toBe("<prospect.company>");
    expect(config("after").text).toBe("<lead.name> <loop.top>");
    store().undo();
    expect(config("loop").variable).toBe("lead");
    expect(config("agent_analysis").user_prompt).toBe("<lead.name> <lead> <leads.x>");
    expect(store().past).toHaveLength(0);
  });

  it("follows typing through names that are not valid yet, and an empty field (the default item)", () => {
    for (const v of ["lea", "l", undefined, "1", "p", "pro"]) store().updateConfig("loop", "variable", v);
    expect(config("agent").user_prompt).toBe("<pro.company>");
    expect(store().past).toHaveLength(1);
    store().updateConfig("loop", "variable", "1x");
    expect(config("agent").user_prompt).toBe("<lead.company>");
  });

  it("with a pause, continues from the last step's name", () => {
    vi.useFakeTimers();
    store().updateConfig("loop", "variable", "prospect");
    vi.advanceTimersByTime(5000);
    store().updateConfig("loop", "variable", "person");
    expect(config("agent").user_prompt).toBe("<person.company>");
    store().undo();
    expect(config("agent").user_prompt).toBe("<prospect.company>");
  });
});
