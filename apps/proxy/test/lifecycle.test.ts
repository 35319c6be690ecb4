/**
 * The CLI as a process: the bundled example (what `pnpm start` runs), config errors (exit code and message), and a
 * graceful SIGTERM with requests in flight, checked from a second proxy process sharing the same Redis.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type OpenAIUpstream, runProxyCli, startOpenAIUpstream, startProxyProcess } from "@tollgate/test-servers";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { chat, client, eventually, MASTER, status } from "./helpers.js";

let upstream: OpenAIUpstream;
beforeAll(async () => {
  upstream = await startOpenAIUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

function file(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-cfg-"));
  const p = join(dir, "config.yaml");
  writeFileSync(p, text);
  return p;
}

describe("the CLI", () => {
  it("runs the bundled example offline, and the printed curl works as printed", async () => {
    const { spawn } = await import("node:child_process");
    const { PROXY_CLI } = await import("@tollgate/test-servers");
    const proc = spawn(process.execPath, [PROXY_CLI, "--port", "0", "--host", "127.0.0.1"], {
      env: { ...process.env, LITELLM_MASTER_KEY: "", TOLLGATE_CONFIG: "", LOG_LEVEL: "warn" },
    });
    let out = "";
    proc.stdout.on("data", (c: Buffer) => (out += c.toString()));
    try {
      await eventually(() => expect(out).toContain("Ctrl-C stops it."), 20_000);
      expect(out).toContain("bundled example");
      expect(out).toMatch(/master key: sk-\S+ generated for this run/);
      // run the printed curl command's request: same URL, header and body
      const url = /curl (\S+)/.exec(out)![1]!;
      const key = /Authorization: Bearer (\S+)'/.exec(out)![1]!;
      const body = /-d '(.+)'/.exec(out)![1]!;
      const res = await fetch(url, {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body,
      });
      expect(res.status).toBe(200);
      const json = (await res.json()) as { choices: Array<{ message: { content: string } }> };
      expect(json.choices[0]!.message.content).toContain("Hello from Tollgate!");
      const code = await new Promise<number | null>((resolve) => {
        proc.on("exit", (c) => resolve(c));
        proc.kill("SIGINT");
      });
      expect(code).toBe(0);
    } finally {
      proc.kill("SIGKILL");
    }
  }, 60_000);

  it("a bad config stops the proxy with exit code 1 and the field path", async () => {
    const bad = file(`model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/x\n      rpm: -5\n`);
    const r = await runProxyCli(["--config", bad, "--port", "0"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("model_list[0].litellm_params.rpm: expected a non-negative integer, got -5");
    const missing = file(
      `model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/x\n      api_key: os.environ/NOPE_KEY\n`,
    );
    const m = await runProxyCli(["--config", missing, "--port", "0"], { NOPE_KEY: undefined });
    expect(m.code).toBe(1);
    expect(m.stderr).toContain("the environment variable NOPE_KEY is not set");
    const none = await runProxyCli(["--config", "/nonexistent/config.yaml"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("cannot read the file");
    const flag = await runProxyCli(["--bogus"]);
    expect(flag.code).toBe(2);
  }, 60_000);

  it("warns about unsupported LiteLLM keys in one line and starts anyway", async () => {
    const p = await startProxyProcess({
      config: `model_list:\n  - model_name: x\n    litellm_params: { model: openai/x, api_base: ${upstream.apiBase} }\nlitellm_settings:\n  drop_params: true\n  callbacks: ["x"]\n`,
    });
    try {
      const lines = p
        .stdout()
        .split("\n")
        .filter((l) => l.includes("does not support yet"));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain("litellm_settings.drop_params, litellm_settings.callbacks");
      expect(p.stdout()).toContain("none: the proxy is OPEN");
    } finally {
      await p.stop();
    }
  }, 60_000);
});

describe("graceful shutdown", () => {
  it("SIGTERM finishes in-flight requests, settles them and exits 0 (checked from a second instance)", async () => {
    const prefix = `tg-term-${randomBytes(4).toString("hex")}:`;
    const config = `
model_list:
  - model_name: m
    litellm_params:
      model: openai/m
      api_base: ${upstream.apiBase}
      rpm: 1000
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
litellm_settings:
  max_budget: 100
  budget_duration: 1d
general_settings:
  master_key: ${MASTER}
  store: { type: redis, url: "${inject("redis").url}", timeout_ms: 5000, prefix: "${prefix}" }
`;
    const a = await startProxyProcess({ config });
    const b = await startProxyProcess({ config });
    try {
      upstream.reset();
      const calls = Array.from({ length: 5 }, () =>
        client(a.url).chat.completions.create({ model: "m", ...chat("hi there"), x_test: { delayMs: 1500 } } as never),
      );
      await eventually(() => expect(upstream.stats.inflight).toBe(5));
      a.proc.kill("SIGTERM");
      const results = await Promise.allSettled(calls);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
      expect(await a.exited).toBe(0);
      const s = await status(b.url);
      const used = s.deployments[0].limits.find((l: { type: string }) => l.type === "requests").used;
      expect(used).toBe(5);
      const budget = s.budgets[0];
      expect(budget.reserved).toBe(0);
      // each call: prompt "hi there" → 2 tokens, 8 completion tokens
      expect(budget.spend).toBe(5 * (2 * 1000 + 8 * 2000));
    } finally {
      await a.stop("SIGKILL");
      await b.stop();
    }
  }, 90_000);

  it("after the grace period, in-flight calls are cancelled and refunded (503), and the process exits", async () => {
    const prefix = `tg-grace-${randomBytes(4).toString("hex")}:`;
    const config = `
model_list:
  - model_name: m
    litellm_params: { model: openai/m, api_base: ${upstream.apiBase}, rpm: 1000, tpm: 1000000 }
general_settings:
  master_key: ${MASTER}
  shutdown_grace_period: 1
  store: { type: redis, url: "${inject("redis").url}", timeout_ms: 5000, prefix: "${prefix}" }
`;
    const a = await startProxyProcess({ config });
    const b = await startProxyProcess({ config });
    try {
      upstream.reset();
      const calls = Array.from({ length: 3 }, () =>
        client(a.url).chat.completions.create({ model: "m", ...chat(), x_test: { hang: true } } as never),
      );
      await eventually(() => expect(upstream.stats.inflight).toBe(3));
      a.proc.kill("SIGTERM");
      const results = await Promise.allSettled(calls);
      expect(results.map((r) => (r.status === "rejected" ? (r.reason as { status?: number }).status : 200))).toEqual([
        503, 503, 503,
      ]);
      expect(await a.exited).toBe(0);
      const lim = (await status(b.url)).deployments[0].limits;
      expect(lim.find((l: { type: string }) => l.type === "requests").used).toBe(3); // failed: counted
      expect(lim.find((l: { type: string }) => l.type === "tokens").used).toBe(0); // tokens refunded
    } finally {
      await a.stop("SIGKILL");
      await b.stop();
    }
  }, 90_000);
});

describe("stores", () => {
  it("runs on a 3-master Redis Cluster (keys of one request on several slots)", async () => {
    const nodes = inject("redisCluster")
      .nodes.map((n) => `"${n.host}:${n.port}"`)
      .join(", ");
    const p = await startProxyProcess({
      config: `
model_list:
  - model_name: m
    litellm_params: { model: openai/m, api_base: ${upstream.apiBase}, rpm: 3, input_cost_per_token: 0.000001 }
litellm_settings: { max_budget: 100, budget_duration: 1d, max_end_user_budget: 1 }
general_settings:
  master_key: ${MASTER}
  store: { type: redis_cluster, nodes: [${nodes}], timeout_ms: 5000, prefix: "tg-cl-${randomBytes(4).toString("hex")}:" }
`,
    });
    try {
      const c = client(p.url);
      const ok = await Promise.allSettled(
        Array.from({ length: 5 }, () => c.chat.completions.create({ model: "m", ...chat(), user: "u1" })),
      );
      expect(ok.filter((r) => r.status === "fulfilled")).toHaveLength(3);
      const s = await status(p.url, "u1");
      expect(s.budgets.every((b: { reserved: number }) => b.reserved === 0)).toBe(true);
      // global and end-user budgets: 3 calls × 2 prompt tokens ("Hello there") × $0.000001
      expect(s.budgets.map((b: { spend: number }) => b.spend)).toEqual([6000, 6000]);
    } finally {
      await p.stop();
    }
  }, 60_000);

  it("answers 503 in OpenAI's shape while the store is down under the closed policy (database on), and keeps serving health", async () => {
    const { createServer } = await import("node:net");
    const dead = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const p = await startProxyProcess({
      config: `
model_list:
  - model_name: m
    litellm_params: { model: openai/m, api_base: ${upstream.apiBase}, rpm: 100 }
general_settings:
  master_key: ${MASTER}
  store: { type: redis, url: "redis://127.0.0.1:${dead}", failure_policy: closed, timeout_ms: 200 }
`,
    });
    try {
      upstream.reset();
      const r = await fetch(`${p.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${MASTER}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "m", ...chat() }),
      });
      expect(r.status).toBe(503);
      const body = (await r.json()) as { error: { type: string; code: string } };
      expect(body.error).toMatchObject({ type: "service_unavailable", code: "503" });
      expect(upstream.stats.requests).toBe(0);
      expect((await fetch(`${p.url}/health/liveliness`)).status).toBe(200);
      expect((await fetch(`${p.url}/health/readiness`)).status).toBe(503);
    } finally {
      await p.stop();
    }
  }, 60_000);
});

describe("client disconnect mid-body", () => {
  it("a client that sends half a body and goes away consumes nothing and the proxy keeps serving", async () => {
    const { connect } = await import("node:net");
    const p = await startProxyProcess({
      config: `
model_list:
  - model_name: m
    litellm_params: { model: openai/m, api_base: ${upstream.apiBase}, rpm: 100 }
general_settings:
  master_key: ${MASTER}
`,
    });
    try {
      upstream.reset();
      for (let i = 0; i < 5; i++) {
        await new Promise<void>((resolve) => {
          const sock = connect(p.port, "127.0.0.1", () => {
            sock.write(
              `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${MASTER}\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"model": "m", "mess`,
            );
            setTimeout(() => {
              sock.destroy();
              resolve();
            }, 50);
          });
        });
      }
      const s = await status(p.url);
      expect(s.deployments[0].limits.find((l: { type: string }) => l.type === "requests").used).toBe(0);
      expect(s.inflight).toBe(0);
      expect(upstream.stats.requests).toBe(0);
      const ok = await client(p.url).chat.completions.create({ model: "m", ...chat() });
      expect(ok.choices).toHaveLength(1);
    } finally {
      await p.stop();
    }
  }, 60_000);
});
