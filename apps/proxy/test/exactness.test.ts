/**
 * Exactness over HTTP, on the memory store and on a real redis-server: 300 concurrent requests against `rpm: 50`
 * admit exactly 50; 100 concurrent $0.01 requests against a $0.50 global budget admit exactly 50.
 */
import { randomBytes } from "node:crypto";
import { type OpenAIUpstream, type ProxyProcess, startOpenAIUpstream, startProxyProcess } from "@tollgate/test-servers";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { chat, client, eventually, MASTER, status } from "./helpers.js";

let upstream: OpenAIUpstream;

beforeAll(async () => {
  upstream = await startOpenAIUpstream({ defaults: { tokens: 10 } });
});
afterAll(async () => {
  await upstream?.close();
});

function storeYaml(kind: "memory" | "redis"): string {
  if (kind === "memory") return "store: memory";
  return `store:
    type: redis
    url: ${inject("redis").url}
    timeout_ms: 5000   # generous: the test run loads this machine; a slow answer must not count as an outage
    prefix: "tg-exact-${randomBytes(4).toString("hex")}:"`;
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
    else if (r.reason instanceof OpenAI.APIError && (r.reason.error as { type?: string })?.type === "budget_exceeded") {
      budget++;
    } else other.push(r.reason);
  }
  return { ok, limited, budget, other };
}

describe.each(["memory", "redis"] as const)("exact under concurrency over HTTP (%s store)", (kind) => {
  let proxy: ProxyProcess;
  let openai: OpenAI;

  beforeAll(async () => {
    proxy = await startProxyProcess({
      config: `
model_list:
  - model_name: limited
    litellm_params: { model: openai/limited, api_base: ${upstream.apiBase}, rpm: 50 }
  - model_name: paid
    litellm_params:
      model: openai/paid
      api_base: ${upstream.apiBase}
      input_cost_per_token: 0
      output_cost_per_token: 0.001
litellm_settings:
  max_budget: 0.5
  budget_duration: 30d
general_settings:
  master_key: ${MASTER}
  ${storeYaml(kind)}
`,
    });
    openai = client(proxy.url);
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
  });

  it("300 concurrent requests on a deployment with rpm 50: exactly 50 succeed, 250 get 429", async () => {
    const calls = Array.from({ length: 300 }, () => openai.chat.completions.create({ model: "limited", ...chat() }));
    const r = await outcomes(calls);
    expect(r.other).toEqual([]);
    expect(r.ok).toBe(50);
    expect(r.limited).toBe(250);
    const s = await status(proxy.url);
    const d = s.deployments.find((x: { model_name: string }) => x.model_name === "limited");
    expect(d.limits.find((l: { type: string }) => l.type === "requests").used).toBe(50);
  }, 120_000);

  it("100 concurrent $0.01 requests against a $0.50 global budget: exactly 50 succeed", async () => {
    // each request: max_tokens 10 at $0.001 per output token = $0.01 held, and the upstream answers 10 tokens
    const calls = Array.from({ length: 100 }, () =>
      openai.chat.completions.create({ model: "paid", ...chat(), max_tokens: 10 }),
    );
    const r = await outcomes(calls);
    expect(r.other).toEqual([]);
    expect(r.ok).toBe(50);
    expect(r.budget).toBe(50);
    await eventually(async () => {
      const b = (await status(proxy.url)).budgets[0];
      expect(b.spend).toBe(500_000_000); // exactly $0.50 in nano-USD
      expect(b.reserved).toBe(0);
    });
  }, 120_000);
});
