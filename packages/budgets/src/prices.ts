import { TollgateError } from "@tollgate/core";
import { formatUsd, parseUsd } from "./money.js";
import type { PriceTable } from "./pricing.js";

/**
 * Default price table (USD per token, LiteLLM field names), compiled from the providers' public list prices
 * as known on 2025-11-30: standard tier, short-context rates (Gemini <= 200k prompt tokens), no batch discounts.
 * Prices change: check them against your contracts and override per deployment (`prices` / `priceOverrides`).
 * Only models whose prices are exact to 1e-9 USD per token are listed.
 */
export const PRICES_DATE = "2025-11-30";

/** USD per 1M tokens (exact decimal) -> exact USD-per-token decimal string. */
function per1M(usd: number): string {
  const nanoPerMillion = parseUsd(usd, "price per 1M tokens", { code: "INVALID_PRICE" });
  if (nanoPerMillion % 1_000_000 !== 0)
    throw new TollgateError("INVALID_PRICE", `price ${usd}/1M is not exact to 1e-9 USD per token`);
  return formatUsd(nanoPerMillion / 1_000_000);
}

function chat(
  provider: string,
  input: number,
  output: number,
  maxOut: number,
  extra: { read?: number; write?: number } = {},
) {
  return {
    litellm_provider: provider,
    mode: "chat",
    input_cost_per_token: per1M(input),
    output_cost_per_token: per1M(output),
    ...(extra.read === undefined ? {} : { cache_read_input_token_cost: per1M(extra.read) }),
    ...(extra.write === undefined ? {} : { cache_creation_input_token_cost: per1M(extra.write) }),
    max_output_tokens: maxOut,
  };
}

function embedding(provider: string, input: number) {
  return {
    litellm_provider: provider,
    mode: "embedding",
    input_cost_per_token: per1M(input),
    output_cost_per_token: "0",
  };
}

export const DEFAULT_PRICES: PriceTable = {
  // OpenAI (per 1M tokens: input, output; cached input)
  "gpt-5": chat("openai", 1.25, 10, 128_000, { read: 0.125 }),
  "gpt-5-mini": chat("openai", 0.25, 2, 128_000, { read: 0.025 }),
  "gpt-5-nano": chat("openai", 0.05, 0.4, 128_000, { read: 0.005 }),
  "gpt-4.1": chat("openai", 2, 8, 32_768, { read: 0.5 }),
  "gpt-4.1-mini": chat("openai", 0.4, 1.6, 32_768, { read: 0.1 }),
  "gpt-4.1-nano": chat("openai", 0.1, 0.4, 32_768, { read: 0.025 }),
  "gpt-4o": chat("openai", 2.5, 10, 16_384, { read: 1.25 }),
  "gpt-4o-2024-08-06": chat("openai", 2.5, 10, 16_384, { read: 1.25 }),
  "gpt-4o-2024-11-20": chat("openai", 2.5, 10, 16_384, { read: 1.25 }),
  "gpt-4o-mini": chat("openai", 0.15, 0.6, 16_384, { read: 0.075 }),
  "gpt-4-turbo": chat("openai", 10, 30, 4_096),
  "gpt-3.5-turbo": chat("openai", 0.5, 1.5, 4_096),
  o1: chat("openai", 15, 60, 100_000, { read: 7.5 }),
  o3: chat("openai", 2, 8, 100_000, { read: 0.5 }),
  "o3-mini": chat("openai", 1.1, 4.4, 100_000, { read: 0.55 }),
  "o4-mini": chat("openai", 1.1, 4.4, 100_000, { read: 0.275 }),
  "text-embedding-3-small": embedding("openai", 0.02),
  "text-embedding-3-large": embedding("openai", 0.13),
  "text-embedding-ada-002": embedding("openai", 0.1),

  // Anthropic (input, output; cache read, 5-minute cache write)
  "claude-opus-4-5-20251101": chat("anthropic", 5, 25, 64_000, { read: 0.5, write: 6.25 }),
  "claude-opus-4-1-20250805": chat("anthropic", 15, 75, 32_000, { read: 1.5, write: 18.75 }),
  "claude-opus-4-20250514": chat("anthropic", 15, 75, 32_000, { read: 1.5, write: 18.75 }),
  "claude-sonnet-4-5-20250929": chat("anthropic", 3, 15, 64_000, { read: 0.3, write: 3.75 }),
  "claude-sonnet-4-20250514": chat("anthropic", 3, 15, 64_000, { read: 0.3, write: 3.75 }),
  "claude-3-7-sonnet-20250219": chat("anthropic", 3, 15, 64_000, { read: 0.3, write: 3.75 }),
  "claude-haiku-4-5-20251001": chat("anthropic", 1, 5, 64_000, { read: 0.1, write: 1.25 }),
  "claude-3-5-haiku-20241022": chat("anthropic", 0.8, 4, 8_192, { read: 0.08, write: 1 }),
  "claude-3-haiku-20240307": chat("anthropic", 0.25, 1.25, 4_096, { read: 0.03, write: 0.3 }),

  // Google Gemini API (input, output; prompts up to 200k tokens)
  "gemini-2.5-pro": chat("gemini", 1.25, 10, 65_535),
  "gemini-2.5-flash": chat("gemini", 0.3, 2.5, 65_535),
  "gemini-2.5-flash-lite": chat("gemini", 0.1, 0.4, 65_535),
  "gemini-2.0-flash": chat("gemini", 0.1, 0.4, 8_192),
  "gemini-2.0-flash-lite": chat("gemini", 0.075, 0.3, 8_192),
  "gemini-embedding-001": embedding("gemini", 0.15),

  // Mistral (input, output)
  "mistral-large-latest": chat("mistral", 2, 6, 8_191),
  "mistral-medium-latest": chat("mistral", 0.4, 2, 8_191),
  "mistral-small-latest": chat("mistral", 0.1, 0.3, 8_191),
  "codestral-latest": chat("mistral", 0.3, 0.9, 8_191),
  "open-mistral-nemo": chat("mistral", 0.15, 0.15, 8_191),
  "mistral-embed": embedding("mistral", 0.1),
};
