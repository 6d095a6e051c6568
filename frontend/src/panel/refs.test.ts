import { describe, expect, it } from "vitest";
import { filterScope, insertReference, openReference, typedPathEntry } from "./refs";

describe("reference picker helpers", () => {
  it("finds the reference being typed at the caret", () => {
    expect(openReference("Lead: <", 7)).toEqual({ anchor: 6, query: "" });
    expect(openReference("Lead: <lead.na", 14)).toEqual({ anchor: 6, query: "lead.na" });
    expect(openReference("a < b", 5)).toBeNull();
    expect(openReference("no ref", 6)).toBeNull();
  });

  it("inserts <ref> at the caret", () => {
    expect(insertReference("Lead: < end", 6, 7, "lead.name")).toEqual({ text: "Lead: <lead.name> end", caret: 17 });
    expect(insertReference("x <le", 2, 5, "lead.email")).toEqual({ text: "x <lead.email>", caret: 14 });
    expect(insertReference("<lea.name> y", 0, 4, "lead.name")).toEqual({ text: "<lead.name> y", caret: 11 });
  });

  it("filters scope entries, prefix matches first", () => {
    const entries = [
      { ref: "webhook.body", type: "object" },
      { ref: "lead", type: "object" },
      { ref: "lead.name", type: "string" },
      { ref: "env.KEY", type: "secret" },
    ];
    expect(filterScope(entries, "").length).toBe(4);
    expect(filterScope(entries, "lea").map((e) => e.ref)).toEqual(["lead", "lead.name"]);
    expect(filterScope(entries, "body").map((e) => e.ref)).toEqual(["webhook.body"]);
  });

  it("offers a typed path below an open-schema reference only", () => {
    const scope = [
      { ref: "webhook_1", type: "object" },
      { ref: "webhook_1.body", type: "any" },
      { ref: "fetch", type: "object" },
      { ref: "fetch.status", type: "integer" },
      { ref: "fetch.rows", type: "array" },
      { ref: "env.KEY", type: "secret" },
    ];
    expect(typedPathEntry(scope, "webhook_1.body.le")).toEqual({ ref: "webhook_1.body.le", type: "any" });
    expect(typedPathEntry(scope, "webhook_1.body.items.0.name")).toEqual({ ref: "webhook_1.body.items.0.name", type: "any" });
    expect(typedPathEntry(scope, "webhook_1.body.")).toBeNull(); // nothing typed yet
    expect(typedPathEntry(scope, "webhook_1.body")).toBeNull(); // listed already
    expect(typedPathEntry(scope, "webhook_1.bod")).toBeNull(); // webhook_1's fields are listed
    expect(typedPathEntry(scope, "fetch.status.x")).toBeNull();
    expect(typedPathEntry(scope, "fetch.rows.0")).toEqual({ ref: "fetch.rows.0", type: "any" });
    expect(typedPathEntry(scope, "env.KEY.x")).toBeNull();
    expect(typedPathEntry(scope, "nothing.here")).toBeNull();
  });
});
