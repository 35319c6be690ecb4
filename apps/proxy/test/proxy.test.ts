/**
 * The proxy as a real process, the test upstream over real HTTP, the official `openai` client: requests, headers,
 * errors and bad input.
 */
import { createServer } from "node:net";
import { type OpenAIUpstream, type ProxyProcess, startOpenAIUpstream, startProxyProcess } from "@tollgate/test-servers";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chat, client, eventually, MASTER, post, status } from "./helpers.js";

async function deadPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

let upstream: OpenAIUpstream;
let proxy: ProxyProcess;
let openai: OpenAI;

beforeAll(async () => {
  upstream = await startOpenAIUpstream();
  const dead = `http://127.0.0.1:${await deadPort()}/v1`;
  proxy = await startProxyProcess({
    config: `
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: ${upstream.apiBase}
      api_key: sk-upstream
      rpm: 100000
      tpm: 100000000
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: embed
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: ${upstream.apiBase}
    model_info: { mode: embedding }
  - model_name: tiny
    litellm_params: { model: openai/tiny, api_base: ${upstream.apiBase}, rpm: 2 }
  - model_name: slow
    litellm_params: { model: openai/slow, api_base: ${upstream.apiBase}, timeout: 1, rpm: 1000 }
  - model_name: dead
    litellm_params: { model: openai/dead, api_base: ${dead}, rpm: 1000 }
  - model_name: failover
    litellm_params: { model: openai/dead, api_base: ${dead}, rpm: 1000 }
  - model_name: failover
    litellm_params: { model: openai/live, api_base: ${upstream.apiBase}, rpm: 1000 }
  - model_name: mock
    litellm_params: { model: mock/m, mock_response: "one two three four", mock_prompt_tokens: 7 }
litellm_settings:
  num_retries: 1
general_settings:
  master_key: ${MASTER}
  max_request_size_mb: 0.01
`,
  });
  openai = client(proxy.url);
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  await upstream?.close();
});

const deploymentUse = async (model: string) => {
  const s = await status(proxy.url);
  const d = s.deployments.find((x: { model_name: string }) => x.model_name === model);
  const req = d.limits.find((l: { type: string }) => l.type === "requests");
  const tok = d.limits.find((l: { type: string }) => l.type === "tokens");
  return { requests: req?.used ?? 0, tokens: tok?.used ?? 0 };
};

