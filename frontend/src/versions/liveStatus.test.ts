import { describe, expect, it } from "vitest";
import { liveStatus } from "./liveStatus";

describe("liveStatus", () => {
  it("says which version is live and whether the draft differs", () => {
    expect(liveStatus({ version: 3, published_version: 2, draft_differs: true })).toEqual({
      text: "v2 live · draft v3 differs",
      kind: "differs",
    });
    expect(liveStatus({ version: 3, published_version: 3, draft_differs: false }).text).toBe("v3 live");
    expect(liveStatus({ version: 4, published_version: 1, draft_differs: false }).text).toBe(
      "v1 live · draft v4 is the same",
    );
  });

  it("says when nothing is live or saved", () => {
    expect(liveStatus({ version: 1, published_version: null, draft_differs: true })).toEqual({
      text: "draft v1 · not published",
      kind: "none",
    });
    expect(liveStatus({ version: null, published_version: null }).text).toBe("not saved yet");
  });
});
