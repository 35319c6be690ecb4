/**
 * The config.yaml schema: LiteLLM's format, the subset Tollgate supports (budgets, limits, routing, the store).
 *
 * Validation happens in two passes over the parsed YAML:
 * 1. {@link unknownKeys} lists keys Tollgate does not know (LiteLLM has hundreds): they are reported in one warning
 *    and ignored, never a crash;
 * 2. the zod schema below checks every key Tollgate uses. Values LiteLLM coerces (a number written as a string,
 *    `"true"`) are accepted and reported as warnings; anything else stops the proxy with the field path and what was
 *    expected.
 */
import { z } from "zod";

/** A number, or a string holding one (LiteLLM's pydantic models coerce those). */
function numeric(what: string, check: (n: number) => boolean) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = typeof v === "number" ? v : v.trim() === "" ? Number.NaN : Number(v);
    if (!Number.isFinite(n) || !check(n)) {
      ctx.addIssue({ code: "custom", message: `expected ${what}, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return n;
  });
}

const nonNegInt = () => numeric("a non-negative integer", (n) => Number.isSafeInteger(n) && n >= 0);
const positiveSeconds = () => numeric("a positive number of seconds", (n) => n > 0);
const nonNegNumber = () => numeric("a non-negative number", (n) => n >= 0);
/** USD amounts stay strings when written as strings so that parseUsd reads their exact digits. */
const usd = () =>
  z.union([z.number(), z.string()]).refine((v) => {
    const n = typeof v === "number" ? v : Number(v);
    return Number.isFinite(n) && n >= 0;
  }, "expected a non-negative USD amount");
const bool = () =>
  z
    .union([z.boolean(), z.enum(["true", "false", "True", "False"])])
    .transform((v) => v === true || v === "true" || v === "True");

const DURATION = /^\d+(s|m|h|d|w|mo)$/;
const duration = () =>
  z
    .union([z.string(), z.null()])
    .refine(
      (v) => v === null || v === "" || v === "none" || v === "null" || DURATION.test(v),
      'expected a duration such as "30s", "30m", "30h", "30d", "2w" or "1mo"',
    );

export const litellmParamsSchema = z.looseObject({
  model: z.string().min(1, "expected the provider model, e.g. openai/gpt-4o or mock/gpt-4o"),
  api_base: z.string().url("expected a URL such as https://api.openai.com/v1").optional(),
  api_key: z.string().optional(),
  rpm: nonNegInt().optional(),
  tpm: nonNegInt().optional(),
  max_parallel_requests: nonNegInt().optional(),
  weight: nonNegNumber().optional(),
  timeout: positiveSeconds().optional(),
  stream_timeout: positiveSeconds().optional(),
  input_cost_per_token: usd().optional(),
  output_cost_per_token: usd().optional(),
  // the mock provider
  mock_response: z.string().optional(),
  mock_latency_ms: nonNegNumber().optional(),
  mock_chunk_delay_ms: nonNegNumber().optional(),
  mock_prompt_tokens: nonNegInt().optional(),
  mock_error_status: z.number().int().min(400).max(599).optional(),
  mock_error_rate: numeric("a number between 0 and 1", (n) => n >= 0 && n <= 1).optional(),
  mock_error_after_chunks: nonNegInt().optional(),
  mock_ignore_max_tokens: bool().optional(),
});

export const modelInfoSchema = z.looseObject({
  id: z.string().min(1).optional(),
  mode: z.enum(["chat", "completion", "embedding"]).optional(),
  max_output_tokens: nonNegInt().optional(),
  input_cost_per_token: usd().optional(),
  output_cost_per_token: usd().optional(),
  access_groups: z.array(z.string()).optional(),
});

export const deploymentSchema = z.looseObject({
  model_name: z.string().min(1, "expected the public model name"),
  litellm_params: litellmParamsSchema,
  model_info: modelInfoSchema.optional(),
});

const storeTypes = ["memory", "redis", "redis_cluster", "redis cluster", "upstash"] as const;

const storeTypeError = { error: `expected one of ${storeTypes.filter((t) => t !== "redis cluster").join(", ")}` };

export const storeSchema = z.union(
  [
    z.enum(storeTypes, storeTypeError),
    z.looseObject({
      type: z.enum(storeTypes, storeTypeError),
      url: z.string().optional(),
      host: z.string().optional(),
      port: nonNegInt().optional(),
      password: z.string().optional(),
      nodes: z.array(z.union([z.string(), z.looseObject({ host: z.string(), port: nonNegInt() })])).optional(),
      token: z.string().optional(),
      prefix: z.string().optional(),
      failure_policy: z.enum(["closed", "open", "fallback"]).optional(),
      timeout_ms: numeric("a positive number of ms", (n) => n > 0).optional(),
      fallback_instances: numeric("a positive integer", (n) => Number.isSafeInteger(n) && n > 0).optional(),
      max_entries: numeric("a positive integer", (n) => Number.isSafeInteger(n) && n > 0).optional(),
    }),
  ],
  {
    error: `expected a store type (${storeTypes.filter((t) => t !== "redis cluster").join(", ")}) or an object with type`,
  },
);

export const litellmSettingsSchema = z.looseObject({
  max_budget: usd().nullable().optional(),
  budget_duration: duration().optional(),
  max_end_user_budget: usd().nullable().optional(),
  request_timeout: positiveSeconds().optional(),
  num_retries: nonNegInt().optional(),
  // used by the management API (issue 13); accepted here so they are not reported as unsupported
  max_internal_user_budget: usd().nullable().optional(),
  internal_user_budget_duration: duration().optional(),
});

export const generalSettingsSchema = z.looseObject({
  master_key: z.string().min(1).nullable().optional(),
  database_url: z.string().nullable().optional(),
  token_rate_limit_type: z.string().optional(),
  store: storeSchema.optional(),
  budget_exceeded_status: z
    .union([z.number(), z.string()])
    .transform((v) => Number(v))
    .refine((n) => Number.isInteger(n) && n >= 400 && n <= 499, "expected a 4xx HTTP status such as 400, 422 or 429")
    .optional(),
  budget_mode: z.enum(["reserve", "check"]).optional(),
  shrink_max_tokens: bool().optional(),
  max_request_size_mb: numeric("a positive number of MB", (n) => n > 0).optional(),
  shutdown_grace_period: numeric("a non-negative number of seconds", (n) => n >= 0).optional(),
  lease_ttl: positiveSeconds().optional(),
  proxy_batch_write_at: nonNegNumber().optional(),
  // the management API's database (issue 13)
  serve_cached_keys_when_db_down: bool().optional(),
  key_cache_refresh_seconds: numeric("a positive number of seconds", (n) => n > 0).optional(),
});

export const routerSettingsSchema = z.looseObject({
  redis_host: z.string().optional(),
  redis_port: nonNegInt().optional(),
  redis_password: z.string().optional(),
  routing_strategy: z.string().optional(),
});

export const configSchema = z.looseObject({
  model_list: z.array(deploymentSchema).nullable().optional(),
  litellm_settings: litellmSettingsSchema.nullable().optional(),
  general_settings: generalSettingsSchema.nullable().optional(),
  router_settings: routerSettingsSchema.nullable().optional(),
  environment_variables: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
    .nullable()
    .optional(),
});

export type RawConfig = z.output<typeof configSchema>;
export type RawDeployment = z.output<typeof deploymentSchema>;

/** Keys Tollgate reads, per section (the rest are reported as unsupported). */
export const KNOWN_KEYS = {
  top: ["model_list", "litellm_settings", "general_settings", "router_settings", "environment_variables"],
  deployment: ["model_name", "litellm_params", "model_info"],
  litellm_params: Object.keys(litellmParamsSchema.shape),
  litellm_settings: Object.keys(litellmSettingsSchema.shape),
  general_settings: Object.keys(generalSettingsSchema.shape),
  router_settings: ["redis_host", "redis_port", "redis_password"],
  store: Object.keys((storeSchema.options[1] as z.ZodObject).shape),
} as const;

/**
 * A known key that `key` is probably a misspelling of (case, or at most two edits away for keys of 5+ characters,
 * one for shorter ones), or undefined. LiteLLM's own keys that Tollgate does not support are never this close to one
 * Tollgate reads, so such a near miss is a typo, not a setting for LiteLLM.
 */
export function misspellingOf(key: string, known: readonly string[]): string | undefined {
  const k = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = editDistance(k, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const allowed = Math.min(key.length, best?.length ?? 0) >= 5 ? 2 : 1;
  return bestDistance <= allowed ? best : undefined;
}

/** Levenshtein distance, with a transposition counted as one edit. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) rows.push([i]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}

/**
 * Unknown keys that are mistakes rather than LiteLLM settings Tollgate does not support: a near miss of a key the
 * section supports, or any unknown key of Tollgate's own `general_settings.store` object. Each as `path: message`.
 */
export function mistakenKeys(input: unknown): string[] {
  const out: string[] = [];
  for (const { path, key, section } of unknownKeyEntries(input)) {
    const known = KNOWN_KEYS[section];
    const near = misspellingOf(key, known);
    if (near !== undefined) out.push(`${path}: unknown key (did you mean ${near}?)`);
    else if (section === "store") out.push(`${path}: unknown key (expected one of ${known.join(", ")})`);
  }
  return out;
}

type Section = keyof typeof KNOWN_KEYS;

function unknownKeyEntries(input: unknown): Array<{ path: string; key: string; section: Section }> {
  const out: Array<{ path: string; key: string; section: Section }> = [];
  if (!isObject(input)) return out;
  const check = (obj: unknown, section: Section, at: string) => {
    if (!isObject(obj)) return;
    const known: readonly string[] = KNOWN_KEYS[section];
    for (const k of Object.keys(obj)) {
      if (!known.includes(k)) out.push({ path: at === "" ? k : `${at}.${k}`, key: k, section });
    }
  };
  check(input, "top", "");
  check(input.litellm_settings, "litellm_settings", "litellm_settings");
  check(input.general_settings, "general_settings", "general_settings");
  check(input.router_settings, "router_settings", "router_settings");
  if (isObject(input.general_settings) && isObject(input.general_settings.store)) {
    check(input.general_settings.store, "store", "general_settings.store");
  }
  if (Array.isArray(input.model_list)) {
    input.model_list.forEach((d, i) => {
      check(d, "deployment", `model_list[${i}]`);
      if (isObject(d)) check(d.litellm_params, "litellm_params", `model_list[${i}].litellm_params`);
    });
  }
  return out;
}

/**
 * Keys of LiteLLM's config that Tollgate does not support yet, each as its dotted path (the {@link mistakenKeys}
 * excluded: those stop the proxy).
 */
export function unknownKeys(input: unknown): string[] {
  const mistaken = new Set(mistakenKeys(input).map((m) => m.slice(0, m.indexOf(": "))));
  return unknownKeyEntries(input)
    .map((e) => e.path)
    .filter((p) => !mistaken.has(p));
}

/** Paths of numbers and booleans written as strings (accepted, as LiteLLM does, with a warning). */
export function collectCoercions(input: unknown): string[] {
  const out: string[] = [];
  const numericKeys = new Set([
    "rpm",
    "tpm",
    "max_parallel_requests",
    "weight",
    "timeout",
    "stream_timeout",
    "request_timeout",
    "num_retries",
    "max_output_tokens",
    "redis_port",
    "port",
    "max_request_size_mb",
    "shutdown_grace_period",
    "budget_exceeded_status",
    "lease_ttl",
  ]);
  const walk = (v: unknown, at: string) => {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) walk(v[i], `${at}[${i}]`);
    } else if (isObject(v)) {
      for (const [k, x] of Object.entries(v)) {
        const p = at === "" ? k : `${at}.${k}`;
        if (numericKeys.has(k) && typeof x === "string" && x.trim() !== "" && Number.isFinite(Number(x))) {
          out.push(`${p}: the string ${JSON.stringify(x)} is read as the number ${Number(x)}`);
        } else walk(x, p);
      }
    }
  };
  walk(input, "");
  return out;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** zod issue path → `model_list[0].litellm_params.rpm`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let s = "";
  for (const p of path) {
    if (typeof p === "number") s += `[${p}]`;
    else s += s === "" ? String(p) : `.${String(p)}`;
  }
  return s === "" ? "(top level)" : s;
}
