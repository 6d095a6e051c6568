import { describe, expect, it } from "vitest";
import { mountEach } from "../testing/mount";
import type { JsonSchema } from "../types";
import { GroupField, isLegacyProperty } from "./fields";

const mount = mountEach();

// The loop's circuit_breaker as engine/blocks/loop.py declares it (trimmed).
const breaker: JsonSchema = {
  type: "object",
  properties: {
    failure_rate: { type: "number", exclusiveMinimum: 0, maximum: 1, default: 0.25 },
    min_calls: { type: "integer", minimum: 1, default: 10 },
    give_up_after: { type: "number", minimum: 0, default: 900 },
    min_items: { type: "integer", minimum: 1, title: "min_items (older name of min_calls)" },
  },
  additionalProperties: false,
};

function render(value: unknown) {
  mount.render(
    <GroupField blockId="l" name="circuit_breaker" schema={breaker} value={value} onChange={() => undefined} invalid={false} inputId="cb" />,
  );
  return Array.from(mount.container.querySelectorAll<HTMLInputElement>("[data-field^='circuit_breaker.']")).map((el) => el.dataset.field);
}

describe("the loop breaker's settings", () => {
  it("does not offer the legacy min_items (older name of min_calls)", () => {
    const props = breaker.properties as Record<string, JsonSchema>;
    expect(isLegacyProperty("min_items", props.min_items, props)).toBe(true);
    expect(isLegacyProperty("min_calls", props.min_calls, props)).toBe(false);
    expect(isLegacyProperty("x", { type: "integer", deprecated: true }, props)).toBe(true);
    expect(render({ failure_rate: 0.25, min_calls: 10, give_up_after: 900 })).toEqual([
      "circuit_breaker.failure_rate",
      "circuit_breaker.min_calls",
      "circuit_breaker.give_up_after",
    ]);
    expect(mount.container.textContent).not.toContain("min_items");
  });

  it("still shows it while an older save sets it, so that it can be seen and cleared", () => {
    expect(render({ failure_rate: 0.25, min_items: 5 })).toContain("circuit_breaker.min_items");
  });
});
