import { describe, expect, it } from "vitest";
import { tooLargeNote } from "./WebhookTab";

describe("the webhook tab's size warning", () => {
  it("warns before a body the webhook would refuse, naming the setting and the way round", () => {
    const note = tooLargeNote(1_780_000, 1_048_576);
    expect(note).toContain("1738.3 kB");
    expect(note).toContain("1024.0 kB");
    expect(note).toContain("KLYNTOS_WEBHOOK_MAX_BYTES");
    expect(note).toContain("413");
    expect(note).toContain("Run panel");
  });

  it("says nothing when the body fits or the limit is not known", () => {
    expect(tooLargeNote(1_048_576, 1_048_576)).toBe("");
    expect(tooLargeNote(10, undefined)).toBe("");
  });
});
