/**
 * Loads config.yaml: YAML → `os.environ/` secrets → unsupported-key warnings → schema → the normalized
 * {@link ProxyConfig} the proxy runs on. Every problem is a {@link ConfigError} naming the field path.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { compilePrice, parseDuration, parseUsd } from "@tollgate/budgets";
import { TollgateError } from "@tollgate/core";
import { parseDocument } from "yaml";
import {
  collectCoercions,
  configSchema,
  formatPath,
  isObject,
  mistakenKeys,
  type RawConfig,
  type RawDeployment,
  unknownKeys,
} from "./schema.js";

/** A config that cannot run. `problems` are `path: what was expected` lines. */
export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    readonly file?: string,
  ) {
    super(`${file ?? "config"} is invalid:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** How upstream calls are made for one deployment. */
export type Provider = "openai" | "azure" | "mock";

/** One deployment (`model_list[]` entry), normalized. */
export interface Deployment {
  /** Stable id (model_info.id, else a hash of the entry): the `deployment` limit scope's value. */
  id: string;
  /** Public model name (`model_name`), the model group. */
  modelName: string;
  /** The model sent upstream (`openai/gpt-4o` → `gpt-4o`). */
  upstreamModel: string;
  /** `litellm_params.model` as written (used for prices). */
  litellmModel: string;
  provider: Provider;
  /** Base URL without a trailing slash, e.g. `https://api.openai.com/v1` (mock: empty). */
  apiBase: string;
  apiKey?: string;
  rpm?: number;
  tpm?: number;
  maxParallel?: number;
  weight: number;
  /** Total timeout of a non-streaming call, ms. */
  timeoutMs: number;
  /** Timeout of a streaming call until its first byte and between chunks, ms. */
  streamTimeoutMs: number;
  mode: "chat" | "completion" | "embedding" | undefined;
  /** Price overrides from litellm_params / model_info (USD per token, as written). */
  inputCostPerToken?: string | number;
  outputCostPerToken?: string | number;
  maxOutputTokens?: number;
  accessGroups: string[];
  /** Mock provider settings. */
  mock?: MockSettings;
  /** The entry as written (for extensions). */
  raw: RawDeployment;
}

export interface MockSettings {
  response: string;
  latencyMs: number;
  chunkDelayMs: number;
  promptTokens?: number;
  errorStatus: number;
  errorRate: number;
  errorAfterChunks?: number;
  ignoreMaxTokens: boolean;
}

export type StoreConfig =
  | { type: "memory"; maxEntries?: number }
  | {
      type: "redis";
      url: string;
      prefix?: string;
      failurePolicy: "closed" | "open" | "fallback";
      timeoutMs?: number;
      fallbackInstances?: number;
    }
  | {
      type: "redis_cluster";
      nodes: Array<{ host: string; port: number }>;
      password?: string;
      prefix?: string;
      failurePolicy: "closed" | "open" | "fallback";
      timeoutMs?: number;
      fallbackInstances?: number;
    }
  | {
      type: "upstash";
      url: string;
      token: string;
      prefix?: string;
      failurePolicy: "closed" | "open" | "fallback";
      timeoutMs?: number;
      fallbackInstances?: number;
    };

/** The normalized configuration. Defaults are documented in apps/proxy/README.md. */
export interface ProxyConfig {
  deployments: Deployment[];
  /** Global proxy budget (`litellm_settings.max_budget`, USD, > 0) or null. */
  maxBudget: string | number | null;
  budgetDuration: string | null;
  /** Budget of each end user (`litellm_settings.max_end_user_budget`) or null. */
  maxEndUserBudget: string | number | null;
  requestTimeoutMs: number;
  numRetries: number;
  masterKey: string | null;
  /** Where the master key came from, for the start banner. */
  masterKeySource: "config" | "env" | "none";
  databaseUrl: string | null;
  tokenRateLimitType: "total" | "input" | "output";
  store: StoreConfig;
  budgetExceededStatus: number;
  budgetMode: "reserve" | "check";
  shrinkMaxTokens: boolean;
  maxRequestBytes: number;
  shutdownGraceMs: number;
  leaseTtlMs: number;
  /** Warnings to print at start (unsupported keys, coerced values, tolerated values). */
  warnings: string[];
  /** The whole file after `os.environ/` resolution, for extensions (e.g. the management API). */
  raw: RawConfig;
  /** Path of the file, when loaded from one. */
  file?: string;
}

/** Options of {@link loadConfig}. */
export interface LoadOptions {
  /** Environment used for `os.environ/NAME` and LiteLLM's variables. @default process.env */
  env?: NodeJS.ProcessEnv;
}

const DEFAULT_BASES: Record<string, string> = {
  openai: "https://api.openai.com/v1",
  openrouter: "https://openrouter.ai/api/v1",
  groq: "https://api.groq.com/openai/v1",
  deepseek: "https://api.deepseek.com/v1",
  mistral: "https://api.mistral.ai/v1",
  together_ai: "https://api.together.xyz/v1",
  fireworks_ai: "https://api.fireworks.ai/inference/v1",
  xai: "https://api.x.ai/v1",
  perplexity: "https://api.perplexity.ai",
};
/** OpenAI-compatible providers that need an api_base (self-hosted). */
const BASE_REQUIRED = new Set(["hosted_vllm", "vllm", "ollama", "ollama_chat", "lm_studio", "litellm_proxy", "azure"]);

/** Reads and validates a config file. @throws {ConfigError} */
export function loadConfigFile(file: string, options: LoadOptions = {}): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError([`cannot read the file: ${(err as Error).message}`], file);
  }
  const config = parseConfig(text, { ...options, file });
  config.file = file;
  return config;
}

