/**
 * The curl flows of LiteLLM's budgets page (shared/seeds/002_…txt) against the proxy process, with the page's paths,
 * headers and bodies, on SQLite and on PostgreSQL, in the default reserve mode and in `budget_mode: check`.
 * Where the page's JSON is broken (trailing commas, `# [OPTIONAL]` comments, an unquoted `10s`) or a header is
 * misspelt (`Autherization`), the broken form gets a clear 4xx and the test then sends the evident intended request.
 */
import {
  createDatabase,
  type OpenAIUpstream,
  type ProxyProcess,
  startOpenAIUpstream,
  startProxyProcess,
} from "@tollgate/test-servers";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

let upstream: OpenAIUpstream;
beforeAll(async () => {
  upstream = await startOpenAIUpstream({ defaults: { tokens: 10 } });
});
afterAll(async () => {
  await upstream?.close();
});

const MASTER = "sk-1234";

function config(mode: "reserve" | "check"): string {
  const base = upstream.apiBase;
  return `
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params: { model: openai/gpt-3.5-turbo, api_base: ${base}, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 }
  - model_name: llama3
    litellm_params: { model: openai/llama3, api_base: ${base}, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 }
  - model_name: azure-gpt-3.5
    litellm_params: { model: openai/azure-gpt-3.5, api_base: ${base}, input_cost_per_token: 0.00001, output_cost_per_token: 0.0001 }
    model_info: { access_groups: ["azure-models"] }
  - model_name: gpt-4o
    litellm_params: { model: openai/gpt-4o, api_base: ${base}, input_cost_per_token: 0.00001, output_cost_per_token: 0.0001 }
  - model_name: text-embedding-ada-002
    litellm_params: { model: openai/text-embedding-ada-002, api_base: ${base}, input_cost_per_token: 0.0000001, output_cost_per_token: 0 }
    model_info: { access_groups: ["beta-models"], mode: embedding }
general_settings:
  master_key: ${MASTER}
  budget_mode: ${mode}
litellm_settings:
  max_budget: 0
  budget_duration: 30d
  max_end_user_budget: 0.0001
  max_internal_user_budget: 0
  internal_user_budget_duration: "1mo"
`;
}

interface Raw {
  status: number;
  json: any;
  text: string;
}

