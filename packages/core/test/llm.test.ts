import { describe, expect, it } from "vitest";
import {
  applyImplicitOutputCap,
  capAndEstimate,
  estimateRequestTokens,
  outputTokenFloor,
  type TokenEstimateOptions,
  tokensFromUsage,
} from "../src/llm.js";
import { codeOf } from "./code-of.js";

const chars = (n: number, c = "a") => c.repeat(n);
const chat = (text: string, extra: Record<string, unknown> = {}) => ({
  model: "gpt-4o",
  messages: [{ role: "user", content: text }],
  ...extra,
});

describe("estimateRequestTokens: input", () => {
  it("input = floor(chars / 4), output floor 1024 without a TPM limit", () => {
    expect(estimateRequestTokens(chat(chars(40)))).toEqual({ input: 10, output: 1024, total: 1034 });
  });

  it("a few characters still count as 1 input token", () => {
    expect(estimateRequestTokens(chat("abc")).input).toBe(1);
  });

  it("counts string content and text parts of every message, not images", () => {
    const body = {
      messages: [
        { role: "system", content: chars(12, "s") },
        {
          role: "user",
          content: [
            { type: "text", text: chars(20, "x") },
            { type: "image_url", image_url: { url: "https://example.com/a-long-image-url.png" } },
            { type: "text", text: chars(8, "y") },
          ],
        },
        { role: "assistant", content: null, tool_calls: [{ id: "c1" }] },
      ],
      max_tokens: 7,
    };
    expect(estimateRequestTokens(body, { callType: "chat" })).toEqual({ input: 10, output: 7, total: 17 });
  });

  it("reads prompt for completions (string or array of strings)", () => {
    expect(estimateRequestTokens({ prompt: chars(40), max_tokens: 1 }, { callType: "completion" }).input).toBe(10);
    expect(estimateRequestTokens({ prompt: [chars(20), chars(20)], max_tokens: 1 }).input).toBe(10);
  });

  it("reads Responses API input items with input_text parts", () => {
    const body = {
      input: [{ role: "user", content: [{ type: "input_text", text: chars(40) }] }],
      max_output_tokens: 100,
    };
    expect(estimateRequestTokens(body, { callType: "responses" })).toEqual({ input: 10, output: 100, total: 110 });
  });

  it("ignores content nested deeper than any OpenAI shape (no stack blow-up on hostile JSON)", () => {
    let deep: unknown = "deep text";
    for (let i = 0; i < 10_000; i++) deep = [deep];
    expect(estimateRequestTokens({ messages: [{ role: "user", content: deep }], max_tokens: 3 })).toEqual({
      input: 0,
      output: 3,
      total: 3,
    });
  });
});

