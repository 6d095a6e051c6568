import { describe, expect, it } from "vitest";
import { PaceWindow, SETTLE_MS, WINDOW_MS } from "./pace";

describe("PaceWindow", () => {
  it("has no pace until its samples span the settling time", () => {
    const w = new PaceWindow();
    w.observe(0, 0);
    w.observe(SETTLE_MS - 1, 10);
    expect(w.pace()).toBeNull();
    w.observe(SETTLE_MS, 12);
    expect(w.pace()).toBeCloseTo(12 / (SETTLE_MS / 1000));
  });

  it("reads only the last window: an early burst does not lift a later pace", () => {
    const w = new PaceWindow();
    w.observe(0, 0);
    w.observe(1_000, 1_000); // a burst of reused or instant items
    for (let t = 2_000; t <= 2_000 + 2 * WINDOW_MS; t += 1_000) w.observe(t, 1_000 + (t - 1_000) / 1_000);
    // 1 item/s since the burst, measured over the window (and the sample just before it).
    expect(w.pace()).toBeCloseTo(1, 1);
  });

  it("counts a stall in the window as time, and starts over when reset (a pause)", () => {
    const w = new PaceWindow();
    w.observe(0, 0);
    w.observe(5_000, 50);
    w.observe(10_000, 50);
    w.observe(15_000, 50);
    expect(w.pace()).toBeCloseTo(50 / 15);
    w.reset();
    expect(w.pace()).toBeNull();
    w.observe(20_000, 50);
    w.observe(24_000, 90);
    expect(w.pace()).toBeCloseTo(10);
  });

  it("starts over when the count goes back (another run), and stays bounded", () => {
    const w = new PaceWindow();
    for (let t = 0; t < 100_000; t += 10) w.observe(t, t);
    expect(w.pace()).toBeCloseTo(1000, 0);
    w.observe(100_000, 3);
    expect(w.pace()).toBeNull();
  });

  it("has no pace when nothing moved", () => {
    const w = new PaceWindow();
    w.observe(0, 5);
    w.observe(10_000, 5);
    expect(w.pace()).toBeNull();
  });
});
