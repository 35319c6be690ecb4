import { TollgateError } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import {
  budgetErrorBody,
  compilePrice,
  costOf,
  createPriceBook,
  DEFAULT_PRICES,
  formatBudgetExceeded,
  throttledLimit,
  usageFromAnthropic,
  usageFromOpenAI,
  worstCaseCost,
} from "../src/index.js";

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e instanceof TollgateError ? e.code : "other";
  }
  return undefined;
};

describe("price table", () => {
  const book = createPriceBook(DEFAULT_PRICES);
  it("every default entry compiles to exact nano-USD prices", () => {
    for (const name of Object.keys(DEFAULT_PRICES)) expect(book.get(name)?.model).toBe(name);
    expect(Object.keys(DEFAULT_PRICES).length).toBeGreaterThanOrEqual(35);
  });
  it("covers OpenAI, Anthropic, Google and Mistral chat and embedding models", () => {
    const providers = new Set(Object.values(DEFAULT_PRICES).map((p) => `${p.litellm_provider}/${p.mode}`));
    for (const p of ["openai", "anthropic", "gemini", "mistral"]) expect(providers.has(`${p}/chat`)).toBe(true);
    for (const p of ["openai", "gemini", "mistral"]) expect(providers.has(`${p}/embedding`)).toBe(true);
  });
  it("gpt-4o is $2.50 / $10 per 1M tokens, cached input $1.25", () => {
    const p = book.get("gpt-4o");
    expect(p).toMatchObject({ input: 2500, output: 10000, cacheRead: 1250, maxOutputTokens: 16384 });
  });
  it("resolves provider-prefixed names by the part after the last slash", () => {
    expect(book.get("openai/gpt-4o")?.model).toBe("gpt-4o");
    expect(book.get("gemini/gemini-2.5-pro")?.model).toBe("gemini-2.5-pro");
    expect(book.get("nope/unknown")).toBeUndefined();
  });
  it("per-deployment overrides replace only the fields they set", () => {
    const b = createPriceBook(DEFAULT_PRICES, {
      "gpt-4o": { input_cost_per_token: "0.000001" },
      "my-llama": { input_cost_per_token: 1e-7, output_cost_per_token: "2e-7", max_output_tokens: 4096 },
    });
    expect(b.get("gpt-4o")).toMatchObject({ input: 1000, output: 10000 });
    expect(b.get("my-llama")).toMatchObject({ input: 100, output: 200, maxOutputTokens: 4096 });
  });
  it("rejects prices finer than 1e-9 USD, negative prices and missing input prices with INVALID_PRICE", () => {
    expect(code(() => compilePrice("m", { input_cost_per_token: 1.875e-8 }))).toBe("INVALID_PRICE");
    expect(code(() => compilePrice("m", { input_cost_per_token: -1e-6 }))).toBe("INVALID_PRICE");
    expect(code(() => compilePrice("m", {} as never))).toBe("INVALID_PRICE");
    expect(code(() => compilePrice("m", { input_cost_per_token: 1e-6, max_output_tokens: 0 }))).toBe("INVALID_PRICE");
  });
});

describe("exact cost of a usage record", () => {
  const price = compilePrice("m", {
    input_cost_per_token: "0.000003",
    output_cost_per_token: "0.000015",
    cache_read_input_token_cost: "0.0000003",
    cache_creation_input_token_cost: "0.00000375",
    output_cost_per_reasoning_token: "0.00002",
  });
  it("prices uncached, cached-read, cache-write, output and reasoning tokens separately", () => {
    const cost = costOf(price, {
      inputTokens: 1000,
      cachedInputTokens: 600,
      cacheCreationInputTokens: 100,
      outputTokens: 500,
      reasoningTokens: 200,
    });
    // 300*3000 + 600*300 + 100*3750 + 300*15000 + 200*20000 nano
    expect(cost).toBe(900_000 + 180_000 + 375_000 + 4_500_000 + 4_000_000);
  });
  it("reasoning defaults to the output price and cached reads to the input price", () => {
    const p = compilePrice("n", { input_cost_per_token: "0.000001", output_cost_per_token: "0.000002" });
    expect(costOf(p, { inputTokens: 10, cachedInputTokens: 4, outputTokens: 5, reasoningTokens: 5 })).toBe(
      10_000 + 10_000,
    );
  });
  it("one token at 1e-9 USD costs exactly 1 nano", () => {
    const p = compilePrice("cheap", { input_cost_per_token: "0.000000001" });
    expect(costOf(p, { inputTokens: 1 })).toBe(1);
    expect(costOf(p, { inputTokens: 123_456_789 })).toBe(123_456_789);
  });
  it("rejects inconsistent usage with INVALID_AMOUNT", () => {
    expect(code(() => costOf(price, { inputTokens: 10, cachedInputTokens: 11 }))).toBe("INVALID_AMOUNT");
    expect(code(() => costOf(price, { inputTokens: 10, outputTokens: 1, reasoningTokens: 2 }))).toBe("INVALID_AMOUNT");
    expect(code(() => costOf(price, { inputTokens: -1 }))).toBe("INVALID_AMOUNT");
    expect(code(() => costOf(price, { inputTokens: 1.5 }))).toBe("INVALID_AMOUNT");
  });
  it("worst case prices every output token at max(output, reasoning)", () => {
    expect(worstCaseCost(price, 100, 10)).toBe(100 * 3000 + 10 * 20000);
  });
  it("normalizes OpenAI and Anthropic usage objects", () => {
    expect(
      usageFromOpenAI({
        prompt_tokens: 100,
        completion_tokens: 50,
        prompt_tokens_details: { cached_tokens: 40 },
        completion_tokens_details: { reasoning_tokens: 20 },
      }),
    ).toEqual({ inputTokens: 100, outputTokens: 50, cachedInputTokens: 40, reasoningTokens: 20 });
    expect(
      usageFromAnthropic({
        input_tokens: 10,
        output_tokens: 5,
        cache_read_input_tokens: 30,
        cache_creation_input_tokens: 7,
      }),
    ).toEqual({ inputTokens: 47, outputTokens: 5, cachedInputTokens: 30, cacheCreationInputTokens: 7 });
  });
});