describe("estimateRequestTokens: output", () => {
  it("explicit cap is the max of max_tokens and max_completion_tokens", () => {
    expect(estimateRequestTokens(chat(chars(40), { max_tokens: 100, max_completion_tokens: 300 })).output).toBe(300);
    expect(estimateRequestTokens(chat(chars(40), { max_tokens: 500, max_completion_tokens: 300 })).output).toBe(500);
  });

  it("null caps count as absent", () => {
    expect(estimateRequestTokens(chat(chars(40), { max_tokens: null })).output).toBe(1024);
  });

  it("configured output estimate applies when the request has no cap; a cap beats it", () => {
    expect(estimateRequestTokens(chat(chars(40)), { configuredOutputTokens: 50 }).output).toBe(50);
    expect(estimateRequestTokens(chat(chars(40), { max_tokens: 20 }), { configuredOutputTokens: 50 }).output).toBe(20);
  });

  it("small TPM lowers the floor to minTpm / 4; long inputs reserve max(input, floor)", () => {
    expect(estimateRequestTokens(chat(chars(40)), { minTpmLimit: 400 })).toEqual({
      input: 10,
      output: 100,
      total: 110,
    });
    expect(estimateRequestTokens(chat(chars(2000)), { minTpmLimit: 400 })).toEqual({
      input: 500,
      output: 500,
      total: 1000,
    });
  });

  it("floor = min(1024, max(1, floor(minTpm / 4)))", () => {
    expect(outputTokenFloor()).toBe(1024);
    expect(outputTokenFloor(10_000)).toBe(1024);
    expect(outputTokenFloor(4_096)).toBe(1024);
    expect(outputTokenFloor(4_095)).toBe(1023);
    expect(outputTokenFloor(7)).toBe(1);
    expect(outputTokenFloor(2)).toBe(1);
    expect(outputTokenFloor(0)).toBe(1);
    expect(outputTokenFloor(20, "responses")).toBe(16);
    expect(outputTokenFloor(400, "responses")).toBe(100);
  });

  it("Responses API: max_output_tokens has a floor of 16, so does the default floor", () => {
    const opts: TokenEstimateOptions = { callType: "responses" };
    expect(estimateRequestTokens({ input: chars(40), max_output_tokens: 5 }, opts).output).toBe(16);
    expect(estimateRequestTokens({ input: chars(40), max_output_tokens: 64 }, opts).output).toBe(64);
    expect(estimateRequestTokens({ input: chars(40) }, { ...opts, minTpmLimit: 20 }).output).toBe(16);
    // max_tokens is not a Responses API field
    expect(estimateRequestTokens({ input: chars(40), max_tokens: 5 }, opts).output).toBe(1024);
  });

  it("max_output_tokens counts when the call type is unknown, not for chat", () => {
    expect(estimateRequestTokens(chat(chars(40), { max_output_tokens: 200 })).output).toBe(200);
    expect(estimateRequestTokens(chat(chars(40), { max_output_tokens: 200 }), { callType: "chat" }).output).toBe(1024);
  });

  it("n and best_of multiply the output (the larger of the two)", () => {
    expect(estimateRequestTokens(chat(chars(40), { max_tokens: 100, n: 3 }))).toEqual({
      input: 10,
      output: 300,
      total: 310,
    });
    expect(estimateRequestTokens({ prompt: chars(40), max_tokens: 100, n: 2, best_of: 5 }).output).toBe(500);
    expect(estimateRequestTokens(chat(chars(40), { n: 2 }), { minTpmLimit: 400 }).output).toBe(200);
  });

  it("embeddings reserve no output, whatever the caps or n", () => {
    const opts: TokenEstimateOptions = { callType: "embedding", minTpmLimit: 400, configuredOutputTokens: 99 };
    expect(estimateRequestTokens({ input: chars(40), max_tokens: 500, n: 4 }, opts)).toEqual({
      input: 10,
      output: 0,
      total: 10,
    });
    expect(estimateRequestTokens({ input: ["aaaa", "bbbbbbbb"] }, { callType: "embedding" }).input).toBe(3);
  });

  it("contentless requests reserve exactly 1", () => {
    expect(estimateRequestTokens({ messages: [] })).toEqual({ input: 0, output: 0, total: 1 });
    expect(estimateRequestTokens({ model: "x" })).toEqual({ input: 0, output: 0, total: 1 });
    expect(estimateRequestTokens({ input: "" }, { callType: "embedding" })).toEqual({ input: 0, output: 0, total: 1 });
    expect(estimateRequestTokens(chat(""), { minTpmLimit: 400 })).toEqual({ input: 0, output: 0, total: 1 });
  });

  it("contentless requests still reserve an explicit cap or a configured estimate", () => {
    expect(estimateRequestTokens({ messages: [], max_tokens: 30 }).total).toBe(30);
    expect(estimateRequestTokens({ messages: [] }, { configuredOutputTokens: 40 }).total).toBe(40);
  });
});

describe("applyImplicitOutputCap (small-TPM rule)", () => {
  it("writes max_tokens = floor into a copy when the floor is below 1024", () => {
    const body = chat(chars(40));
    const capped = applyImplicitOutputCap(body, { minTpmLimit: 400 });
    expect(capped).not.toBe(body);
    expect(capped).toEqual({ ...body, max_tokens: 100 });
    expect(body).not.toHaveProperty("max_tokens");
  });

  it("uses max(floor, configured output estimate)", () => {
    expect(applyImplicitOutputCap(chat("hi"), { minTpmLimit: 400, configuredOutputTokens: 300 })).toMatchObject({
      max_tokens: 300,
    });
    expect(applyImplicitOutputCap(chat("hi"), { minTpmLimit: 400, configuredOutputTokens: 50 })).toMatchObject({
      max_tokens: 100,
    });
  });

  it("boundary: floor 1023 caps, floor 1024 does not", () => {
    expect(applyImplicitOutputCap(chat("hi"), { minTpmLimit: 4_095 })).toMatchObject({ max_tokens: 1023 });
    const body = chat("hi");
    expect(applyImplicitOutputCap(body, { minTpmLimit: 4_096 })).toBe(body);
    expect(applyImplicitOutputCap(body)).toBe(body);
  });

  it("never touches a request that sets its own cap (never raises, never overwrites)", () => {
    const high = chat("hi", { max_tokens: 5_000 });
    expect(applyImplicitOutputCap(high, { minTpmLimit: 400 })).toBe(high);
    const low = chat("hi", { max_completion_tokens: 10 });
    expect(applyImplicitOutputCap(low, { minTpmLimit: 400 })).toBe(low);
  });

  it("skips embeddings", () => {
    const body = { input: "hello" };
    expect(applyImplicitOutputCap(body, { minTpmLimit: 40, callType: "embedding" })).toBe(body);
  });

  it("Responses API: writes max_output_tokens with the 16 minimum", () => {
    expect(applyImplicitOutputCap({ input: "hi" }, { minTpmLimit: 20, callType: "responses" })).toEqual({
      input: "hi",
      max_output_tokens: 16,
    });
  });

  it("capAndEstimate: the estimate follows the injected cap", () => {
    const { body, estimate } = capAndEstimate(chat(chars(2000)), { minTpmLimit: 400 });
    expect(body).toMatchObject({ max_tokens: 100 });
    expect(estimate).toEqual({ input: 500, output: 100, total: 600 });
  });
});

