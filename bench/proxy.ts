/**
 * `pnpm bench proxy`: the proxy's added cost, with autocannon on loopback against one mock upstream (its own process,
 * a fixed 349-byte chat completion) in one run:
 *   (a) the upstream directly, (b) a bare node:http + undici forwarder (bench/forwarder.ts, the floor for any Node
 *   proxy), (c) Tollgate on the memory store with limits and budgets on, (d) Tollgate on Redis, (e) the Portkey gateway
 *   (`@portkey-ai/gateway` from npm).
 * Closed loop (50 connections) in interleaved rounds: throughput, p50/p99 and the serving process's CPU per request;
 * then a steady 1,000 requests/s (autocannon -R) with p99 added over direct; then streaming time to first byte.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startRedisServer } from "@tollgate/test-servers";
import autocannon from "autocannon";
import { Pool } from "undici";
import { fmt } from "./lib.js";

const ROUNDS = Number(process.env.BENCH_PROXY_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_PROXY_SECONDS ?? 5);
const CONNECTIONS = 50;
const STEADY_RATE = 1000;
const STEADY_SECONDS = 8;
const TTFB_SAMPLES = 600;
const MASTER = "sk-bench-master";
const BODY = JSON.stringify({
  model: "bench",
  messages: [{ role: "user", content: "Hello! Please answer with a short sentence." }],
  max_tokens: 64,
});
const root = fileURLToPath(new URL("..", import.meta.url));
const CLK_TCK = 100;

interface Proc {
  name: string;
  proc: ChildProcess;
  port: number;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** Spawns a process and waits until its stdout matches `ready` (group 1 = port when present). */
async function start(name: string, args: string[], ready: RegExp, env: Record<string, string> = {}): Promise<Proc> {
  const proc = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: "pipe" });
  let out = "";
  proc.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start:\n${out}`)), 30_000);
    proc.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      const m = ready.exec(out);
      if (m !== null) {
        clearTimeout(t);
        resolve(Number(m[1] ?? 0));
      }
    });
    proc.on("exit", (code) => reject(new Error(`${name} exited (${code}):\n${out}`)));
  });
  return { name, proc, port };
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

interface Target {
  key: string;
  label: string;
  url: string;
  headers: Record<string, string>;
  /** The process whose CPU is charged to this target (the proxy; for direct, the upstream). */
  pid: number;
}

interface Run {
  rps: number;
  p50: number;
  p99: number;
  cpuUs: number;
  ok: number;
  errors: number;
}

function cannon(t: Target, opts: { duration: number; connections: number; rate?: number }): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${t.url}/v1/chat/completions`,
        method: "POST",
        headers: { "content-type": "application/json", ...t.headers },
        body: BODY,
        connections: opts.connections,
        duration: opts.duration,
        overallRate: opts.rate,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
}

async function measure(t: Target, duration: number, rate?: number): Promise<Run> {
  const c0 = cpuSeconds(t.pid);
  const r = await cannon(t, { duration, connections: CONNECTIONS, rate });
  const c1 = cpuSeconds(t.pid);
  const ok = r["2xx"];
  return {
    rps: ok / duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    cpuUs: ok > 0 ? ((c1 - c0) / ok) * 1e6 : 0,
    ok,
    errors: r.errors + r.non2xx + r.timeouts,
  };
}

/**
 * Open-loop load at a fixed rate with microsecond latencies (autocannon's histogram has whole milliseconds, too coarse
 * for sub-millisecond added latency): requests are started on schedule whatever the answers, and each latency is
 * measured from its scheduled start (no coordinated omission).
 */