/** Parses and validates config text (YAML or JSON). @throws {ConfigError} */
export function parseConfig(text: string, options: LoadOptions & { file?: string } = {}): ProxyConfig {
  const env = options.env ?? process.env;
  const file = options.file;
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => `YAML syntax: ${e.message.split("\n")[0]}`),
      file,
    );
  }
  const input: unknown = doc.toJS() ?? {};
  if (!isObject(input)) throw new ConfigError(["(top level): expected a mapping of sections (model_list, ...)"], file);

  // LiteLLM's `environment_variables` section sets variables before anything reads them.
  if (isObject(input.environment_variables)) {
    for (const [k, v] of Object.entries(input.environment_variables)) {
      if (env[k] === undefined && v !== null && v !== undefined) env[k] = String(v);
    }
  }

  const problems: string[] = [];
  const resolved = resolveEnv(input, "", env, problems);
  if (problems.length > 0) throw new ConfigError(problems, file);

  const warnings: string[] = [];
  // A near miss of a supported key (or an unknown key of the store object) is a mistake, not a LiteLLM setting.
  problems.push(...mistakenKeys(resolved));
  const unknown = unknownKeys(resolved);
  if (unknown.length > 0) {
    warnings.push(`ignoring ${unknown.length} LiteLLM setting(s) Tollgate does not support yet: ${unknown.join(", ")}`);
  }
  for (const c of collectCoercions(resolved)) warnings.push(c);

  const parsed = configSchema.safeParse(resolved);
  if (!parsed.success) {
    for (const issue of parsed.error.issues)
      problems.push(`${formatPath(issue.path)}: ${describeIssue(issue, resolved)}`);
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems, file);
  const raw = parsed.data;
  const out = normalize(raw, env, warnings, problems);
  if (problems.length > 0) throw new ConfigError(problems, file);
  return out;
}

function describeIssue(issue: { code: string; message: string; path: ReadonlyArray<PropertyKey> }, input: unknown) {
  const value = valueAt(input, issue.path);
  if (issue.code === "invalid_type" && value === undefined) return "is required";
  if (issue.code === "invalid_union" || issue.code === "invalid_type" || issue.code === "invalid_value") {
    return `${issue.message.replace(/^Invalid input: /, "")} (got ${JSON.stringify(value)})`;
  }
  return issue.message;
}