describe("estimate bad input -> INVALID_ARGUMENT", () => {
  it.each<[string, unknown, TokenEstimateOptions?]>([
    ["null body", null],
    ["array body", [chat("x")]],
    ["string body", "hello"],
    ["negative max_tokens", chat("x", { max_tokens: -1 })],
    ["string max_tokens", chat("x", { max_tokens: "100" })],
    ["fractional max_completion_tokens", chat("x", { max_completion_tokens: 1.5 })],
    ["NaN max_completion_tokens", chat("x", { max_completion_tokens: Number.NaN })],
    ["negative max_output_tokens", { input: "x", max_output_tokens: -1 }, { callType: "responses" }],
    ["n = 0", chat("x", { n: 0 })],
    ["negative n", chat("x", { n: -2 })],
    ["string best_of", { prompt: "x", best_of: "2" }],
    ["messages not an array", { messages: "hi" }],
    ["prompt a number", { prompt: 42 }],
    ["negative minTpmLimit", chat("x"), { minTpmLimit: -1 }],
    ["NaN minTpmLimit", chat("x"), { minTpmLimit: Number.NaN }],
    ["fractional configuredOutputTokens", chat("x"), { configuredOutputTokens: 1.5 }],
    ["unknown callType", chat("x"), { callType: "image" as never }],
  ])("%s", (_name, body, options) => {
    expect(codeOf(() => estimateRequestTokens(body, options))).toBe("INVALID_ARGUMENT");
  });

  it("applyImplicitOutputCap validates the same way", () => {
    expect(codeOf(() => applyImplicitOutputCap(chat("x", { max_tokens: -1 }), { minTpmLimit: 400 }))).toBe(
      "INVALID_ARGUMENT",
    );
    expect(codeOf(() => applyImplicitOutputCap(null, { minTpmLimit: 400 }))).toBe("INVALID_ARGUMENT");
    expect(codeOf(() => outputTokenFloor(-4))).toBe("INVALID_ARGUMENT");
  });
});

describe("tokensFromUsage", () => {
  const chatUsage = {
    prompt_tokens: 100,
    completion_tokens: 50,
    total_tokens: 150,
    prompt_tokens_details: { cached_tokens: 30 },
  };

  it("excludes cached prompt tokens from total and input", () => {
    expect(tokensFromUsage(chatUsage, "total")).toBe(120);
    expect(tokensFromUsage(chatUsage, "input")).toBe(70);
    expect(tokensFromUsage(chatUsage, "output")).toBe(50);
    expect(tokensFromUsage(chatUsage)).toBe(120);
  });

  it("reads Responses API usage", () => {
    const u = { input_tokens: 100, output_tokens: 20, total_tokens: 120, input_tokens_details: { cached_tokens: 100 } };
    expect(tokensFromUsage(u, "total")).toBe(20);
    expect(tokensFromUsage(u, "input")).toBe(0);
    expect(tokensFromUsage(u, "output")).toBe(20);
  });

  it("derives total from prompt + completion when total_tokens is absent or null", () => {
    expect(tokensFromUsage({ prompt_tokens: 10, completion_tokens: 5 })).toBe(15);
    expect(tokensFromUsage({ prompt_tokens: 10, completion_tokens: null, total_tokens: null })).toBe(10);
  });

  it("falls back to total_tokens when usage reports only the aggregate", () => {
    for (const mode of ["total", "input", "output"] as const) {
      expect(tokensFromUsage({ total_tokens: 42 }, mode)).toBe(42);
    }
    expect(tokensFromUsage({})).toBe(0);
  });

  it("a response without usage (null or undefined) counts 0 tokens in every mode, as in LiteLLM", () => {
    for (const mode of ["total", "input", "output"] as const) {
      expect(tokensFromUsage(null, mode)).toBe(0);
      expect(tokensFromUsage(undefined, mode)).toBe(0);
    }
    expect(codeOf(() => tokensFromUsage(null, "all" as "total"))).toBe("INVALID_ARGUMENT");
  });

  it("a real zero is not replaced by the aggregate", () => {
    expect(tokensFromUsage({ prompt_tokens: 10, completion_tokens: 0, total_tokens: 10 }, "output")).toBe(0);
  });

  it.each<[string, unknown, string?]>([
    ["string usage", "x"],
    ["number usage", 0],
    ["array usage", []],
    ["negative prompt_tokens", { prompt_tokens: -1, completion_tokens: 1 }],
    ["fractional completion_tokens", { prompt_tokens: 1, completion_tokens: 1.5 }],
    ["string total_tokens", { total_tokens: "3" }],
    ["cached above prompt", { prompt_tokens: 5, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 6 } }],
    [
      "cached above total",
      { prompt_tokens: 10, completion_tokens: 0, total_tokens: 5, prompt_tokens_details: { cached_tokens: 8 } },
    ],
    ["details not an object", { prompt_tokens: 5, completion_tokens: 1, prompt_tokens_details: 3 }],
    ["unknown mode", { total_tokens: 3 }, "all"],
  ])("%s -> INVALID_ARGUMENT", (_name, usage, mode) => {
    expect(codeOf(() => tokensFromUsage(usage, mode as "total" | undefined))).toBe("INVALID_ARGUMENT");
  });
});
