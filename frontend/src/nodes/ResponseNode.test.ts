import { describe, expect, it } from "vitest";
import { responseSummary } from "./ResponseNode";

describe("responseSummary", () => {
  it("shows the status, the body and the error status", () => {
    expect(responseSummary({ status: 201, body: { total: "<combine.result>" }, error_status: 502 })).toBe(
      '201 · body {"total":"<combine.result>"} · on error 502',
    );
  });

  it("defaults to 200 with nothing else", () => {
    expect(responseSummary({})).toBe("200");
  });
});
