/**
 * `pnpm bench management`: the proxy with its database.
 * 1. `/key/generate` latency over HTTP (sequential calls, each timed) on SQLite and on PostgreSQL.
 * 2. Proxy throughput with a virtual key (limits and a budget on the key, the spend ledger writing every request) on
 *    SQLite and on PostgreSQL, as a ratio to the same proxy without a database (master key), in one run,
 *    interleaved rounds, the same mock upstream; plus the proxy process's CPU per request.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type OpenAIUpstream,
  type ProxyProcess,
  startOpenAIUpstream,
  startPostgres,
  startProxyProcess,
} from "@tollgate/test-servers";
import { fmt, percentiles } from "./lib.js";

const MASTER = "sk-bench-master";
const CONNECTIONS = 50;
const ROUND_MS = 3_000;
const ROUNDS = 5;
const KEYGEN_CALLS = 400;

const FIXED = JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: 1,
  model: "bench",
  choices: [
    { index: 0, message: { role: "assistant", content: "Hello from the benchmark upstream." }, finish_reason: "stop" },
  ],
  usage: { prompt_tokens: 8, completion_tokens: 7, total_tokens: 15 },
});
const BODY = JSON.stringify({ model: "bench", messages: [{ role: "user", content: "Hello there" }], max_tokens: 16 });

/**
 * Without a database the master key's requests carry the deployment's rpm/tpm and the global budget; with one, the
 * virtual key's rpm/tpm and budget instead: the same admission work (one descriptor with two limits, one budget), so
 * the difference is what the database costs (key lookup, identity, spend records and the ledger).
 */
function config(upstream: OpenAIUpstream, database: string): string {
  const noDb = database === "none";
  const limits = noDb ? ", rpm: 100000000, tpm: 1000000000" : "";
  return `
model_list:
  - model_name: bench
    litellm_params: { model: openai/bench, api_base: ${upstream.apiBase}, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002${limits} }
general_settings:
  master_key: ${MASTER}
  database_url: ${database}
${noDb ? "litellm_settings:\n  max_budget: 1000000\n" : ""}`;
}

/** One HTTP call on a keep-alive agent; resolves with the status. */
function call(
  agent: Agent,
  url: URL,
  method: string,
  path: string,
  key: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** CPU seconds (user + system) a process used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
  return ticks / 100;
}

/** Closed-loop load: `CONNECTIONS` callers for `ms`; answers requests/s, errors and the proxy's CPU per request. */
async function load(proxy: ProxyProcess, key: string, ms: number) {
  const url = new URL(proxy.url);
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  let ok = 0;
  let errors = 0;
  const cpu0 = cpuSeconds(proxy.proc.pid!);
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end) {
        const r = await call(agent, url, "POST", "/v1/chat/completions", key, BODY).catch(() => ({
          status: 0,
          text: "",
        }));
        if (r.status === 200) ok++;
        else errors++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(proxy.proc.pid!) - cpu0;
  agent.destroy();
  return { perSecond: ok / seconds, errors, cpuUsPerRequest: ok === 0 ? 0 : (cpu / ok) * 1e6 };
}

async function keygenLatency(proxy: ProxyProcess) {
  const url = new URL(proxy.url);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const samples: number[] = [];
  for (let i = 0; i < KEYGEN_CALLS + 20; i++) {
    const t = performance.now();
    const r = await call(
      agent,
      url,
      "POST",
      "/key/generate",
      MASTER,
      JSON.stringify({ max_budget: 10, rpm_limit: 100, key_alias: `bench-${i}-${Date.now()}` }),
    );
    const us = (performance.now() - t) * 1000;
    if (r.status !== 200) throw new Error(`/key/generate answered ${r.status}: ${r.text}`);
    if (i >= 20) samples.push(us); // the first calls warm the connection and the JIT
  }
  agent.destroy();
  const { p50us, p99us } = percentiles(samples);
  return { p50us, p99us, meanUs: samples.reduce((a, b) => a + b, 0) / samples.length };
}

