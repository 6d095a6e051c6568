import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, request } from "./client";

function answer(status: number, body: string, statusText = ""): void {
  vi.stubGlobal("fetch", vi.fn(async () => new Response(body, { status, statusText })));
}

describe("request", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("returns the parsed JSON of a good answer", async () => {
    answer(200, '{"id": 3}');
    await expect(request("GET", "/api/workflows/3/")).resolves.toEqual({ id: 3 });
  });

  it("raises the API's own error message", async () => {
    answer(400, '{"error": "name is required"}');
    await expect(request("POST", "/api/workflows/", {})).rejects.toThrow("name is required");
  });

  it("says what the server answered when an error page is not JSON", async () => {
    answer(500, "<!doctype html><title>Server Error (500)</title>", "Internal Server Error");
    const error = await request("PUT", "/api/workflows/3/", {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(500);
    expect((error as ApiError).message).toBe("the server answered 500 Internal Server Error");
  });

  it("refuses a successful answer that is not JSON instead of returning it", async () => {
    answer(200, "<!doctype html>");
    await expect(request("GET", "/api/workflows/")).rejects.toThrow("the server answered 200 with a body that is not JSON");
  });
});
