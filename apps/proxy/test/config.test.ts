import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../src/config/load.js";

function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, { env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

const MODEL = `model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: sk-upstream
`;

describe("config.yaml", () => {
  it("normalizes a LiteLLM config with defaults", () => {
    const c = parseConfig(
      `${MODEL}
litellm_settings:
  max_budget: 10
  budget_duration: 30d
general_settings:
  master_key: sk-1234
`,
      { env: {} },
    );
    expect(c.deployments).toHaveLength(1);
    const d = c.deployments[0]!;
    expect(d).toMatchObject({
      modelName: "gpt-4o",
      upstreamModel: "gpt-4o",
      provider: "openai",
      apiBase: "https://api.openai.com/v1",
      apiKey: "sk-upstream",
      timeoutMs: 600_000,
      weight: 1,
    });
    expect(d.id).toMatch(/^[0-9a-f]{16}$/);
    expect(c).toMatchObject({
      maxBudget: 10,
      budgetDuration: "30d",
      masterKey: "sk-1234",
      masterKeySource: "config",
      tokenRateLimitType: "total",
      store: { type: "memory" },
      budgetExceededStatus: 400,
      budgetMode: "reserve",
      numRetries: 1,
      maxRequestBytes: 10 * 1024 * 1024,
    });
    expect(c.warnings).toEqual([]);
  });

  it("names the field path and what was expected", () => {
    const p = problems(`model_list:
  - model_name: a
    litellm_params:
      model: openai/x
      rpm: -3
      tpm: lots
  - litellm_params: { model: openai/y }
litellm_settings:
  budget_duration: 30
general_settings:
  budget_exceeded_status: 200
`);
    expect(p).toContain("model_list[0].litellm_params.rpm: expected a non-negative integer, got -3");
    expect(p).toContain('model_list[0].litellm_params.tpm: expected a non-negative integer, got "lots"');
    expect(p.some((x) => x.startsWith("model_list[1].model_name: is required"))).toBe(true);
    expect(p.some((x) => x.startsWith("litellm_settings.budget_duration:"))).toBe(true);
    expect(p.some((x) => x.startsWith("general_settings.budget_exceeded_status: expected a 4xx"))).toBe(true);
  });

  it("lists unsupported LiteLLM keys in one warning and tolerates coerced values", () => {
    const c = parseConfig(
      `model_list:
  - model_name: a
    litellm_params:
      model: openai/x
      rpm: "100"
      vertex_project: p
litellm_settings:
  drop_params: true
  success_callback: ["langfuse"]
router_settings:
  routing_strategy: usage-based-routing
`,
      { env: {} },
    );
    expect(c.deployments[0]!.rpm).toBe(100);
    const unsupported = c.warnings.filter((w) => w.includes("does not support yet"));
    expect(unsupported).toHaveLength(1);
    expect(unsupported[0]).toContain("model_list[0].litellm_params.vertex_project");
    expect(unsupported[0]).toContain("litellm_settings.drop_params");
    expect(unsupported[0]).toContain("litellm_settings.success_callback");
    expect(unsupported[0]).toContain("router_settings.routing_strategy");
    expect(c.warnings.some((w) => w.includes('model_list[0].litellm_params.rpm: the string "100"'))).toBe(true);
  });

  it("stops on a near miss of a supported key (a typo) but only warns about LiteLLM's own settings", () => {
    expect(
      problems(`model_list:
  - model_name: a
    litellm_params: { model: openai/x, api_bsae: "http://h/v1", TPM: 5 }
litellm_settings: { max_budegt: 5 }
general_settings: { Master_Key: sk-1, store: { type: memory, prefx: "a:" } }
router_settings: { redis_hots: h }
`),
    ).toEqual([
      "litellm_settings.max_budegt: unknown key (did you mean max_budget?)",
      "general_settings.Master_Key: unknown key (did you mean master_key?)",
      "router_settings.redis_hots: unknown key (did you mean redis_host?)",
      "general_settings.store.prefx: unknown key (did you mean prefix?)",
      "model_list[0].litellm_params.api_bsae: unknown key (did you mean api_base?)",
      "model_list[0].litellm_params.TPM: unknown key (did you mean tpm?)",
    ]);
    // Settings from LiteLLM's documentation that Tollgate does not read: one warning each, never an error.
    const c = parseConfig(
      `model_list:
  - model_name: a
    litellm_params:
      model: openai/x
      api_version: "2024-10-21"
      organization: org
      region_name: eu
      order: 1
      tags: [a]
      max_retries: 2
      input_cost_per_second: 0.1
      base_model: gpt-4o
litellm_settings:
  cache: true
  callbacks: [x]
  max_end_user_budget_id: b
  default_max_internal_user_budget: 1
  set_verbose: false
  json_logs: true
general_settings:
  alerting: [slack]
  database_args: {}
  database_connection_pool_limit: 10
  max_parallel_requests: 100
  global_max_parallel_requests: 1000
  store_model_in_db: true
  disable_spend_logs: false
router_settings:
  redis_url: redis://h
  redis_db: 0
  timeout: 30
  num_retries: 2
  enable_pre_call_checks: true
`,
      { env: {} },
    );
    const warning = c.warnings.find((w) => w.includes("does not support yet"))!;
    expect(warning).toContain("ignoring 26 LiteLLM setting(s)");
  });

  it("resolves os.environ/ secrets and says which is missing", () => {
    const text = `model_list:
  - model_name: a
    litellm_params:
      model: openai/x
      api_key: os.environ/UPSTREAM_KEY
general_settings:
  master_key: os.environ/MY_MASTER
`;
    expect(problems(text, { MY_MASTER: "sk-m" })).toEqual([
      "model_list[0].litellm_params.api_key: the environment variable UPSTREAM_KEY is not set (the config says os.environ/UPSTREAM_KEY)",
    ]);
    const c = parseConfig(text, { env: { UPSTREAM_KEY: "sk-u", MY_MASTER: "sk-m" } });
    expect(c.deployments[0]!.apiKey).toBe("sk-u");
    expect(c.masterKey).toBe("sk-m");
  });

  it("takes LITELLM_MASTER_KEY and the Redis variables from the environment", () => {
    const c = parseConfig(MODEL, {
      env: { LITELLM_MASTER_KEY: "sk-env", REDIS_HOST: "10.0.0.5", REDIS_PORT: "6380", REDIS_PASSWORD: "pw" },
    });
    expect(c.masterKey).toBe("sk-env");
    expect(c.masterKeySource).toBe("env");
    expect(c.store).toMatchObject({ type: "redis", url: "redis://:pw@10.0.0.5:6380", failurePolicy: "closed" });
    const u = parseConfig(MODEL, { env: { REDIS_URL: "redis://127.0.0.1:7000" } });
    expect(u.store).toMatchObject({ type: "redis", url: "redis://127.0.0.1:7000" });
  });

  it("reads the store setting (type, cluster nodes, failure policy)", () => {
    const c = parseConfig(
      `${MODEL}general_settings:
  store:
    type: redis_cluster
    nodes: ["127.0.0.1:7001", { host: 127.0.0.1, port: 7002 }]
    failure_policy: fallback
    fallback_instances: 3
`,
      { env: {} },
    );
    expect(c.store).toEqual({
      type: "redis_cluster",
      nodes: [
        { host: "127.0.0.1", port: 7001 },
        { host: "127.0.0.1", port: 7002 },
      ],
      password: undefined,
      prefix: undefined,
      failurePolicy: "fallback",
      timeoutMs: undefined,
      fallbackInstances: 3,
    });
    expect(problems(`${MODEL}general_settings:\n  store: sqlite\n`)[0]).toMatch(/^general_settings\.store: /);
  });

  it("refuses providers that are not OpenAI-compatible without an api_base, and bad YAML", () => {
    expect(
      problems(`model_list:\n  - model_name: c\n    litellm_params:\n      model: anthropic/claude-3\n`)[0],
    ).toContain("does not translate between provider APIs");
    expect(
      problems(`model_list:\n  - model_name: v\n    litellm_params:\n      model: hosted_vllm/llama\n`)[0],
    ).toContain("api_base: required");
    expect(problems("model_list: [\n")[0]).toMatch(/^YAML syntax/);
  });

  it("warns on LiteLLM values it tolerates: max_budget 0, an unknown token_rate_limit_type", () => {
    const c = parseConfig(
      `${MODEL}litellm_settings:\n  max_budget: 0\ngeneral_settings:\n  token_rate_limit_type: both\n`,
      { env: {} },
    );
    expect(c.maxBudget).toBeNull();
    expect(c.tokenRateLimitType).toBe("total");
    expect(c.warnings).toHaveLength(2);
  });

  it("rejects duplicate deployment ids and prices finer than 1e-9 USD", () => {
    const dup = `model_list:
  - model_name: a
    litellm_params: { model: openai/x }
    model_info: { id: same }
  - model_name: b
    litellm_params: { model: openai/y }
    model_info: { id: same }
`;
    expect(problems(dup)[0]).toContain("model_list[1].model_info.id");
    const fine = `model_list:
  - model_name: a
    litellm_params: { model: openai/x, input_cost_per_token: 0.0000000001 }
`;
    expect(problems(fine)[0]).toMatch(/^model_list\[0\]\.litellm_params\.input_cost_per_token/);
  });
});