describe("OpenAI-compatible requests", () => {
  it("chat completion through the openai client, with LiteLLM's headers", async () => {
    const { data, response } = await openai.chat.completions
      .create({ model: "gpt-4o", ...chat("Say hello") })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe("Hello from the test upstream. It answers deterministically.");
    expect(data.usage).toMatchObject({ completion_tokens: 8 });
    const h = response.headers;
    expect(h.get("x-litellm-call-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(h.get("x-litellm-model-group")).toBe("gpt-4o");
    const prompt = data.usage!.prompt_tokens;
    expect(Number(h.get("x-litellm-response-cost"))).toBeCloseTo(prompt * 1e-6 + 8 * 2e-6, 12);
    expect(Number(h.get("x-litellm-overhead-duration-ms"))).toBeGreaterThanOrEqual(0);
    expect(h.get("x-ratelimit-deployment-limit-requests")).toBe("100000");
    expect(h.get("x-ratelimit-limit-requests")).toBe("100000");
    // the upstream saw its own model name and key, never the proxy's master key
    expect(upstream.bodies.at(-1)!.model).toBe("gpt-4o");
    expect(upstream.lastHeaders.authorization).toBe("Bearer sk-upstream");
  });

  it("embeddings, legacy completions and the model list", async () => {
    const e = await openai.embeddings.create({ model: "embed", input: ["a", "b"] });
    expect(e.data).toHaveLength(2);
    const c = await openai.completions.create({ model: "gpt-4o", prompt: "Once upon a time", max_tokens: 3 });
    expect(c.choices[0]!.text).toBe("Hello from the ");
    expect(c.choices[0]!.finish_reason).toBe("length");
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["gpt-4o", "embed", "tiny", "slow", "dead", "failover", "mock"]);
  });

  it("the built-in mock provider answers deterministically", async () => {
    const r = await openai.chat.completions.create({ model: "mock", ...chat("x"), max_tokens: 3 });
    expect(r.choices[0]!.message.content).toBe("one two three ");
    expect(r.choices[0]!.finish_reason).toBe("length");
    expect(r.usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
  });

  it("refuses missing and wrong keys with 401", async () => {
    const none = await post(proxy.url, "/v1/chat/completions", { model: "gpt-4o", ...chat() }, { authorization: "" });
    expect(none.status).toBe(401);
    expect(none.json.error).toMatchObject({ type: "auth_error", code: "401" });
    const wrong = client(proxy.url, "sk-wrong");
    await expect(wrong.chat.completions.create({ model: "gpt-4o", ...chat() })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
    const viaHeader = await post(proxy.url, "/v1/models", {}, { authorization: "", "x-api-key": MASTER });
    expect(viaHeader.status).toBe(405); // POST on a GET route: authenticated, then the method is refused
  });

  it("an unknown model is a 400 naming it", async () => {
    const err = await openai.chat.completions.create({ model: "nope", ...chat() }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.message).toContain("Invalid model name passed in model=nope");
  });
});

describe("upstream errors, timeouts and retries", () => {
  it("passes an upstream error through with its status and body, counting the request but no tokens", async () => {
    const before = await deploymentUse("gpt-4o");
    const err = await openai.chat.completions
      .create({ model: "gpt-4o", ...chat(), x_test: { status: 500, message: "boom" } } as never)
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(err.status).toBe(500);
    expect(err.message).toContain("boom");
    const upstream429 = await openai.chat.completions
      .create({ model: "gpt-4o", ...chat(), x_test: { status: 429, message: "slow down" } } as never)
      .catch((e) => e);
    expect(upstream429).toBeInstanceOf(OpenAI.RateLimitError);
    const after = await deploymentUse("gpt-4o");
    expect(after.requests - before.requests).toBe(2); // LiteLLM: a failed call counts against request limits
    expect(after.tokens - before.tokens).toBe(0); // ... and its reserved tokens are refunded
  });

  it("a timeout answers 408 in OpenAI's shape and refunds the tokens", async () => {
    const before = await deploymentUse("slow");
    const r = await post(proxy.url, "/v1/chat/completions", { model: "slow", ...chat(), x_test: { delayMs: 4000 } });
    expect(r.status).toBe(408);
    expect(r.json.error).toMatchObject({ type: "timeout_error", code: "408" });
    const after = await deploymentUse("slow");
    expect(after.requests - before.requests).toBe(1);
    expect(after.tokens - before.tokens).toBe(0);
  });

  it("a connection failure without another deployment is a 502; with one, the call moves there", async () => {
    const before = await deploymentUse("dead");
    const r = await post(proxy.url, "/v1/chat/completions", { model: "dead", ...chat() });
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe("502");
    const after = await deploymentUse("dead");
    expect(after.requests - before.requests).toBe(1); // the request reached no upstream, but failed: counted
    upstream.reset();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => openai.chat.completions.create({ model: "failover", ...chat() })),
    );
    expect(results).toHaveLength(20);
    expect(upstream.stats.requests).toBe(20);
  });
});

describe("limits on every request", () => {
  it("a deployment at its rpm answers 429 with LiteLLM's text and headers (RateLimitError carries them)", async () => {
    await openai.chat.completions.create({ model: "tiny", ...chat() });
    await openai.chat.completions.create({ model: "tiny", ...chat() });
    const err = await openai.chat.completions.create({ model: "tiny", ...chat() }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.status).toBe(429);
    expect(err.message).toContain("No deployments available for selected model");
    expect(err.message).toContain("Rate limit exceeded for deployment");
    expect(Number(err.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(err.headers.get("retry-after"))).toBeLessThanOrEqual(60);
    expect(err.headers.get("x-ratelimit-deployment-remaining-requests")).toBe("0");
    expect(err.headers.get("x-ratelimit-deployment-limit-requests")).toBe("2");
    expect(err.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    expect((await deploymentUse("tiny")).requests).toBe(2); // the denial consumed nothing
  });
});

describe("bad input consumes nothing and never crashes", () => {
  const cases: Array<[string, number, string | Record<string, unknown>, Record<string, string>?]> = [
    ["malformed JSON", 400, '{"model": "gpt-4o", "messages": ['],
    ["a body that is not an object", 400, "[1, 2]"],
    ["a missing model", 400, chat()],
    ["messages not an array", 400, { model: "gpt-4o", messages: "hi" }],
    ["a negative max_tokens", 400, { model: "gpt-4o", ...chat(), max_tokens: -1 }],
    ["a non-integer max_tokens", 400, { model: "gpt-4o", ...chat(), max_tokens: 1.5 }],
    ["a string max_tokens", 400, { model: "gpt-4o", ...chat(), max_tokens: "10" }],
    ["stream not a boolean", 400, { model: "gpt-4o", ...chat(), stream: "yes" }],
    ["a wrong content type", 415, { model: "gpt-4o", ...chat() }, { "content-type": "text/plain" }],
    ["a body over max_request_size_mb", 413, { model: "gpt-4o", ...chat("x".repeat(20_000)) }],
  ];
  it.each(cases)("%s → %i", async (_name, code, body, headers) => {
    const before = await deploymentUse("gpt-4o");
    upstream.reset();
    const r = await post(proxy.url, "/v1/chat/completions", body, headers);
    expect(r.status).toBe(code);
    expect(r.json.error).toMatchObject({ code: String(code) });
    expect(typeof r.json.error.message).toBe("string");
    expect(upstream.stats.requests).toBe(0);
    expect(await deploymentUse("gpt-4o")).toEqual(before);
  });

  it("unknown paths and methods answer 404 and 405; the process is still serving", async () => {
    const r404 = await fetch(`${proxy.url}/v1/nothing`);
    expect(r404.status).toBe(404);
    expect(((await r404.json()) as { error: { code: string } }).error.code).toBe("404");
    const r405 = await fetch(`${proxy.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${MASTER}` } });
    expect(r405.status).toBe(405);
    const alive = await fetch(`${proxy.url}/health/liveliness`);
    expect(await alive.json()).toBe("I'm alive!");
    expect((await fetch(`${proxy.url}/health/readiness`)).status).toBe(200);
    expect(proxy.proc.exitCode).toBeNull();
  });

  it("a client that disconnects while the upstream works aborts the upstream call", async () => {
    upstream.reset();
    const ac = new AbortController();
    const pending = fetch(`${proxy.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${MASTER}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o", ...chat(), x_test: { hang: true } }),
      signal: ac.signal,
    }).catch((e) => e);
    await eventually(() => expect(upstream.stats.inflight).toBe(1));
    ac.abort();
    await pending;
    await eventually(() => expect(upstream.stats.aborted).toBe(1));
    await eventually(async () => expect((await status(proxy.url)).inflight).toBe(0));
  });
});

describe("metrics", () => {
  it("serves prom-client metrics with requests, decisions and latencies", async () => {
    const text = await (await fetch(`${proxy.url}/metrics`)).text();
    expect(text).toContain('tollgate_requests_total{model="gpt-4o",status="200"}');
    expect(text).toContain('tollgate_decisions_total{scope="deployment",limit_type="requests",result="denied"}');
    expect(text).toContain("tollgate_added_latency_seconds_bucket");
    expect(text).toContain('tollgate_upstream_latency_seconds_bucket{le="0.001",model="gpt-4o"}');
    expect(text).toContain('tollgate_store_latency_seconds_bucket{le="0.0001",op="admit"}');
    expect(text).toContain("tollgate_store_healthy 1");
    expect(text).toContain("tollgate_inflight_requests 0");
  });
});