function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let v: unknown = input;
  for (const p of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/** Replaces every `os.environ/NAME` string by the variable; a missing variable is a problem naming the path. */
function resolveEnv(v: unknown, at: string, env: NodeJS.ProcessEnv, problems: string[]): unknown {
  if (typeof v === "string") {
    if (!v.startsWith("os.environ/")) return v;
    const name = v.slice("os.environ/".length);
    const value = env[name];
    if (value === undefined || value === "") {
      problems.push(`${at || "(top level)"}: the environment variable ${name} is not set (the config says ${v})`);
      return v;
    }
    return value;
  }
  if (Array.isArray(v)) return v.map((x, i) => resolveEnv(x, `${at}[${i}]`, env, problems));
  if (isObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = resolveEnv(x, at === "" ? k : `${at}.${k}`, env, problems);
    return out;
  }
  return v;
}

function normalize(raw: RawConfig, env: NodeJS.ProcessEnv, warnings: string[], problems: string[]): ProxyConfig {
  const ls = raw.litellm_settings ?? {};
  const gs = raw.general_settings ?? {};
  const requestTimeoutMs = Math.round((ls.request_timeout ?? 600) * 1000);

  const deployments: Deployment[] = [];
  const ids = new Map<string, number>();
  (raw.model_list ?? []).forEach((d, i) => {
    const at = `model_list[${i}]`;
    const dep = normalizeDeployment(d, at, requestTimeoutMs, warnings, problems);
    if (dep === undefined) return;
    const seen = ids.get(dep.id);
    if (seen !== undefined) {
      problems.push(`${at}.model_info.id: the id ${JSON.stringify(dep.id)} is already used by model_list[${seen}]`);
      return;
    }
    ids.set(dep.id, i);
    deployments.push(dep);
  });
  if (deployments.length === 0 && problems.length === 0) {
    warnings.push("model_list is empty: every LLM request will answer 400 (no model)");
  }

  let maxBudget: string | number | null = ls.max_budget ?? null;
  if (maxBudget !== null && checkUsd(maxBudget, "litellm_settings.max_budget", problems) === 0) {
    warnings.push("litellm_settings.max_budget: 0 means no global budget (LiteLLM enforces it only when > 0)");
    maxBudget = null;
  }
  const budgetDuration = emptyDuration(ls.budget_duration);
  if (budgetDuration !== null) checkDuration(budgetDuration, "litellm_settings.budget_duration", problems);
  if (maxBudget !== null && budgetDuration === null) {
    warnings.push("litellm_settings.max_budget has no budget_duration: the global budget never resets");
  }
  const maxEndUserBudget = ls.max_end_user_budget ?? null;
  if (maxEndUserBudget !== null) checkUsd(maxEndUserBudget, "litellm_settings.max_end_user_budget", problems);

  let tokenRateLimitType: ProxyConfig["tokenRateLimitType"] = "total";
  if (gs.token_rate_limit_type !== undefined) {
    const t = gs.token_rate_limit_type;
    if (t === "total" || t === "input" || t === "output") tokenRateLimitType = t;
    else {
      warnings.push(
        `general_settings.token_rate_limit_type: ${JSON.stringify(t)} is not input, output or total; using total (as LiteLLM does)`,
      );
    }
  }

  let masterKey: string | null = gs.master_key ?? null;
  let masterKeySource: ProxyConfig["masterKeySource"] = masterKey === null ? "none" : "config";
  if (masterKey === null && env.LITELLM_MASTER_KEY) {
    masterKey = env.LITELLM_MASTER_KEY;
    masterKeySource = "env";
  }
  if (masterKey !== null && !masterKey.startsWith("sk-")) {
    warnings.push("general_settings.master_key does not start with sk- (LiteLLM's convention); accepted");
  }

  return {
    deployments,
    maxBudget,
    budgetDuration,
    maxEndUserBudget,
    requestTimeoutMs,
    numRetries: ls.num_retries ?? 1,
    masterKey,
    masterKeySource,
    databaseUrl: gs.database_url ?? env.DATABASE_URL ?? null,
    tokenRateLimitType,
    store: normalizeStore(raw, env, problems),
    budgetExceededStatus: gs.budget_exceeded_status ?? 400,
    budgetMode: gs.budget_mode ?? "reserve",
    shrinkMaxTokens: gs.shrink_max_tokens ?? true,
    maxRequestBytes: Math.round((gs.max_request_size_mb ?? 10) * 1024 * 1024),
    shutdownGraceMs: Math.round((gs.shutdown_grace_period ?? 30) * 1000),
    leaseTtlMs: Math.round((gs.lease_ttl ?? 30) * 1000),
    warnings,
    raw,
  };
}

function emptyDuration(d: string | null | undefined): string | null {
  if (d === undefined || d === null || d === "" || d === "none" || d === "null") return null;
  return d;
}

function checkDuration(d: string, at: string, problems: string[]) {
  try {
    parseDuration(d);
  } catch (err) {
    problems.push(`${at}: ${(err as TollgateError).message}`);
  }
}

function checkUsd(v: string | number, at: string, problems: string[]): number | undefined {
  try {
    return parseUsd(v, at, { subNano: "floor" });
  } catch (err) {
    problems.push(err instanceof TollgateError ? err.message : `${at}: expected a USD amount`);
    return undefined;
  }
}

function normalizeDeployment(
  d: RawDeployment,
  at: string,
  requestTimeoutMs: number,
  warnings: string[],
  problems: string[],
): Deployment | undefined {
  const p = d.litellm_params;
  const info = d.model_info ?? {};
  const model = p.model;
  const slash = model.indexOf("/");
  const prefix = slash === -1 ? "openai" : model.slice(0, slash);
  const upstreamModel = slash === -1 ? model : model.slice(slash + 1);
  if (upstreamModel === "") {
    problems.push(`${at}.litellm_params.model: expected <provider>/<model>, got ${JSON.stringify(model)}`);
    return undefined;
  }
  let provider: Provider;
  let apiBase = p.api_base;
  if (prefix === "mock") provider = "mock";
  else if (prefix === "azure") provider = "azure";
  else provider = "openai";
  if (provider !== "mock" && apiBase === undefined) {
    apiBase = DEFAULT_BASES[prefix];
    if (apiBase === undefined) {
      problems.push(
        BASE_REQUIRED.has(prefix)
          ? `${at}.litellm_params.api_base: required for ${prefix}/ models (the OpenAI-compatible base URL, e.g. http://localhost:8000/v1)`
          : `${at}.litellm_params.model: the provider ${JSON.stringify(prefix)} is not an OpenAI-compatible API Tollgate knows; ` +
              "Tollgate forwards requests unchanged to OpenAI-compatible APIs and does not translate between provider APIs. " +
              "Set api_base to an OpenAI-compatible endpoint of this provider, or use openai/<model> with api_base",
      );
      return undefined;
    }
  } else if (
    provider !== "mock" &&
    DEFAULT_BASES[prefix] === undefined &&
    !BASE_REQUIRED.has(prefix) &&
    prefix !== "openai"
  ) {
    warnings.push(`${at}: ${prefix}/ is forwarded as an OpenAI-compatible API at ${apiBase}`);
  }

  for (const field of ["input_cost_per_token", "output_cost_per_token"] as const) {
    const v = p[field] ?? info[field];
    if (v !== undefined) {
      try {
        compilePrice("check", { input_cost_per_token: v });
      } catch (err) {
        problems.push(`${at}.litellm_params.${field}: ${(err as Error).message}`);
      }
    }
  }

  const id =
    info.id ??
    createHash("sha256")
      .update(JSON.stringify([d.model_name, p]))
      .digest("hex")
      .slice(0, 16);
  if (id.includes("{") || id.includes("}")) {
    problems.push(`${at}.model_info.id: must not contain { or }`);
    return undefined;
  }
  const timeoutMs = Math.round((p.timeout ?? requestTimeoutMs / 1000) * 1000);
  const dep: Deployment = {
    id,
    modelName: d.model_name,
    upstreamModel,
    litellmModel: model,
    provider,
    apiBase: (apiBase ?? "").replace(/\/+$/, ""),
    apiKey: p.api_key,
    rpm: p.rpm,
    tpm: p.tpm,
    maxParallel: p.max_parallel_requests,
    weight: p.weight ?? p.rpm ?? p.tpm ?? 1,
    timeoutMs,
    streamTimeoutMs: Math.round((p.stream_timeout ?? timeoutMs / 1000) * 1000),
    mode: info.mode,
    inputCostPerToken: p.input_cost_per_token ?? info.input_cost_per_token,
    outputCostPerToken: p.output_cost_per_token ?? info.output_cost_per_token,
    maxOutputTokens: info.max_output_tokens,
    accessGroups: info.access_groups ?? [],
    raw: d,
  };
  if (provider === "mock") {
    dep.mock = {
      response: p.mock_response ?? "This is a mock response from Tollgate's built-in mock provider.",
      latencyMs: p.mock_latency_ms ?? 0,
      chunkDelayMs: p.mock_chunk_delay_ms ?? 0,
      promptTokens: p.mock_prompt_tokens,
      errorStatus: p.mock_error_status ?? 500,
      errorRate: p.mock_error_rate ?? 0,
      errorAfterChunks: p.mock_error_after_chunks,
      ignoreMaxTokens: p.mock_ignore_max_tokens ?? false,
    };
  }
  return dep;
}

function normalizeStore(raw: RawConfig, env: NodeJS.ProcessEnv, problems: string[]): StoreConfig {
  const gs = raw.general_settings ?? {};
  const rs = raw.router_settings ?? {};
  const s = gs.store;
  const spec = typeof s === "string" ? { type: s } : s;
  // Without a store setting, LiteLLM's Redis variables (or router_settings) select Redis, as in LiteLLM.
  const envRedis = env.REDIS_URL || env.REDIS_HOST || rs.redis_host;
  const type = spec?.type ?? (envRedis ? "redis" : "memory");
  const opts = (spec ?? {}) as Record<string, unknown> & { type?: string };
  const common = {
    prefix: opts.prefix as string | undefined,
    failurePolicy: (opts.failure_policy as "closed" | "open" | "fallback" | undefined) ?? "closed",
    timeoutMs: opts.timeout_ms as number | undefined,
    fallbackInstances: opts.fallback_instances as number | undefined,
  };
  if (type === "memory") return { type: "memory", maxEntries: opts.max_entries as number | undefined };
  if (type === "redis") {
    let url = opts.url as string | undefined;
    if (url === undefined) {
      const host = (opts.host as string | undefined) ?? rs.redis_host ?? env.REDIS_HOST;
      const port = (opts.port as number | undefined) ?? rs.redis_port ?? env.REDIS_PORT ?? 6379;
      const password = (opts.password as string | undefined) ?? rs.redis_password ?? env.REDIS_PASSWORD;
      if (host !== undefined) {
        url = `redis://${password ? `:${encodeURIComponent(password)}@` : ""}${host}:${port}`;
      } else url = env.REDIS_URL;
    }
    if (url === undefined) {
      problems.push(
        "general_settings.store: redis needs url (or host/port), or REDIS_URL / REDIS_HOST in the environment",
      );
      return { type: "memory" };
    }
    return { type: "redis", url, ...common };
  }
  if (type === "redis_cluster" || type === "redis cluster") {
    const nodes: Array<{ host: string; port: number }> = [];
    for (const n of (opts.nodes as Array<string | { host: string; port: number }> | undefined) ?? []) {
      if (typeof n === "string") {
        const m = /^(?:redis:\/\/)?([^:/]+):(\d+)$/.exec(n);
        if (m === null) problems.push(`general_settings.store.nodes: expected host:port, got ${JSON.stringify(n)}`);
        else nodes.push({ host: m[1]!, port: Number(m[2]) });
      } else nodes.push({ host: n.host, port: n.port });
    }
    if (nodes.length === 0) problems.push("general_settings.store.nodes: redis_cluster needs at least one host:port");
    return { type: "redis_cluster", nodes, password: opts.password as string | undefined, ...common };
  }
  const url = (opts.url as string | undefined) ?? env.UPSTASH_REDIS_REST_URL;
  const token = (opts.token as string | undefined) ?? env.UPSTASH_REDIS_REST_TOKEN;
  if (url === undefined || token === undefined) {
    problems.push(
      "general_settings.store: upstash needs url and token (or UPSTASH_REDIS_REST_URL / UPSTASH_REDIS_REST_TOKEN)",
    );
    return { type: "memory" };
  }
  return { type: "upstash", url, token, ...common };
}
