import { describe, expect, it } from "vitest";
import { edgeProblem } from "../store/connections";
import { isTrigger, type BlockNode } from "../store/model";
import { scheduleSummary } from "./ScheduleNode";

function block(id: string, type: string): BlockNode {
  return { id, type, position: { x: 0, y: 0 }, data: { name: id, blockType: type, config: {} } } as unknown as BlockNode;
}

describe("schedule trigger in the editor", () => {
  it("summarises its cron and time zone on the canvas", () => {
    expect(scheduleSummary({ cron: "0 2 * * *", timezone: "Europe/Paris" })).toBe("0 2 * * * · Europe/Paris");
    expect(scheduleSummary({})).toBe("no cron yet · UTC");
  });

  it("is a trigger: nothing connects into it", () => {
    expect(isTrigger("schedule") && isTrigger("webhook")).toBe(true);
    expect(isTrigger("transform")).toBe(false);
    const nodes = [block("nightly", "schedule"), block("step", "transform")];
    expect(edgeProblem(nodes, "step", "nightly")).toBe("a trigger cannot have inputs");
    expect(edgeProblem(nodes, "nightly", "step")).toBeNull();
  });
});