async function steadyRate(t: Target, rate: number, seconds: number): Promise<Run> {
  const pool = new Pool(t.url, { connections: 128, keepAliveTimeout: 30_000 });
  const headers = { "content-type": "application/json", ...t.headers };
  const lat: number[] = [];
  let errors = 0;
  const total = rate * seconds;
  const pending: Array<Promise<void>> = [];
  const one = async (scheduled: number) => {
    try {
      const r = await pool.request({ path: "/v1/chat/completions", method: "POST", headers, body: BODY });
      await r.body.text();
      if (r.statusCode === 200) lat.push(performance.now() - scheduled);
      else errors++;
    } catch {
      errors++;
    }
  };
  const c0 = cpuSeconds(t.pid);
  const t0 = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
    for (; sent < due; sent++) pending.push(one(t0 + (sent * 1000) / rate));
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  const c1 = cpuSeconds(t.pid);
  await pool.close();
  return {
    rps: lat.length / seconds,
    p50: pct(lat, 0.5),
    p99: pct(lat, 0.99),
    cpuUs: lat.length > 0 ? ((c1 - c0) / lat.length) * 1e6 : 0,
    ok: lat.length,
    errors,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Time to the first body byte of a streaming chat completion, sequentially, in ms. */
async function ttfb(t: Target, n: number): Promise<number[]> {
  const pool = new Pool(t.url, { connections: 1 });
  const body = JSON.stringify({ ...JSON.parse(BODY), stream: true });
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await pool.request({
        path: "/v1/chat/completions",
        method: "POST",
        headers: { "content-type": "application/json", ...t.headers },
        body,
      });
      let first = true;
      for await (const _ of r.body) {
        if (first) {
          out.push(performance.now() - t0);
          first = false;
        }
      }
    }
  } finally {
    await pool.close();
  }
  return out;
}

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
}

