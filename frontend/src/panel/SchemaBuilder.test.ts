import { describe, expect, it } from "vitest";
import { rowsToSchema, schemaToRows } from "./SchemaBuilder";

describe("response format builder", () => {
  const schema = {
    type: "object",
    additionalProperties: false,
    required: ["size", "score"],
    properties: {
      size: { type: "string", enum: ["1-10", "11-50"] },
      score: { type: "integer", minimum: 1, maximum: 10 },
      hot: { type: "boolean" },
    },
  };

  it("reads a simple object schema into rows and writes it back", () => {
    const rows = schemaToRows(schema);
    expect(rows).toEqual([
      { name: "size", type: "string", enumText: "1-10, 11-50", min: "", max: "", required: true },
      { name: "score", type: "integer", enumText: "", min: "1", max: "10", required: true },
      { name: "hot", type: "boolean", enumText: "", min: "", max: "", required: false },
    ]);
    expect(rowsToSchema(rows!)).toEqual(schema);
  });

  it("leaves schemas it cannot represent to the JSON editor", () => {
    expect(schemaToRows({ type: "object", properties: { a: { type: "array" } } })).toBeNull();
    expect(schemaToRows({ type: "string" })).toBeNull();
    expect(schemaToRows(undefined)).toEqual([]);
    expect(rowsToSchema([])).toBeUndefined();
  });
});