async function virtualKey(proxy: ProxyProcess): Promise<string> {
  const r = await call(
    new Agent(),
    new URL(proxy.url),
    "POST",
    "/key/generate",
    MASTER,
    JSON.stringify({ max_budget: 1000000, rpm_limit: 100000000, tpm_limit: 1000000000 }),
  );
  return (JSON.parse(r.text) as { key: string }).key;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export default async function run(): Promise<string> {
  const upstream = await startOpenAIUpstream({ fixedResponse: FIXED });
  const pg = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), "tollgate-bench-db-"));
  const procs: ProxyProcess[] = [];
  try {
    const pgUrl = await pg.createDatabase("bench");
    const start = async (db: string) => {
      const p = await startProxyProcess({ config: config(upstream, db), env: { LOG_LEVEL: "warn" } });
      procs.push(p);
      return p;
    };
    const none = await start("none");
    const sqlite = await start(join(dir, "tollgate.db"));
    const postgres = await start(pgUrl);

    const kgSqlite = await keygenLatency(sqlite);
    const kgPg = await keygenLatency(postgres);

    const keys = { none: MASTER, sqlite: await virtualKey(sqlite), postgres: await virtualKey(postgres) };
    const targets = [
      ["no database: master key, deployment rpm/tpm + global budget", none, keys.none],
      ["SQLite: virtual key with rpm/tpm + budget", sqlite, keys.sqlite],
      ["PostgreSQL: virtual key with rpm/tpm + budget", postgres, keys.postgres],
    ] as const;
    // warm-up
    for (const [, p, k] of targets) await load(p, k, 1_000);
    const results = new Map<string, Array<Awaited<ReturnType<typeof load>>>>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, p, k] of targets) {
        const list = results.get(name) ?? [];
        list.push(await load(p, k, ROUND_MS));
        results.set(name, list);
      }
    }
    const base = median(results.get(targets[0][0])!.map((r) => r.perSecond));
    const cpuOf = (name: string) => median(results.get(name)!.map((r) => r.cpuUsPerRequest));
    const cpuRatio = (prefix: string) => cpuOf(targets[0][0]) / cpuOf(targets.find(([n]) => n.startsWith(prefix))![0]);
    const rows = targets.map(([name]) => {
      const rs = results.get(name)!;
      const rps = median(rs.map((r) => r.perSecond));
      const cpu = median(rs.map((r) => r.cpuUsPerRequest));
      const errors = rs.reduce((a, r) => a + r.errors, 0);
      return `| ${name} | ${fmt(rps)} | ${fmt((rps / base) * 100, 1)} % | ${fmt(cpu)} µs | ${errors} |`;
    });
    return [
      "## Proxy with the database (management API, virtual keys, spend ledger)",
      "",
      `\`/key/generate\` over HTTP, one call at a time (${KEYGEN_CALLS} timed calls after 20 warm-up calls), body with`,
      "`max_budget`, `rpm_limit` and a unique `key_alias`:",
      "",
      "| database | p50 | p99 | mean |",
      "|---|---|---|---|",
      `| SQLite (file, WAL) | ${fmt(kgSqlite.p50us / 1000, 2)} ms | ${fmt(kgSqlite.p99us / 1000, 2)} ms | ${fmt(kgSqlite.meanUs / 1000, 2)} ms |`,
      `| PostgreSQL 15 (loopback) | ${fmt(kgPg.p50us / 1000, 2)} ms | ${fmt(kgPg.p99us / 1000, 2)} ms | ${fmt(kgPg.meanUs / 1000, 2)} ms |`,
      "",
      `Throughput: ${CONNECTIONS} keep-alive connections (node:http client), closed loop, ${ROUNDS} interleaved rounds of`,
      `${ROUND_MS / 1000} s per proxy (medians), the same mock upstream (fixed 349-byte-class completion), memory store.`,
      "Both sides admit one descriptor with an rpm and a tpm limit and one budget per request: without a database the",
      "deployment's limits and the global budget, with one the virtual key's; with the database every request also",
      "resolves its key (cached), emits its spend record and gets its spend-log row written (batched, at most every",
      "second). CPU: the proxy process's user + system time per request (the load generator and the upstream run in",
      "the benchmark process, so on a loaded 2-core machine CPU per request is the steadier figure).",
      "",
      "| proxy | requests/s | vs no database | proxy CPU / request | errors |",
      "|---|---|---|---|---|",
      ...rows,
      "",
      `Proxy CPU per request, database vs none: SQLite ${fmt(cpuRatio("SQLite") * 100, 1)} % of the throughput a`,
      `saturated proxy core would give without the database, PostgreSQL ${fmt(cpuRatio("PostgreSQL") * 100, 1)} %`,
      "(cpu(none) / cpu(db)). Target: ≥ 90 % of the no-database proxy.",
    ].join("\n");
  } finally {
    for (const p of procs) await p.stop().catch(() => {});
    await upstream.close();
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
