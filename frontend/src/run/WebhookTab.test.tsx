import { describe, expect, it } from "vitest";
import { tooLargeNote } from "./WebhookTab";

describe("the webhook tab's size warning", () => {
  it("warns before a body the webhook would refuse, naming the setting and the way round", () => {
    const note = tooLargeNote(1_780_000, 1_048_576);
    expect(note).toContain("1.7 MB");
    expect(note).toContain("1.0 MB (1048576 bytes, KLYNTOS_WEBHOOK_MAX_BYTES)");
    expect(note).toContain("KLYNTOS_WEBHOOK_MAX_BYTES");
    expect(note).toContain("413");
    expect(note).toContain("Run panel");
  });

  it("gives the exact size when rounding would show the body and the limit the same", () => {
    expect(tooLargeNote(1_048_600, 1_048_576)).toMatch(/^This body is 1048600 bytes, over the webhook's limit of 1\.0 MB/);
  });

  it("says nothing when the body fits or the limit is not known", () => {
    expect(tooLargeNote(1_048_576, 1_048_576)).toBe("");
    expect(tooLargeNote(10, undefined)).toBe("");
  });
});