/** A request as curl sends it: headers and the body string exactly as given. */
async function curl(
  base: string,
  path: string,
  headers: Record<string, string>,
  data?: string,
  method = "POST",
): Promise<Raw> {
  const res = await fetch(base + path, { method, headers, ...(data === undefined ? {} : { body: data }) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

const H = (key = MASTER) => ({ Authorization: `Bearer ${key}`, "Content-Type": "application/json" });

describe.each([
  ["sqlite", "reserve"],
  ["postgres", "reserve"],
  ["sqlite", "check"],
  ["postgres", "check"],
] as const)("seed flows on %s, %s mode", (dialect, mode) => {
  let proxy: ProxyProcess;
  let url = "";
  beforeAll(async () => {
    const env: Record<string, string> = {};
    if (dialect === "postgres") env.DATABASE_URL = await createDatabase(inject("postgres").url);
    proxy = await startProxyProcess({ config: config(mode), env });
    url = proxy.url;
  }, 60_000);
  afterAll(async () => {
    await proxy?.stop();
  });

  const chat = (key: string, model: string, extra = "") =>
    curl(
      url,
      "/chat/completions",
      H(key),
      `{"model": "${model}", ${extra}"messages": [{"role": "user", "content": "what llm are you"}]}`,
    );

  it("global proxy budget: the page's request (misspelt header, trailing comma) is refused clearly; max_budget 0 is no budget", async () => {
    const page = await curl(
      url,
      "/chat/completions",
      { Autherization: `Bearer ${MASTER}`, "Content-Type": "application/json" },
      `{\n"model": "gpt-3.5-turbo",\n"messages": [\n{\n"role": "user",\n"content": "what llm are you"\n}\n],\n}`,
    );
    expect(page.status).toBe(401);
    expect(page.json.error.message).toContain("No api key passed in");
    const broken = await curl(
      url,
      "/chat/completions",
      H(),
      `{"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "x"}],}`,
    );
    expect(broken.status).toBe(400);
    expect(broken.json.error.message).toMatch(/Invalid JSON/);
    // LiteLLM enforces the global budget only when max_budget > 0.
    const ok = await chat(MASTER, "gpt-3.5-turbo");
    expect(ok.status).toBe(200);
  });

  it("team budgets: /team/new answers the sample response; the unquoted 10s is a 400, the quoted one sets budget_reset_at", async () => {
    const t = await curl(
      url,
      "/team/new",
      H(),
      `{\n"team_alias": "my-new-team_4",\n"members_with_roles": [{"role": "admin", "user_id": "5c4a0aa3-a1e1-43dc-bd87-3c2da8382a3a"}],\n"rpm_limit": 99\n}`,
    );
    expect(t.status).toBe(200);
    expect(t.json).toMatchObject({
      team_alias: "my-new-team_4",
      admins: [],
      members: [],
      members_with_roles: [{ role: "admin", user_id: "5c4a0aa3-a1e1-43dc-bd87-3c2da8382a3a" }],
      metadata: {},
      tpm_limit: null,
      rpm_limit: 99,
      max_budget: null,
      models: [],
      spend: 0,
      max_parallel_requests: null,
      budget_duration: null,
      budget_reset_at: null,
    });
    const page = await curl(
      url,
      "/team/new",
      H(),
      `{\n"team_alias": "my-new-team_4",\n"members_with_roles": [{"role": "admin", "user_id": "5c4a0aa3-a1e1-43dc-bd87-3c2da8382a3a"}],\n"budget_duration": 10s,\n}`,
    );
    expect(page.status).toBe(400);
    expect(page.json.error.type).toBe("invalid_request_error");
    const fixed = await curl(
      url,
      "/team/new",
      H(),
      `{"team_alias": "my-new-team_4", "members_with_roles": [{"role": "admin", "user_id": "5c4a0aa3-a1e1-43dc-bd87-3c2da8382a3a"}], "budget_duration": "10s"}`,
    );
    expect(fixed.status).toBe(200);
    const reset = Date.parse(fixed.json.budget_reset_at);
    expect(reset - Date.now()).toBeLessThanOrEqual(10_000);
  });

  it("team members: user ishaan, max_budget_in_team 0.000000000001, a key for the member; requests then fail on the member budget", async () => {
    const teamId = "e8d1460f-846c-45d7-9b43-55f3cc52ac32";
    // The page adds the member to an existing team: create it with the page's id.
    expect((await curl(url, "/team/new", H(), `{"team_id": "${teamId}"}`)).status).toBe(200);
    const u = await curl(url, "/user/new", H(), `{\n"user_id": "ishaan"\n}`);
    expect(u.status).toBe(200);
    const add = await curl(
      url,
      "/team/member_add",
      H(),
      `{"team_id": "${teamId}", "max_budget_in_team": 0.000000000001, "member": {"role": "user", "user_id": "ishaan"}}`,
    );
    expect(add.status).toBe(200);
    const k = await curl(url, "/key/generate", H(), `{\n"user_id": "ishaan",\n"team_id": "${teamId}"\n}`);
    expect(k.status).toBe(200);
    expect(k.json).toMatchObject({
      models: [],
      spend: 0,
      max_budget: null,
      user_id: "ishaan",
      team_id: teamId,
      metadata: {},
      key_alias: null,
      model_max_budget: {},
    });
    const key = k.json.key as string;
    const r = await curl(
      url,
      "/chat/completions",
      H(key),
      `{\n"model": "llama3",\n"messages": [\n{\n"role": "user",\n"content": "tes4"\n}\n]\n}`,
    );
    // Tollgate counts nano-USD: 0.000000000001 USD is 0, so even LiteLLM's check mode (spend >= max) refuses the
    // first request (LiteLLM itself lets one or two through, "After 2-3 requests").
    expect(r.status).toBe(400);
    expect(r.json.error.type).toBe("budget_exceeded");
    expect(r.json.error.message).toContain(`User=ishaan in Team=${teamId}`);
  });

  it("internal users: /user/new with max_budget 0, keys of that user fail; the page's # comment and 10s are 400s", async () => {
    const u = await curl(
      url,
      "/user/new",
      H(),
      `{"models": ["azure-models"], "max_budget": 0, "user_id": "krrish3@berri.ai"}`,
    );
    expect(u.status).toBe(200);
    expect(u.json).toMatchObject({ user_id: "krrish3@berri.ai", max_budget: 0 });
    expect(u.json.key).toMatch(/^sk-/);
    const page = await curl(
      url,
      "/user/new",
      H(),
      `{\n"team_id": "core-infra", # [OPTIONAL]\n"max_budget": 10,\n"budget_duration": 10s,\n}`,
    );
    expect(page.status).toBe(400);
    const fixed = await curl(
      url,
      "/user/new",
      H(),
      `{"team_id": "core-infra", "max_budget": 10, "budget_duration": "10s"}`,
    );
    expect(fixed.status).toBe(200);
    expect(fixed.json).toMatchObject({ max_budget: 10, budget_duration: "10s" });
    const k = await curl(url, "/key/generate", H(), `{"models": ["azure-models"], "user_id": "krrish3@berri.ai"}`);
    expect(k.status).toBe(200);
    // The access group grants the model; the user's $0 budget refuses it (spend 0 >= max 0 in check mode too).
    const r = await chat(k.json.key, "azure-gpt-3.5");
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ type: "budget_exceeded", code: "400" });
    expect(r.json.error.message).toBe("ExceededBudget: User=krrish3@berri.ai over budget. Spend=0.0, Budget=0.0");
    // A model outside the user's key: 403.
    const denied = await chat(k.json.key, "gpt-4o");
    expect(denied.status).toBe(403);
    expect(denied.json.error.type).toBe("key_model_access_denied");
  });

  it("max_internal_user_budget: a personal key of an internal user without a budget of its own is refused", async () => {
    // The page generates the key with '{}' from the master key; the evident intent is a key of an internal user.
    expect((await curl(url, "/user/new", H(), `{"user_id": "intern", "auto_create_key": false}`)).status).toBe(200);
    const k = await curl(url, "/key/generate", H(), `{"user_id": "intern"}`);
    const r = await curl(
      url,
      "/chat/completions",
      H(k.json.key),
      `{"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hey, how's it going?"}]}`,
    );
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ type: "budget_exceeded", code: "400" });
    expect(r.json.error.message).toBe("ExceededBudget: User=intern over budget. Spend=0.0, Budget=0.0");
  });

  it("virtual key budgets: the page's forms are 400s; a key over its max_budget fails (reserve: the first request; check: the next one)", async () => {
    expect(
      (await curl(url, "/key/generate", H(), `{\n"team_id": "core-infra", # [OPTIONAL]\n"max_budget": 10,\n}`)).status,
    ).toBe(400);
    const fixed = await curl(url, "/key/generate", H(), `{"team_id": "core-infra", "max_budget": 10}`);
    expect(fixed.status).toBe(200);
    expect(fixed.json.max_budget).toBe(10);
    const dur = await curl(
      url,
      "/key/generate",
      H(),
      `{"team_id": "core-infra", "max_budget": 10, "budget_duration": "10s"}`,
    );
    expect(Date.parse(dur.json.budget_reset_at) - Date.now()).toBeLessThanOrEqual(10_000);
    // The page's "key has crossed budget" example: Max Budget for Token 2e-07.
    const small = (await curl(url, "/key/generate", H(), `{"max_budget": 2e-7}`)).json.key as string;
    const pageBody = ` {\n"model": "azure-gpt-3.5",\n"user": "e09b4da8-ed80-4b05-ac93-e16d9eb56fca",\n"messages": [\n{\n"role": "user",\n"content": "respond in 50 lines"\n}\n],\n}`;
    expect((await curl(url, "/chat/completions", H(small), pageBody)).status).toBe(400);
    const body = `{"model": "azure-gpt-3.5", "messages": [{"role": "user", "content": "respond in 50 lines"}]}`;
    const first = await curl(url, "/chat/completions", H(small), body);
    if (mode === "reserve") {
      // The worst-case cost of one request is more than the whole budget: refused before spending anything.
      expect(first.status).toBe(400);
      expect(first.json.error.type).toBe("budget_exceeded");
      expect(first.json.error.message).toBe("Budget has been exceeded! Current cost: 0.0, Max budget: 2e-07");
    } else {
      expect(first.status).toBe(200);
      const second = await curl(url, "/chat/completions", H(small), body);
      expect(second.status).toBe(400);
      expect(second.json.error.type).toBe("budget_exceeded");
      expect(second.json.error.message).toMatch(
        /^Budget has been exceeded! Current cost: [0-9.e-]+, Max budget: 2e-07$/,
      );
    }
  });

  it("model-specific key budget: gpt-4o at $0.0000001/1d (reserve: first refused; check: first succeeds, second fails)", async () => {
    const k = await curl(
      url,
      "/key/generate",
      H(),
      `{\n"model_max_budget": {"gpt-4o": {"budget_limit": "0.0000001", "time_period": "1d"}}\n}`,
    );
    expect(k.status).toBe(200);
    expect(k.json.model_max_budget).toEqual({ "gpt-4o": { budget_limit: 1e-7, time_period: "1d" } });
    const body = ` {\n"model": "gpt-4o",\n"messages": [\n{\n"role": "user",\n"content": "testing request"\n}\n]\n}\n`;
    const first = await curl(url, "/chat/completions", H(k.json.key), body);
    const denied = mode === "reserve" ? first : await curl(url, "/chat/completions", H(k.json.key), body);
    if (mode === "check") expect(first.status).toBe(200);
    expect(denied.status).toBe(400);
    expect(denied.json.error.type).toBe("budget_exceeded");
    expect(denied.json.error.message).toMatch(
      /^LiteLLM Virtual Key: [0-9a-f]{64}, key_alias: None, exceeded budget for model=gpt-4o$/,
    );
    // Another model is not bound by the gpt-4o budget.
    expect((await chat(k.json.key, "gpt-3.5-turbo", '"max_tokens": 5, ')).status).toBe(200);
  });

  it("customers: max_end_user_budget 0.0001 for 'user' ishaan3 (reserve: first refused; check: first works, second fails)", async () => {
    const key = (await curl(url, "/key/generate", H(), "{}")).json.key as string;
    const body = ` {\n"model": "azure-gpt-3.5",\n"user": "ishaan3",\n"messages": [\n{\n"role": "user",\n"content": "what time is it"\n}\n]\n}`;
    const first = await curl(url, "/chat/completions", H(key), body);
    const denied = mode === "reserve" ? first : await curl(url, "/chat/completions", H(key), body);
    if (mode === "check") expect(first.status).toBe(200);
    expect(denied.status).toBe(400);
    expect(denied.json.error.type).toBe("budget_exceeded");
    expect(denied.json.error.message).toMatch(
      /^ExceededBudget: End User=ishaan3 over budget. Spend=[0-9.e-]+, Budget=0.0001$/,
    );
  });

  it("reset budgets: the page's body with '# 👈 KEY CHANGE' is a 400; the intended one sets the user's budget_duration", async () => {
    expect(
      (await curl(url, "/user/new", H(), `{\n"max_budget": 10,\n"budget_duration": 10s, # 👈 KEY CHANGE\n}`)).status,
    ).toBe(400);
    const r = await curl(url, "/user/new", H(), `{"max_budget": 10, "budget_duration": "10s"}`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ max_budget: 10, budget_duration: "10s" });
  });

  it("rate limits per team: my-prod-team with rpm 4 (and tpm 20, 10 in parallel) refuses the fifth request with 429", async () => {
    const t = await curl(
      url,
      "/team/new",
      H(),
      `{"team_id": "my-prod-team", "max_parallel_requests": 10, "tpm_limit": 20, "rpm_limit": 4}`,
    );
    expect(t.status).toBe(200);
    expect(t.json).toMatchObject({ team_id: "my-prod-team", max_parallel_requests: 10, tpm_limit: 20, rpm_limit: 4 });
    const key = (await curl(url, "/key/generate", H(), `{"team_id": "my-prod-team"}`)).json.key as string;
    const results: Raw[] = [];
    for (let i = 0; i < 5; i++) {
      results.push(
        await curl(
          url,
          "/chat/completions",
          H(key),
          `{"model": "gpt-3.5-turbo", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}], "x_test": {"tokens": 1, "promptTokens": 1}}`,
        ),
      );
    }
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 429]);
    expect(results[4]!.json.error.message).toMatch(
      /^Rate limit exceeded for team: my-prod-team\. Limit type: requests\. Current limit: 4, Remaining: 0\./,
    );
  });

  it("model access groups: a user with models ['beta-models'] reaches text-embedding-ada-002 and nothing else", async () => {
    const u = await curl(url, "/user/new", H(), `{"models": ["beta-models"], "max_budget": 1}`);
    expect(u.status).toBe(200);
    const e = await curl(url, "/embeddings", H(u.json.key), `{"model": "text-embedding-ada-002", "input": "hello"}`);
    expect(e.status).toBe(200);
    const c = await chat(u.json.key, "gpt-3.5-turbo");
    expect(c.status).toBe(403);
  });
});