describe("LiteLLM messages and helpers", () => {
  const spend = 2_376_540_000;
  const max = 2_000_000_000;
  it("formats every scope like LiteLLM", () => {
    const f = (budget: Parameters<typeof formatBudgetExceeded>[0]["budget"]) =>
      formatBudgetExceeded({ budget, spend, max });
    expect(f({ scope: "key", id: "hash" })).toBe("Budget has been exceeded! Current cost: 2.37654, Max budget: 2.0");
    expect(f({ scope: "team", id: "t1" })).toBe(
      "Budget has been exceeded! Team=t1 Current cost: 2.37654, Max budget: 2.0",
    );
    expect(f({ scope: "user", id: "u1" })).toBe("ExceededBudget: User=u1 over budget. Spend=2.37654, Budget=2.0");
    expect(f({ scope: "team_member", id: "u1", teamId: "t1" })).toBe(
      "Budget has been exceeded! User=u1 in Team=t1 Current cost: 2.37654, Max budget: 2.0",
    );
    expect(f({ scope: "end_user", id: "c1" })).toBe(
      "ExceededBudget: End User=c1 over budget. Spend=2.37654, Budget=2.0",
    );
    expect(f({ scope: "organization", id: "o1" })).toBe(
      "Budget has been exceeded! Organization=o1 Current cost: 2.37654, Max budget: 2.0",
    );
    expect(f({ scope: "global", id: "proxy" })).toBe(
      "Budget has been exceeded! Current cost: 2.37654, Max budget: 2.0",
    );
    expect(f({ scope: "key", id: "hash", model: "gpt-4o", alias: "prod" })).toBe(
      "LiteLLM Virtual Key: hash, key_alias: prod, exceeded budget for model=gpt-4o",
    );
    expect(f({ scope: "user", id: "u1", model: "gpt-4o" })).toBe("LiteLLM User: u1, exceeded budget for model=gpt-4o");
  });
  it("prints tiny amounts like Python", () => {
    expect(formatBudgetExceeded({ budget: { scope: "key", id: "k" }, spend: 72_000, max: 200 })).toBe(
      "Budget has been exceeded! Current cost: 7.2e-05, Max budget: 2e-07",
    );
  });
  it("builds LiteLLM's error body", () => {
    expect(budgetErrorBody({ message: "m" })).toEqual({
      error: { message: "m", type: "budget_exceeded", param: null, code: "429" },
    });
    expect(budgetErrorBody({ message: "m" }, 400).error.code).toBe("400");
  });
  it("budget throttle is max(1, floor(limit * pct))", () => {
    expect(throttledLimit(100, 0.1)).toBe(10);
    expect(throttledLimit(5, 0.1)).toBe(1);
    expect(throttledLimit(0, 0.5)).toBe(1);
    expect(throttledLimit(1000, 1)).toBe(1000);
    expect(throttledLimit(null, 0.5)).toBeNull();
    expect(code(() => throttledLimit(100, 0))).toBe("INVALID_ARGUMENT");
    expect(code(() => throttledLimit(100, 1.5))).toBe("INVALID_ARGUMENT");
    expect(code(() => throttledLimit(-1, 0.5))).toBe("INVALID_LIMIT");
  });
});
