/**
 * Virtual keys through the proxy process with the official `openai` client, on SQLite and on PostgreSQL: exact
 * per-key rpm under 300 concurrent requests, a team budget shared by two keys, an end-user budget via `user`; the
 * auth matrix over HTTP; the ledger after a SIGTERM restart and the budget counters rebuilt from it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createDatabase,
  type OpenAIUpstream,
  type ProxyProcess,
  startOpenAIUpstream,
  startProxyProcess,
} from "@tollgate/test-servers";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const MASTER = "sk-1234";
let upstream: OpenAIUpstream;
beforeAll(async () => {
  upstream = await startOpenAIUpstream({ defaults: { tokens: 10 } });
});
afterAll(async () => {
  await upstream?.close();
});

const config = () => `
model_list:
  - model_name: free
    litellm_params: { model: openai/free, api_base: ${upstream.apiBase}, input_cost_per_token: 0, output_cost_per_token: 0 }
  - model_name: paid
    litellm_params: { model: openai/paid, api_base: ${upstream.apiBase}, input_cost_per_token: 0, output_cost_per_token: 0.001 }
general_settings:
  master_key: ${MASTER}
`;

const client = (url: string, key: string) =>
  new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0, timeout: 60_000 });
const msg = (content = "hi") => ({ messages: [{ role: "user" as const, content }] });

async function admin(url: string, path: string, body: unknown, key = MASTER): Promise<{ status: number; json: any }> {
  const res = await fetch(url + path, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function get(url: string, path: string, key = MASTER): Promise<{ status: number; json: any }> {
  const res = await fetch(url + path, { headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, json: await res.json() };
}

async function outcomes(calls: Array<Promise<unknown>>) {
  const results = await Promise.allSettled(calls);
  let ok = 0;
  let limited = 0;
  let budget = 0;
  const other: unknown[] = [];
  for (const r of results) {
    if (r.status === "fulfilled") ok++;
    else if (r.reason instanceof OpenAI.RateLimitError) limited++;
    else if (r.reason instanceof OpenAI.APIError && (r.reason.error as { type?: string })?.type === "budget_exceeded")
      budget++;
    else other.push(r.reason);
  }
  return { ok, limited, budget, other };
}

describe.each(["sqlite", "postgres"] as const)("virtual keys over HTTP (%s)", (dialect) => {
  let proxy: ProxyProcess;
  let dir: string | undefined;
  const env: Record<string, string> = {};
  beforeAll(async () => {
    // A database that outlives one proxy process (the restart test): a PostgreSQL database, or a SQLite file.
    if (dialect === "postgres") env.DATABASE_URL = await createDatabase(inject("postgres").url);
    else {
      dir = mkdtempSync(join(tmpdir(), "tollgate-vk-"));
      env.DATABASE_URL = join(dir, "tollgate.db");
    }
    proxy = await startProxyProcess({ config: config(), env });
  }, 60_000);
  afterAll(async () => {
    await proxy?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("per-key rpm_limit 50: 300 concurrent requests, exactly 50 succeed, 250 get 429 naming the key", async () => {
    const k = await admin(proxy.url, "/key/generate", { rpm_limit: 50 });
    expect(k.status).toBe(200);
    const openai = client(proxy.url, k.json.key);
    const calls = Array.from({ length: 300 }, () => openai.chat.completions.create({ model: "free", ...msg() }));
    const r = await outcomes(calls);
    expect(r.other).toEqual([]);
    expect(r.ok).toBe(50);
    expect(r.limited).toBe(250);
    const denied = await openai.chat.completions.create({ model: "free", ...msg() }).catch((e) => e);
    expect(denied).toBeInstanceOf(OpenAI.RateLimitError);
    expect(denied.message).toContain(`Rate limit exceeded for api_key: ${k.json.token}`);
    expect(denied.headers.get("retry-after")).toMatch(/^\d+$/);
  });

  it("a team budget of $0.50 shared by two keys: 100 concurrent $0.01 requests over both, exactly 50 succeed", async () => {
    const t = await admin(proxy.url, "/team/new", { team_alias: "shared", max_budget: 0.5 });
    const a = await admin(proxy.url, "/key/generate", { team_id: t.json.team_id });
    const b = await admin(proxy.url, "/key/generate", { team_id: t.json.team_id });
    const ca = client(proxy.url, a.json.key);
    const cb = client(proxy.url, b.json.key);
    const calls = Array.from({ length: 100 }, (_, i) =>
      (i % 2 ? ca : cb).chat.completions.create({ model: "paid", ...msg(), max_tokens: 10 }),
    );
    const r = await outcomes(calls);
    expect(r.other).toEqual([]);
    expect(r.ok).toBe(50);
    expect(r.budget).toBe(50);
    // The ledger holds exactly the $0.50 (rows are written within a second).
    await eventually(async () => {
      const info = await get(proxy.url, `/team/info?team_id=${t.json.team_id}`);
      expect(info.json.team_info.spend).toBeCloseTo(0.5, 9);
    });
    const logs = await get(proxy.url, `/spend/logs/v2?team_id=${t.json.team_id}&page_size=100&status_filter=success`);
    expect(logs.json.total).toBe(50);
  });

  it("an end-user budget via `user`: a customer with max_budget $0.05, 20 concurrent $0.01 requests, exactly 5 succeed", async () => {
    expect((await admin(proxy.url, "/customer/new", { user_id: "cust-http", max_budget: 0.05 })).status).toBe(200);
    const k = await admin(proxy.url, "/key/generate", {});
    const openai = client(proxy.url, k.json.key);
    const calls = Array.from({ length: 20 }, () =>
      openai.chat.completions.create({ model: "paid", ...msg(), max_tokens: 10, user: "cust-http" }),
    );
    const r = await outcomes(calls);
    expect(r.other).toEqual([]);
    expect(r.ok).toBe(5);
    expect(r.budget).toBe(15);
    // Another end user on the same key is not affected.
    await expect(
      openai.chat.completions.create({ model: "paid", ...msg(), max_tokens: 10, user: "someone-else" }),
    ).resolves.toBeTruthy();
    await eventually(async () => {
      const info = await get(proxy.url, "/customer/info?end_user_id=cust-http");
      expect(info.json.spend).toBeCloseTo(0.05, 9);
    });
  });

  it("the auth matrix over HTTP: LiteLLM's status and type for each refusal", async () => {
    const openai = (key: string) => client(proxy.url, key);
    // unknown key
    const unknown = await openai("sk-unknown")
      .chat.completions.create({ model: "free", ...msg() })
      .catch((e) => e);
    expect(unknown).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(unknown.error).toMatchObject({ type: "token_not_found_in_db", code: "401" });
    // blocked key
    const k = await admin(proxy.url, "/key/generate", { models: ["free"] });
    await admin(proxy.url, "/key/block", { key: k.json.key });
    const blocked = await openai(k.json.key)
      .chat.completions.create({ model: "free", ...msg() })
      .catch((e) => e);
    expect(blocked).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(blocked.error).toMatchObject({ type: "auth_error", code: "401" });
    await admin(proxy.url, "/key/unblock", { key: k.json.key });
    await expect(openai(k.json.key).chat.completions.create({ model: "free", ...msg() })).resolves.toBeTruthy();
    // model outside the allow-list
    const model = await openai(k.json.key)
      .chat.completions.create({ model: "paid", ...msg() })
      .catch((e) => e);
    expect(model).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(model.error).toMatchObject({ type: "key_model_access_denied", code: "403" });
    // a read-only admin's mutation; an internal user touching another user's key
    const viewer = await admin(proxy.url, "/user/new", { user_role: "proxy_admin_viewer" });
    const v = await admin(proxy.url, "/key/generate", {}, viewer.json.key);
    expect(v.status).toBe(403);
    expect(v.json.error.type).toBe("auth_error");
    const alice = await admin(proxy.url, "/user/new", { user_id: "alice-http" });
    const bob = await admin(proxy.url, "/user/new", { user_id: "bob-http" });
    const touch = await admin(proxy.url, "/key/update", { key: bob.json.key, max_budget: 100 }, alice.json.key);
    expect(touch.status).toBe(403);
    expect((await get(proxy.url, `/key/info?key=${bob.json.key}`)).json.info.max_budget).toBeNull();
    // broken JSON on a management route
    const res = await fetch(`${proxy.url}/key/generate`, {
      method: "POST",
      headers: { authorization: `Bearer ${MASTER}`, "content-type": "application/json" },
      body: '{"max_budget": 10,}',
    });
    expect(res.status).toBe(400);
  });

  it("SIGTERM writes every spend-log row; after a restart the budget counters are rebuilt from the ledger", async () => {
    const k = await admin(proxy.url, "/key/generate", { max_budget: 0.05 });
    const openai = client(proxy.url, k.json.key);
    for (let i = 0; i < 3; i++) await openai.chat.completions.create({ model: "paid", ...msg(), max_tokens: 10 });
    // Stop at once: the last rows may still be queued; SIGTERM flushes them.
    await proxy.stop("SIGTERM");
    proxy = await startProxyProcess({ config: config(), env });
    const logs = await get(proxy.url, `/spend/logs?api_key=${k.json.key}`);
    expect(logs.json).toHaveLength(3);
    // $0.03 spent of $0.05 (memory store: the counters are gone with the process): exactly 2 more $0.01 requests
    // fit, counted from the ledger.
    const again = client(proxy.url, k.json.key);
    const r = await outcomes(
      Array.from({ length: 5 }, () => again.chat.completions.create({ model: "paid", ...msg(), max_tokens: 10 })),
    );
    expect(r.ok).toBe(2);
    expect(r.budget).toBe(3);
  }, 60_000);
});

async function eventually(check: () => Promise<void>, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() - t0 > timeoutMs) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
