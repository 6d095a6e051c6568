import { act } from "react";
import { describe, expect, it, vi } from "vitest";
import type { Conflict } from "../store/merge";
import { mountEach } from "../testing/mount";
import { MAX_SHOWN_CONFLICTS, MergePanel } from "./MergePanel";

const mount = mountEach();

const field: Conflict = {
  key: "block:a:config.user_prompt", what: "block", kind: "field", id: "a", name: "agent_summary",
  field: "config.user_prompt", mine: "Mine prompt", theirs: "Their prompt",
};
const deleted: Conflict = {
  key: "block:b:deleted", what: "block", kind: "deleted-there", id: "b", name: "http_1", field: null, mine: { id: "b" }, theirs: undefined,
};

const button = (action: string) => mount.container.querySelector(`[data-action="${action}"]`) as HTMLButtonElement;

describe("MergePanel", () => {
  it("lists each conflict with its block, field and both values; saves once all are chosen", () => {
    const onResolve = vi.fn();
    mount.render(<MergePanel conflicts={[field, deleted]} version={5} onResolve={onResolve} onCancel={() => undefined} />);
    const rows = mount.container.querySelectorAll('[data-testid="merge-conflict"]');
    expect(rows).toHaveLength(2);
    expect(rows[0].textContent).toContain("block 'agent_summary' · config.user_prompt: changed here and elsewhere");
    expect(rows[0].textContent).toContain("Mine prompt");
    expect(rows[0].textContent).toContain("Their prompt");
    expect(rows[1].textContent).toContain("block 'http_1': edited here, deleted elsewhere");
    expect(rows[1].textContent).toContain("(deleted)");
    expect(button("save-merge").disabled).toBe(true);
    act(() => (rows[0].querySelector('[data-action="take-theirs"]') as HTMLInputElement).click());
    expect(button("save-merge").disabled).toBe(true);
    act(() => (rows[1].querySelector('[data-action="keep-mine"]') as HTMLInputElement).click());
    act(() => button("save-merge").click());
    expect(onResolve).toHaveBeenCalledWith({ [field.key]: "theirs", [deleted.key]: "mine" });
  });

  it("chooses all at once, past the rows it shows", () => {
    const many = Array.from({ length: MAX_SHOWN_CONFLICTS + 5 }, (_, i) => ({ ...field, key: `k${i}` }));
    const onResolve = vi.fn();
    mount.render(<MergePanel conflicts={many} version={2} onResolve={onResolve} onCancel={() => undefined} />);
    expect(mount.container.querySelectorAll('[data-testid="merge-conflict"]')).toHaveLength(MAX_SHOWN_CONFLICTS);
    expect(mount.container.textContent).toContain("…and 5 more");
    act(() => button("take-all-theirs").click());
    act(() => button("save-merge").click());
    expect(Object.values(onResolve.mock.calls[0][0])).toEqual(many.map(() => "theirs"));
    act(() => button("keep-all-mine").click());
    act(() => button("save-merge").click());
    expect(Object.values(onResolve.mock.calls[1][0])).toEqual(many.map(() => "mine"));
  });

  it("says which tab moved or resized a block, not its coordinates", () => {
    const moved: Conflict = { ...field, key: "block:a:position", field: "position", mine: { x: 432, y: 285 }, theirs: { x: 10, y: 20 } };
    const resized: Conflict = { ...field, key: "block:a:style", field: "style", mine: { width: 400, height: 200 }, theirs: { width: 500, height: 300 } };
    mount.render(<MergePanel conflicts={[moved, resized]} version={5} onResolve={() => undefined} onCancel={() => undefined} />);
    const rows = mount.container.querySelectorAll('[data-testid="merge-conflict"]');
    expect([...rows[0].querySelectorAll("pre")].map((p) => p.textContent)).toEqual(["moved here", "moved elsewhere"]);
    expect([...rows[1].querySelectorAll("pre")].map((p) => p.textContent)).toEqual(["resized here", "resized elsewhere"]);
    expect(mount.container.textContent).not.toContain("432");
  });
});

