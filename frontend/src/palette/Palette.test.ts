import { describe, expect, it } from "vitest";
import type { CatalogueEntry } from "../types";
import { searchCatalogue } from "./Palette";

const entry = (type: string, label: string, description: string): CatalogueEntry => ({
  type,
  label,
  description,
  icon: "x",
  config_schema: {},
  outputs: {},
});
const CATALOGUE = [
  entry("loop", "Loop", "Runs the blocks inside it once per item"),
  entry("http", "HTTP request", "Calls an HTTP API"),
  entry("slack", "Slack message", "Posts a message to a Slack channel"),
  entry("agent", "Agent", "Asks an LLM; posts nothing"),
];

describe("palette search", () => {
  it("matches every word in label, type or description, label matches first", () => {
    expect(searchCatalogue(CATALOGUE, "").map((e) => e.type)).toEqual(["loop", "http", "slack", "agent"]);
    expect(searchCatalogue(CATALOGUE, "HTTP").map((e) => e.type)).toEqual(["http"]);
    expect(searchCatalogue(CATALOGUE, "posts").map((e) => e.type)).toEqual(["slack", "agent"]);
    expect(searchCatalogue(CATALOGUE, "slack channel").map((e) => e.type)).toEqual(["slack"]);
    expect(searchCatalogue(CATALOGUE, "message").map((e) => e.type)).toEqual(["slack"]);
    expect(searchCatalogue(CATALOGUE, "zzz")).toEqual([]);
  });
});
