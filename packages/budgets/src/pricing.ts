import { TollgateError } from "@tollgate/core";
import { isNonNegativeInteger } from "@tollgate/core/internal";
import { addNano, mulNano, type Nano, nonNegativeInt, parseUsd, type Usd } from "./money.js";

/**
 * One model's prices, with LiteLLM's field names (`model_prices_and_context_window.json`). Prices are USD per
 * token as numbers or decimal strings; they must be exact to 1e-9 USD.
 */
export interface ModelPriceInput {
  /** USD per prompt token. */
  input_cost_per_token: Usd;
  /** USD per completion token. @default 0 (embeddings) */
  output_cost_per_token?: Usd;
  /** USD per cached prompt token read. @default input_cost_per_token */
  cache_read_input_token_cost?: Usd;
  /** USD per prompt token written to the cache. @default input_cost_per_token */
  cache_creation_input_token_cost?: Usd;
  /** USD per reasoning token. @default output_cost_per_token */
  output_cost_per_reasoning_token?: Usd;
  /** Largest completion the model can produce; used for the worst case when a request has no max_tokens. */
  max_output_tokens?: number;
  /** `"chat"`, `"embedding"`, ... @default "chat" */
  mode?: string;
  /** Provider name, informational. */
  litellm_provider?: string;
}

/** A price table: model name -> prices. */
export type PriceTable = Record<string, ModelPriceInput>;

/** A model's prices compiled to integer nano-USD per token. */
export interface ModelPrice {
  model: string;
  input: Nano;
  output: Nano;
  cacheRead: Nano;
  cacheCreation: Nano;
  reasoning: Nano;
  /** `max(output, reasoning)`: the worst price of one completion token. */
  worstOutput: Nano;
  maxOutputTokens: number | null;
  mode: string;
}

/**
 * Token usage of one call, in OpenAI's convention: `inputTokens` counts every prompt token, including cached
 * reads and cache writes; `outputTokens` counts every completion token, including reasoning tokens.
 */
export interface Usage {
  /** All prompt tokens (OpenAI `prompt_tokens`). */
  inputTokens: number;
  /** Completion tokens (OpenAI `completion_tokens`), reasoning included. @default 0 */
  outputTokens?: number;
  /** Prompt tokens read from the cache (part of `inputTokens`). @default 0 */
  cachedInputTokens?: number;
  /** Prompt tokens written to the cache (part of `inputTokens`). @default 0 */
  cacheCreationInputTokens?: number;
  /** Reasoning tokens (part of `outputTokens`). @default 0 */
  reasoningTokens?: number;
}

function price(value: Usd | undefined, fallback: Nano, what: string): Nano {
  if (value === undefined) return fallback;
  return parseUsd(value, what, { code: "INVALID_PRICE" });
}

/**
 * Compiles one model's prices to nano-USD per token.
 * @throws TollgateError `INVALID_PRICE` for a negative price, a price finer than 1e-9 USD or a bad max_output_tokens.
 */
export function compilePrice(model: string, p: ModelPriceInput): ModelPrice {
  if (p === null || typeof p !== "object") {
    throw new TollgateError("INVALID_PRICE", `prices of ${model} must be an object`);
  }
  const input = price(p.input_cost_per_token, -1, `${model}.input_cost_per_token`);
  if (input < 0) throw new TollgateError("INVALID_PRICE", `${model}.input_cost_per_token is required`);
  const output = price(p.output_cost_per_token, 0, `${model}.output_cost_per_token`);
  const reasoning = price(p.output_cost_per_reasoning_token, output, `${model}.output_cost_per_reasoning_token`);
  const maxOut = p.max_output_tokens;
  if (maxOut !== undefined && maxOut !== null && !(isNonNegativeInteger(maxOut) && maxOut > 0)) {
    throw new TollgateError("INVALID_PRICE", `${model}.max_output_tokens must be a positive integer, got ${maxOut}`);
  }
  return {
    model,
    input,
    output,
    cacheRead: price(p.cache_read_input_token_cost, input, `${model}.cache_read_input_token_cost`),
    cacheCreation: price(p.cache_creation_input_token_cost, input, `${model}.cache_creation_input_token_cost`),
    reasoning,
    worstOutput: Math.max(output, reasoning),
    maxOutputTokens: maxOut ?? null,
    mode: p.mode ?? "chat",
  };
}

function tokens(n: number | undefined, what: string): number {
  return n === undefined ? 0 : nonNegativeInt(n, what);
}

function checkPrice(p: ModelPrice): void {
  if (typeof p !== "object" || p === null) {
    throw new TollgateError("INVALID_PRICE", "expected compiled model prices (compilePrice or a price book)");
  }
}

function providerUsage(u: unknown, from: string): Record<string, unknown> {
  if (typeof u !== "object" || u === null || Array.isArray(u)) {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `${from}: the response has no usage object (got ${u === null ? "null" : typeof u}); a charge needs it (ask for usage, e.g. stream_options.include_usage)`,
    );
  }
  return u as Record<string, unknown>;
}

/**
 * Checks that `usage` is a usage record with its prompt token count: a settle without usage (`undefined`, `{}`) is
 * an error, never a silent $0 charge.
 * @throws TollgateError `INVALID_ARGUMENT` when `usage` is not an object; `INVALID_AMOUNT` when `inputTokens` is
 *   missing (0 is a valid count).
 */
