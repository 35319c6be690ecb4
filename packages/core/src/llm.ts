import { isNonNegativeInteger, TollgateError } from "./errors.js";

/**
 * Which OpenAI-style endpoint a request body is for. It decides which field holds the content and which
 * fields cap the output:
 * - `"chat"`: `messages`; cap = max(`max_tokens`, `max_completion_tokens`);
 * - `"completion"`: `prompt`; same cap;
 * - `"embedding"`: `input`; no output;
 * - `"responses"` (Responses API): `input`; cap = max(16, `max_output_tokens`);
 * - `"unknown"`: the first of `messages`, `prompt`, `input`; cap = max of all three cap fields.
 */
export type LlmCallType = "chat" | "completion" | "embedding" | "responses" | "unknown";

/** Options of {@link estimateRequestTokens} and {@link applyImplicitOutputCap}. */
export interface TokenEstimateOptions {
  /** The endpoint the body is for. @default "unknown" */
  callType?: LlmCallType;
  /**
   * The smallest tokens-per-window limit among the request's descriptors; it lowers the output floor for
   * small limits (LiteLLM's `min_configured_tpm_limit`). Non-negative integer. @default no TPM limit (floor 1024)
   */
  minTpmLimit?: number;
  /**
   * Operator-declared output estimate for this tenant/model, used when the request has no explicit output
   * cap (LiteLLM's per-tenant estimated output tokens). Non-negative integer. @default none
   */
  configuredOutputTokens?: number;
}

/** A token estimate, split so callers can reserve input and output limits separately. */
export interface TokenEstimate {
  /** Estimated prompt tokens: max(1, floor(chars / 4)), or 0 without content. */
  input: number;
  /** Reserved output tokens (already multiplied by `n` / `best_of`). */
  output: number;
  /** Tokens to reserve: max(input + output, 1). */
  total: number;
}

/** How usage is counted against token limits (LiteLLM's `token_rate_limit_type`). */
export type TokenCountMode = "total" | "input" | "output";

/** LiteLLM's characters-per-token ratio for estimates. */
const CHARS_PER_TOKEN = 4;
/** Output floor without any TPM limit (LiteLLM: 4096 // 4). */
const MAX_OUTPUT_FLOOR = 1024;
/** The Responses API rejects `max_output_tokens` below 16. */
const RESPONSES_MIN_OUTPUT = 16;
/**
 * Text is read at most this deep: list (0) -> message or item (1) -> content parts (2) -> part (3). Deeper values
 * are not text in any OpenAI shape, and the bound keeps hostile deeply nested JSON from exhausting the stack.
 */
const MAX_TEXT_DEPTH = 4;

type Json = Record<string, unknown>;

const CALL_TYPES: ReadonlySet<string> = new Set(["chat", "completion", "embedding", "responses", "unknown"]);

function bad(message: string): TollgateError {
  return new TollgateError("INVALID_ARGUMENT", message);
}

function asBody(body: unknown): Json {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw bad("the request body must be a JSON object");
  }
  return body as Json;
}

/** Reads an optional non-negative integer field; null counts as absent. */
function optCount(obj: Json, field: string, where: string): number | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (!isNonNegativeInteger(v)) {
    throw bad(`${where}${field} must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function checkOptions(options: TokenEstimateOptions | undefined): LlmCallType {
  if (options === undefined) return "unknown";
  const callType = options.callType ?? "unknown";
  if (!CALL_TYPES.has(callType)) throw bad(`unknown callType ${JSON.stringify(callType)}`);
  for (const field of ["minTpmLimit", "configuredOutputTokens"] as const) {
    const v = options[field];
    if (v !== undefined && !isNonNegativeInteger(v)) {
      throw bad(`${field} must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
  }
  return callType;
}

/**
 * Characters of text in a content value: a string, an array of strings or parts (`{ text }`), or a message /
 * input item (`{ content }`). Other values (images, token-id arrays, numbers) hold no countable text.
 */
function textChars(v: unknown, depth: number): number {
  if (typeof v === "string") return v.length;
  if (depth >= MAX_TEXT_DEPTH || typeof v !== "object" || v === null) return 0;
  if (Array.isArray(v)) {
    let n = 0;
    for (const item of v) n += textChars(item, depth + 1);
    return n;
  }
  const o = v as Json;
  if (typeof o.text === "string") return o.text.length;
  return o.content === undefined ? 0 : textChars(o.content, depth + 1);
}

function fieldChars(body: Json, field: string): number {
  const v = body[field];
  if (v === undefined || v === null) return 0;
  if (field === "messages" && !Array.isArray(v)) throw bad("messages must be an array");
  if (typeof v !== "string" && !Array.isArray(v)) throw bad(`${field} must be a string or an array`);
  return textChars(v, 0);
}

