import { describe, expect, it } from "vitest";
import { rowProblems, rowsToSchema, schemaToRows, type SchemaRow } from "./SchemaBuilder";

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

  const row = (over: Partial<SchemaRow>): SchemaRow => ({ name: "", type: "string", enumText: "", min: "", max: "", required: true, ...over });

  it("flags duplicate names and allowed values that do not fit the type, never overwriting", () => {
    const rows = [
      row({ name: "score", type: "integer", enumText: "1, 2" }),
      row({ name: " score ", type: "string" }),
      row({ name: "n", type: "number", enumText: "1.5, x" }),
      row({ name: "i", type: "integer", enumText: "1, 2.5", min: "5", max: "1" }),
      row({ name: "s", type: "string", enumText: "a, 1.5" }),
    ];
    expect(rowProblems(rows)).toEqual([
      null,
      "duplicate field name 'score'",
      "allowed values must be numbers: 'x'",
      "allowed values must be integers: '2.5'; min is greater than max",
      null,
    ]);
    const schema = rowsToSchema(rows)!;
    expect((schema.properties as Record<string, unknown>).score).toEqual({ type: "integer", enum: [1, 2] });
    expect(schema.required).toEqual(["score", "n", "i", "s"]);
  });
});
