import { act, useState } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { advancedLabel, NO_ADVANCED, parseAdvanced, RunAdvanced, type AdvancedText } from "./RunAdvanced";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let root: Root;
let container: HTMLDivElement;

beforeEach(() => {
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

const $ = (testId: string) => container.querySelector<HTMLElement>(`[data-testid="${testId}"]`);

function type(testId: string, text: string) {
  const input = $(testId) as HTMLInputElement;
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!.set!;
  act(() => {
    setter.call(input, text);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

describe("parseAdvanced", () => {
  it("sends only what is set, within the server's bounds", () => {
    expect(parseAdvanced(NO_ADVANCED)).toEqual({ ok: true, value: {} });
    expect(parseAdvanced({ weight: " 2.5 ", priority: "-3", offPeak: true })).toEqual({
      ok: true,
      value: { weight: 2.5, priority: -3, defer: "off_peak" },
    });
    expect(parseAdvanced({ weight: "0.01", priority: "100", offPeak: false })).toEqual({ ok: true, value: { weight: 0.01, priority: 100 } });
    expect(parseAdvanced({ weight: "100", priority: "-100", offPeak: false }).ok).toBe(true);
  });

  it("refuses what the server refuses, naming each field", () => {
    expect(parseAdvanced({ weight: "0", priority: "", offPeak: false })).toEqual({ ok: false, errors: { weight: "from 0.01 to 100" } });
    expect(parseAdvanced({ weight: "101", priority: "", offPeak: false })).toEqual({ ok: false, errors: { weight: "from 0.01 to 100" } });
    expect(parseAdvanced({ weight: "heavy", priority: "", offPeak: false })).toEqual({ ok: false, errors: { weight: "a number, like 2" } });
    expect(parseAdvanced({ weight: "", priority: "1.5", offPeak: false })).toEqual({
      ok: false,
      errors: { priority: "a whole number, like 5 or -3" },
    });
    expect(parseAdvanced({ weight: "", priority: "101", offPeak: true })).toEqual({ ok: false, errors: { priority: "from -100 to 100" } });
  });

  it("says what is set", () => {
    expect(advancedLabel({})).toBe("");
    expect(advancedLabel({ weight: 2, priority: 5, defer: "off_peak" })).toBe("weight 2 · priority 5 · off-peak");
  });
});

function Harness(props: { onText: (text: AdvancedText) => void }) {
  const [text, setText] = useState<AdvancedText>(NO_ADVANCED);
  return (
    <RunAdvanced
      text={text}
      parsed={parseAdvanced(text)}
      onChange={(next) => {
        setText(next);
        props.onText(next);
      }}
    />
  );
}

describe("RunAdvanced", () => {
  it("is a closed disclosure that shows what is set and opens on a mistake", () => {
    let last: AdvancedText = NO_ADVANCED;
    act(() => root.render(<Harness onText={(t) => (last = t)} />));
    const details = $("run-advanced") as HTMLDetailsElement;
    expect(details.open).toBe(false);
    expect($("run-advanced-summary")).toBeNull();

    type("run-weight", "3");
    type("run-priority", "7");
    act(() => ($("run-off-peak") as HTMLInputElement).click());
    expect(last).toEqual({ weight: "3", priority: "7", offPeak: true });
    expect($("run-advanced-summary")?.textContent).toBe(" · weight 3 · priority 7 · off-peak");

    type("run-weight", "500");
    expect(($("run-advanced") as HTMLDetailsElement).open).toBe(true); // the mistake is visible
    expect($("run-weight-error")?.textContent).toBe("Weight: from 0.01 to 100");
    expect($("run-weight")?.className).toContain("kr-invalid");
    type("run-weight", "");
    expect($("run-weight-error")).toBeNull();
  });

  it("ties each field to its bounds and its error for screen readers", () => {
    act(() => root.render(<Harness onText={() => undefined} />));
    const input = $("run-priority") as HTMLInputElement;
    const described = () => (input.getAttribute("aria-describedby") ?? "").split(" ").map((id) => document.getElementById(id)?.textContent);
    expect(input.getAttribute("aria-invalid")).toBeNull();
    expect(described()).toEqual(["-100 to 100: your runs with a higher priority call a busy provider first."]);
    type("run-priority", "1.5");
    expect(input.getAttribute("aria-invalid")).toBe("true");
    expect(described()[1]).toBe("Priority: a whole number, like 5 or -3");
    expect($("run-priority-error")?.getAttribute("role")).toBe("alert");
  });
});