function contentChars(body: Json, callType: LlmCallType): number {
  switch (callType) {
    case "chat":
      return fieldChars(body, "messages");
    case "completion":
      return fieldChars(body, "prompt");
    case "embedding":
    case "responses":
      return fieldChars(body, "input");
    default:
      if (body.messages !== undefined && body.messages !== null) return fieldChars(body, "messages");
      if (body.prompt !== undefined && body.prompt !== null) return fieldChars(body, "prompt");
      return fieldChars(body, "input");
  }
}

function maxDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}

/** The request's explicit output cap, or undefined when it sets none. Validates every cap field it reads. */
function explicitCap(body: Json, callType: LlmCallType): number | undefined {
  if (callType === "responses") {
    const m = optCount(body, "max_output_tokens", "");
    return m === undefined ? undefined : Math.max(RESPONSES_MIN_OUTPUT, m);
  }
  let cap = maxDefined(optCount(body, "max_tokens", ""), optCount(body, "max_completion_tokens", ""));
  if (callType === "unknown") cap = maxDefined(cap, optCount(body, "max_output_tokens", ""));
  return cap;
}

function outputMultiplier(body: Json): number {
  const n = optCount(body, "n", "");
  const bestOf = optCount(body, "best_of", "");
  if (n === 0 || bestOf === 0) throw bad("n and best_of must be at least 1");
  return Math.max(n ?? 1, bestOf ?? 1);
}

/**
 * LiteLLM's output floor for requests without `max_tokens`: min(1024, max(1, floor(minTpmLimit / 4))), or 1024
 * without a TPM limit, so one request never reserves more than a quarter of the smallest TPM limit by default.
 * The Responses API floor is at least 16.
 *
 * @param minTpmLimit smallest tokens limit among the request's descriptors (non-negative integer), if any.
 * @throws {TollgateError} `INVALID_ARGUMENT` for a negative or non-integer limit.
 */
export function outputTokenFloor(minTpmLimit?: number, callType: LlmCallType = "unknown"): number {
  checkOptions({ minTpmLimit, callType });
  return floorFor(minTpmLimit, callType);
}

function floorFor(minTpmLimit: number | undefined, callType: LlmCallType): number {
  const floor =
    minTpmLimit === undefined
      ? MAX_OUTPUT_FLOOR
      : Math.min(MAX_OUTPUT_FLOOR, Math.max(1, Math.floor(minTpmLimit / CHARS_PER_TOKEN)));
  return callType === "responses" ? Math.max(RESPONSES_MIN_OUTPUT, floor) : floor;
}

/**
 * Estimates the tokens an OpenAI-style request will use, with LiteLLM's formula:
 * - input = max(1, floor(chars / 4)) when the content has text, else 0 (chars of `messages` string content and
 *   text parts, or `prompt`, or `input`, as {@link LlmCallType} says);
 * - output = 0 for embeddings; else the explicit cap (see {@link LlmCallType}); else `configuredOutputTokens`;
 *   else max(input, {@link outputTokenFloor}) when there is content; else 0;
 * - output is multiplied by max(`n`, `best_of`); total = max(input + output, 1) (a contentless request reserves 1).
 *
 * Call {@link applyImplicitOutputCap} first (or use {@link capAndEstimate}) so that small TPM limits cap the
 * request's output and the estimate follows the cap, as LiteLLM does.
 *
 * @param body the parsed JSON request body (any shape; checked, never trusted).
 * @throws {TollgateError} `INVALID_ARGUMENT` when the body is not an object, a cap, `n` or `best_of` is negative,
 *   zero (`n`, `best_of`) or not an integer, `messages` is not an array, or an option is invalid.
 */
export function estimateRequestTokens(body: unknown, options?: TokenEstimateOptions): TokenEstimate {
  const callType = checkOptions(options);
  const req = asBody(body);
  const chars = contentChars(req, callType);
  const input = chars > 0 ? Math.max(1, Math.floor(chars / CHARS_PER_TOKEN)) : 0;
  let output = 0;
  if (callType !== "embedding") {
    const cap = explicitCap(req, callType);
    if (cap !== undefined) output = cap;
    else if (options?.configuredOutputTokens !== undefined) output = options.configuredOutputTokens;
    else if (chars > 0) output = Math.max(input, floorFor(options?.minTpmLimit, callType));
    output *= outputMultiplier(req);
  }
  return { input, output, total: Math.max(input + output, 1) };
}

