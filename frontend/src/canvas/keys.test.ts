import { afterEach, describe, expect, it } from "vitest";
import { deleteKeyApplies, MULTI_SELECT_KEYS } from "./keys";
import { SHORTCUTS } from "./ShortcutSheet";

afterEach(() => {
  document.body.innerHTML = "";
});

describe("deleteKeyApplies", () => {
  it("deletes with focus on the canvas, a block in it or nowhere, never on another control", () => {
    document.body.innerHTML = `
      <div class="react-flow" id="flow"><div class="react-flow__node" tabindex="0" id="node"><button id="inner">x</button></div>
        <div role="menu"><span id="menuitem" tabindex="0">Paste</span></div></div>
      <aside><div id="row" tabindex="0">item 3</div></aside><button id="versions">Versions</button>`;
    const flow = document.getElementById("flow");
    const at = (id: string) => document.getElementById(id);
    expect(deleteKeyApplies(document.body, flow)).toBe(true);
    expect(deleteKeyApplies(null, flow)).toBe(true);
    expect(deleteKeyApplies(flow, flow)).toBe(true);
    expect(deleteKeyApplies(at("node"), flow)).toBe(true);
    expect(deleteKeyApplies(at("inner"), flow)).toBe(false);
    expect(deleteKeyApplies(at("menuitem"), flow)).toBe(false);
    expect(deleteKeyApplies(at("row"), flow)).toBe(false);
    expect(deleteKeyApplies(at("versions"), flow)).toBe(false);
  });
});

describe("multi-selection", () => {
  it("Shift adds to the selection, and the sheet says so (not that Shift+click selects several)", () => {
    expect(MULTI_SELECT_KEYS).toContain("Shift");
    const keys = SHORTCUTS.map(([k]) => k);
    expect(keys.some((k) => /Shift\/(Ctrl|Cmd)\+click/.test(k))).toBe(true);
    expect(keys).toContain("Shift+drag");
  });
});