export function checkUsage(usage: unknown): asserts usage is Usage {
  if (typeof usage !== "object" || usage === null || Array.isArray(usage)) {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `settle needs the call's usage { inputTokens, outputTokens, ... }, got ${usage === null ? "null" : typeof usage}; use release() for a call that did not run`,
    );
  }
  if ((usage as Usage).inputTokens === undefined) {
    throw new TollgateError(
      "INVALID_AMOUNT",
      "usage.inputTokens is required (0 is a valid count): a missing count would charge nothing",
    );
  }
}

/**
 * Exact cost of a usage record: uncached prompt tokens at the input price, cached reads at
 * `cache_read_input_token_cost`, cache writes at `cache_creation_input_token_cost`, reasoning tokens at
 * `output_cost_per_reasoning_token`, other completion tokens at the output price.
 * @throws TollgateError `INVALID_AMOUNT` for bad or missing (`inputTokens`) token counts or when the parts exceed
 *   their totals; `INVALID_ARGUMENT` when `usage` is not an object.
 */
export function costOf(p: ModelPrice, usage: Usage): Nano {
  checkPrice(p);
  checkUsage(usage);
  const input = tokens(usage.inputTokens, "usage.inputTokens");
  const output = tokens(usage.outputTokens, "usage.outputTokens");
  const cached = tokens(usage.cachedInputTokens, "usage.cachedInputTokens");
  const created = tokens(usage.cacheCreationInputTokens, "usage.cacheCreationInputTokens");
  const reasoning = tokens(usage.reasoningTokens, "usage.reasoningTokens");
  if (cached + created > input) {
    throw new TollgateError(
      "INVALID_AMOUNT",
      `cached (${cached}) + cache-write (${created}) tokens exceed inputTokens (${input})`,
    );
  }
  if (reasoning > output) {
    throw new TollgateError("INVALID_AMOUNT", `reasoningTokens (${reasoning}) exceed outputTokens (${output})`);
  }
  const m = p.model;
  let cost = mulNano(input - cached - created, p.input, "cost", m);
  cost = addNano(cost, mulNano(cached, p.cacheRead, "cost", m), "cost", m);
  cost = addNano(cost, mulNano(created, p.cacheCreation, "cost", m), "cost", m);
  cost = addNano(cost, mulNano(output - reasoning, p.output, "cost", m), "cost", m);
  return addNano(cost, mulNano(reasoning, p.reasoning, "cost", m), "cost", m);
}

/** Worst-case cost of a request: every prompt token uncached, every output token at the worst output price. */
export function worstCaseCost(p: ModelPrice, inputTokens: number, maxOutputTokens: number): Nano {
  checkPrice(p);
  const m = p.model;
  return addNano(
    mulNano(tokens(inputTokens, "inputTokens"), p.input, "worst-case cost", m),
    mulNano(tokens(maxOutputTokens, "maxTokens"), p.worstOutput, "worst-case cost", m),
    "worst-case cost",
    m,
  );
}

/** Usage from an OpenAI `usage` object (`prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`). */
export function usageFromOpenAI(u: {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
  completion_tokens_details?: { reasoning_tokens?: number } | null;
}): Usage {
  providerUsage(u, "usageFromOpenAI");
  return {
    inputTokens: u.prompt_tokens ?? 0,
    outputTokens: u.completion_tokens ?? 0,
    cachedInputTokens: u.prompt_tokens_details?.cached_tokens ?? 0,
    reasoningTokens: u.completion_tokens_details?.reasoning_tokens ?? 0,
  };
}

/** Usage from an Anthropic `usage` object, whose `input_tokens` excludes cache reads and writes. */
export function usageFromAnthropic(u: {
  input_tokens?: number;
  output_tokens?: number;
  cache_read_input_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
}): Usage {
  providerUsage(u, "usageFromAnthropic");
  const read = u.cache_read_input_tokens ?? 0;
  const created = u.cache_creation_input_tokens ?? 0;
  return {
    inputTokens: (u.input_tokens ?? 0) + read + created,
    outputTokens: u.output_tokens ?? 0,
    cachedInputTokens: read,
    cacheCreationInputTokens: created,
  };
}

/** Looks up compiled prices by model name. */
export interface PriceBook {
  /** Prices of `model`: the exact name, then the part after the last `/` (`openai/gpt-4o` -> `gpt-4o`). */
  get(model: string): ModelPrice | undefined;
}

/**
 * Builds a price book from a base table (for example {@link DEFAULT_PRICES}) and per-deployment overrides; an
 * override replaces the fields it sets and keeps the others.
 * @throws TollgateError `INVALID_PRICE` for an invalid entry (every entry is checked up front).
 */
export function createPriceBook(base: PriceTable, overrides: Record<string, Partial<ModelPriceInput>> = {}): PriceBook {
  for (const [name, table] of [
    ["prices", base],
    ["priceOverrides", overrides],
  ] as const) {
    if (typeof table !== "object" || table === null || Array.isArray(table)) {
      throw new TollgateError("INVALID_ARGUMENT", `${name} must be an object of model name -> prices`);
    }
  }
  const compiled = new Map<string, ModelPrice>();
  const names = new Set([...Object.keys(base), ...Object.keys(overrides)]);
  for (const name of names) {
    const merged = { ...base[name], ...overrides[name] } as ModelPriceInput;
    compiled.set(name, compilePrice(name, merged));
  }
  return {
    get(model) {
      const exact = compiled.get(model);
      if (exact !== undefined) return exact;
      const slash = model.lastIndexOf("/");
      return slash === -1 ? undefined : compiled.get(model.slice(slash + 1));
    },
  };
}