/**
 * LiteLLM's small-TPM rule: when the output floor for `minTpmLimit` is below 1024, the request sets no explicit
 * output cap and is not an embedding, returns a shallow copy of the body with the cap field set to
 * max(floor, `configuredOutputTokens` or 0), so that the provider cannot produce more than was reserved.
 * The field is `max_output_tokens` for the Responses API, else `max_tokens`.
 *
 * Returns the same object when nothing applies. A request that already sets a cap field keeps it untouched:
 * this never raises a caller's cap (and never writes a lower one over it either, since a present cap is explicit).
 *
 * @throws {TollgateError} `INVALID_ARGUMENT` as {@link estimateRequestTokens}.
 */
export function applyImplicitOutputCap<T>(body: T, options?: TokenEstimateOptions): T {
  const callType = checkOptions(options);
  const req = asBody(body);
  if (callType === "embedding") return body;
  // the responses minimum (16) is below MAX_OUTPUT_FLOOR, so it never decides the first test
  const floor = floorFor(options?.minTpmLimit, callType);
  if (floor >= MAX_OUTPUT_FLOOR || explicitCap(req, callType) !== undefined) return body;
  const cap = Math.max(floor, options?.configuredOutputTokens ?? 0);
  const field = callType === "responses" ? "max_output_tokens" : "max_tokens";
  return { ...req, [field]: cap } as T;
}

/**
 * {@link applyImplicitOutputCap} then {@link estimateRequestTokens} on the capped body: what a proxy does before
 * admission. `body` is the object to forward upstream (the input itself when no cap was added).
 */
export function capAndEstimate<T>(body: T, options?: TokenEstimateOptions): { body: T; estimate: TokenEstimate } {
  const capped = applyImplicitOutputCap(body, options);
  return { body: capped, estimate: estimateRequestTokens(capped, options) };
}

/**
 * Tokens to count for a response's `usage`, as LiteLLM does after a call:
 * - `"input"`: prompt tokens minus cached prompt tokens;
 * - `"output"`: completion tokens;
 * - `"total"`: total tokens (or prompt + completion when absent) minus cached prompt tokens.
 *
 * Reads Chat Completions fields (`prompt_tokens`, `completion_tokens`, `total_tokens`,
 * `prompt_tokens_details.cached_tokens`) and Responses API fields (`input_tokens`, `output_tokens`,
 * `input_tokens_details.cached_tokens`). A usage that reports only `total_tokens` (pass-through endpoints) counts
 * `total_tokens` whatever the mode. Null fields count as absent. A response without usage (`null` or `undefined`:
 * a stream without `stream_options.include_usage`, some providers) counts 0 tokens, as in LiteLLM.
 *
 * @throws {TollgateError} `INVALID_ARGUMENT` when `usage` is not an object (nor null/undefined), a field is negative or not an integer,
 *   cached tokens exceed prompt tokens, or `mode` is unknown.
 */
export function tokensFromUsage(usage: unknown, mode: TokenCountMode = "total"): number {
  if (mode !== "total" && mode !== "input" && mode !== "output") {
    throw bad(`mode must be "total", "input" or "output", got ${JSON.stringify(mode)}`);
  }
  if (usage === null || usage === undefined) return 0; // no usage reported: 0 tokens, as LiteLLM counts it
  const u = asUsage(usage);
  const prompt = optCount(u, "prompt_tokens", "usage.") ?? optCount(u, "input_tokens", "usage.");
  const completion = optCount(u, "completion_tokens", "usage.") ?? optCount(u, "output_tokens", "usage.");
  const total = optCount(u, "total_tokens", "usage.");
  if (prompt === undefined && completion === undefined) return total ?? 0;
  const cached = cachedTokens(u);
  if (cached > (prompt ?? 0)) {
    throw bad(`usage reports ${cached} cached prompt tokens but only ${prompt ?? 0} prompt tokens`);
  }
  if (mode === "input") return (prompt ?? 0) - cached;
  if (mode === "output") return completion ?? 0;
  const all = total ?? (prompt ?? 0) + (completion ?? 0);
  if (all < cached) throw bad(`usage reports ${cached} cached prompt tokens but only ${all} total tokens`);
  return all - cached;
}

function asUsage(usage: unknown): Json {
  if (typeof usage !== "object" || usage === null || Array.isArray(usage)) {
    throw bad("usage must be an object");
  }
  return usage as Json;
}

function cachedTokens(u: Json): number {
  for (const field of ["prompt_tokens_details", "input_tokens_details"]) {
    const details = u[field];
    if (details === undefined || details === null) continue;
    if (typeof details !== "object" || Array.isArray(details)) throw bad(`usage.${field} must be an object`);
    const cached = optCount(details as Json, "cached_tokens", `usage.${field}.`);
    if (cached !== undefined) return cached;
  }
  return 0;
}