export default async function run(): Promise<string> {
  const procs: Proc[] = [];
  const redis = await startRedisServer();
  try {
    const upstream = await start("upstream", ["--import", "tsx", "bench/proxy-upstream.ts"], /PORT (\d+)/);
    procs.push(upstream);
    const origin = `http://127.0.0.1:${upstream.port}`;
    const forwarder = await start("forwarder", ["--import", "tsx", "bench/forwarder.ts", origin], /PORT (\d+)/);
    procs.push(forwarder);
    const dir = mkdtempSync(join(os.tmpdir(), "tollgate-bench-"));
    const config = (store: string) => `
model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench-model
      api_base: ${origin}/v1
      api_key: sk-upstream
      rpm: 1000000000
      tpm: 1000000000000
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
litellm_settings:
  max_budget: 1000000
  budget_duration: 30d
general_settings:
  master_key: ${MASTER}
  database_url: none   # the proxy without a database (issue 12); pnpm bench for issue 13 compares with it on
  store: ${store}
`;
    writeFileSync(join(dir, "memory.yaml"), config("memory"));
    writeFileSync(join(dir, "redis.yaml"), config(`{ type: redis, url: "${redis.url}", timeout_ms: 1000 }`));
    const cli = "apps/proxy/dist/cli.js";
    const env = { LOG_LEVEL: "warn" };
    const tgMem = await start(
      "tollgate-memory",
      [cli, "--config", join(dir, "memory.yaml"), "--port", "0", "--host", "127.0.0.1"],
      /listening on http:\/\/[^:]+:(\d+)/,
      env,
    );
    procs.push(tgMem);
    const tgRedis = await start(
      "tollgate-redis",
      [cli, "--config", join(dir, "redis.yaml"), "--port", "0", "--host", "127.0.0.1"],
      /listening on http:\/\/[^:]+:(\d+)/,
      env,
    );
    procs.push(tgRedis);
    const pkPort = await freePort();
    const portkey = await start(
      "portkey",
      ["node_modules/@portkey-ai/gateway/build/start-server.js", `--port=${pkPort}`, "--headless"],
      /Ready for connections/,
    );
    portkey.port = pkPort;
    procs.push(portkey);

    const auth = { authorization: `Bearer ${MASTER}` };
    const targets: Target[] = [
      { key: "a", label: "(a) upstream directly", url: origin, headers: {}, pid: upstream.proc.pid! },
      {
        key: "b",
        label: "(b) bare node:http + undici forwarder",
        url: `http://127.0.0.1:${forwarder.port}`,
        headers: {},
        pid: forwarder.proc.pid!,
      },
      {
        key: "c",
        label: "(c) Tollgate, memory store, limits + budgets",
        url: `http://127.0.0.1:${tgMem.port}`,
        headers: auth,
        pid: tgMem.proc.pid!,
      },
      {
        key: "d",
        label: "(d) Tollgate, Redis store, limits + budgets",
        url: `http://127.0.0.1:${tgRedis.port}`,
        headers: auth,
        pid: tgRedis.proc.pid!,
      },
      {
        key: "e",
        label: "(e) Portkey gateway 1.15 (@portkey-ai/gateway)",
        url: `http://127.0.0.1:${pkPort}`,
        headers: {
          "x-portkey-provider": "openai",
          "x-portkey-custom-host": `${origin}/v1`,
          authorization: "Bearer sk-x",
        },
        pid: portkey.proc.pid!,
      },
    ];
    // check every target answers the same completion
    for (const t of targets) {
      const r = await fetch(`${t.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...t.headers },
        body: BODY,
      });
      const text = await r.text();
      if (r.status !== 200 || !text.includes("chatcmpl-bench"))
        throw new Error(`${t.label}: ${r.status} ${text.slice(0, 200)}`);
    }
    const load0 = os.loadavg()[0]!;
    // warm-up
    for (const t of targets) await cannon(t, { duration: 2, connections: CONNECTIONS });

    // closed loop, interleaved rounds (the order rotates each round)
    const runs = new Map<string, Run[]>(targets.map((t) => [t.key, []]));
    for (let r = 0; r < ROUNDS; r++) {
      const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
      for (const t of order) runs.get(t.key)!.push(await measure(t, SECONDS));
    }
    const med = (k: string, f: (x: Run) => number) => median(runs.get(k)!.map(f));
    const ratioCB = median(runs.get("c")!.map((c, i) => c.rps / runs.get("b")![i]!.rps));
    const ratioCE = median(runs.get("c")!.map((c, i) => c.rps / runs.get("e")![i]!.rps));
    const ratioDB = median(runs.get("d")!.map((d, i) => d.rps / runs.get("b")![i]!.rps));

    // steady 1,000 requests/s, two interleaved passes per target (medians of the passes)
    const steadyRuns = new Map<string, Run[]>([
      ["a", []],
      ["b", []],
      ["c", []],
      ["d", []],
    ]);
    for (let pass = 0; pass < 2; pass++) {
      for (const k of pass === 0 ? ["a", "b", "c", "d"] : ["d", "c", "b", "a"]) {
        steadyRuns.get(k)!.push(await steadyRate(targets.find((t) => t.key === k)!, STEADY_RATE, STEADY_SECONDS / 2));
      }
    }
    const steady = new Map<string, Run>();
    for (const [k, rs] of steadyRuns) {
      steady.set(k, {
        rps: median(rs.map((x) => x.rps)),
        p50: median(rs.map((x) => x.p50)),
        p99: median(rs.map((x) => x.p99)),
        cpuUs: median(rs.map((x) => x.cpuUs)),
        ok: rs.reduce((a, x) => a + x.ok, 0),
        errors: rs.reduce((a, x) => a + x.errors, 0),
      });
    }

    // streaming time to first byte, interleaved in blocks (direct, the bare forwarder, Tollgate)
    const tt = new Map<string, number[]>([
      ["a", []],
      ["b", []],
      ["c", []],
    ]);
    for (let i = 0; i < 6; i++) {
      for (const k of i % 2 === 0 ? ["a", "b", "c"] : ["c", "b", "a"]) {
        tt.get(k)!.push(...(await ttfb(targets.find((t) => t.key === k)!, TTFB_SAMPLES / 6)));
      }
    }
    const load1 = os.loadavg()[0]!;

    const rows = targets.map((t) => {
      const n = runs.get(t.key)!;
      return `| ${t.label} | ${fmt(med(t.key, (x) => x.rps))} | ${fmt(
        med(t.key, (x) => x.p50),
        2,
      )} | ${fmt(
        med(t.key, (x) => x.p99),
        2,
      )} | ${fmt(med(t.key, (x) => x.cpuUs))} | ${n.reduce((a, x) => a + x.errors, 0)} |`;
    });
    const s = (k: string) => steady.get(k)!;
    const steadyRows = ["a", "b", "c", "d"].map((k) => {
      const t = targets.find((x) => x.key === k)!;
      return `| ${t.label} | ${fmt(s(k).rps)} | ${fmt(s(k).p50, 3)} | ${fmt(s(k).p99, 3)} | ${k === "a" ? "—" : fmt(s(k).p99 - s("a").p99, 3)} | ${fmt(s(k).cpuUs)} |`;
    });
    const ta = tt.get("a")!;
    const tb = tt.get("b")!;
    const tc = tt.get("c")!;
    const addedP50 = pct(tc, 0.5) - pct(ta, 0.5);
    const addedP99 = pct(tc, 0.99) - pct(ta, 0.99);
    const p99Added = s("c").p99 - s("a").p99;
    return [
      "## Proxy: added cost over a mock upstream (autocannon, loopback)",
      "",
      `One mock upstream process (a fixed 349-byte chat completion), autocannon in this process, ${CONNECTIONS} connections, POST /v1/chat/completions.`,
      `Closed loop: ${ROUNDS} interleaved rounds × ${SECONDS} s per target (order rotated each round), medians. CPU per request = the serving process's user+system CPU (/proc) over its 2xx answers.`,
      `Tollgate (c, d): master-key auth, a deployment with rpm and tpm limits, prices, and a global budget (reserve mode): one admission and one settle per request. Load average (1 min) ${load0.toFixed(2)} before, ${load1.toFixed(2)} after (2 shared cores).`,
      "",
      "| target | req/s | p50 ms | p99 ms | CPU µs/req | errors |",
      "|---|---:|---:|---:|---:|---:|",
      ...rows,
      "",
      `- **Tollgate (memory) / bare forwarder: ${(ratioCB * 100).toFixed(0)}%** of its throughput (target ≥ 75%); Tollgate (Redis) / forwarder: ${(ratioDB * 100).toFixed(0)}%.`,
      `- **Tollgate (memory) / Portkey: ${ratioCE.toFixed(1)}×** (target ≥ 8×).`,
      "",
      `Steady ${fmt(STEADY_RATE)} requests/s, open loop (an undici client in this process starts requests on schedule and measures each from its scheduled start, in µs: autocannon -R reports whole milliseconds), 2 interleaved passes × ${STEADY_SECONDS / 2} s per target, medians:`,
      "",
      "| target | req/s | p50 ms | p99 ms | p99 added over direct, ms | CPU µs/req |",
      "|---|---:|---:|---:|---:|---:|",
      ...steadyRows,
      "",
      `- **p99 added by Tollgate (memory) at ${fmt(STEADY_RATE)} req/s: ${fmt(p99Added, 3)} ms** (target < 1 ms); p50 added ${fmt(s("c").p50 - s("a").p50, 3)} ms.`,
      "",
      `Streaming time to first byte (${TTFB_SAMPLES} sequential streaming requests per target, interleaved in blocks): direct p50 ${fmt(pct(ta, 0.5), 3)} ms / p99 ${fmt(pct(ta, 0.99), 3)} ms; bare forwarder p50 ${fmt(pct(tb, 0.5), 3)} ms / p99 ${fmt(pct(tb, 0.99), 3)} ms; Tollgate (memory) p50 ${fmt(pct(tc, 0.5), 3)} ms / p99 ${fmt(pct(tc, 0.99), 3)} ms. **Added by Tollgate over direct: p50 ${fmt(addedP50, 3)} ms, p99 ${fmt(addedP99, 3)} ms** (target < 1 ms); over the forwarder: p50 ${fmt(pct(tc, 0.5) - pct(tb, 0.5), 3)} ms.`,
    ].join("\n");
  } finally {
    for (const p of procs) p.proc.kill("SIGKILL");
    await redis.stop();
  }
}
