/**
 * `pnpm bench fleet`: what a fleet of proxies costs its store, per proxied request. Real `tollgate` processes
 * (tooling/test-servers' fleet harness) with virtual keys on PostgreSQL, one redis-server (then a 3-master Redis
 * Cluster), the mock upstream of `pnpm bench proxy` in its own process, and a closed-loop client in this process.
 *
 * For 1 instance and for 3 instances (the same processes: "1 instance" sends only to the first), in interleaved
 * rounds: store round trips per request (INFO commandstats: EVALSHA/EVAL calls), Redis commands per request
 * (including those inside the scripts), Redis CPU per request (INFO cpu), the proxies' CPU per request (/proc), and
 * PostgreSQL's (the ledger). On this 2-core machine throughput cannot grow with instances: the projections divide a
 * core by the CPU per request. Then Redis memory per active virtual key (used_memory over 2,000 fresh keys).
 */

import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import { type Descriptor, scopes } from "@tollgate/core";
import { createGate } from "@tollgate/gate";
import { createRedisStore } from "@tollgate/store-redis";
import {
  type Fleet,
  processCpuMicros,
  startFleet,
  startPostgres,
  startRedisCluster,
  startRedisServer,
} from "@tollgate/test-servers";
import { Redis } from "ioredis";
import { commandStats, fmt, redisCpuMicros } from "./lib.js";

const ROUNDS = Number(process.env.BENCH_FLEET_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_FLEET_SECONDS ?? 4);
const CONNECTIONS = 24;
const KEYS = 200;
const TEAMS = 10;
const MEMORY_KEYS = 2_000;
const root = new URL("..", import.meta.url);

interface Sample {
  requests: number;
  errors: number;
  seconds: number;
  scriptCalls: number;
  commands: number;
  redisUs: number;
  proxyUs: number;
  pgUs: number;
}

async function usedMemory(nodes: Redis[]): Promise<number> {
  let sum = 0;
  for (const node of nodes) sum += Number(/^used_memory:(\d+)/m.exec(await node.info("memory"))?.[1]);
  return sum;
}

/** CPU of a PostgreSQL server: its postmaster (with its reaped children) and the live backends, in µs. */
function postgresCpuMicros(port: number): number {
  const pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  let postmaster: number | undefined;
  for (const pid of pids) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (cmd[0]?.endsWith("/postgres") && cmd.includes(String(port))) postmaster = Number(pid);
    } catch {
      // gone
    }
  }
  if (postmaster === undefined) return 0;
  let sum = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pid) === postmaster) sum += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 10_000;
      else if (Number(f[1]) === postmaster) sum += (Number(f[11]) + Number(f[12])) * 10_000;
    } catch {
      // gone
    }
  }
  return sum;
}

const BODY = {
  model: "bench",
  messages: [{ role: "user", content: "Hello! Please answer with a short sentence." }],
  max_tokens: 64,
};

/** A closed loop of `CONNECTIONS` clients over `instances` for `seconds`; returns the accounting of the window. */
async function sample(
  fleet: Fleet,
  keys: string[],
  instances: number[],
  seconds: number,
  redisNodes: Redis[],
  pgPort: number,
): Promise<Sample> {
  const cpu = () => fleet.instances.reduce((s, i) => s + i.cpuMicros(), 0);
  const s0 = await commandStats(redisNodes);
  const r0 = await redisCpuMicros(redisNodes);
  const p0 = cpu();
  const g0 = postgresCpuMicros(pgPort);
  let requests = 0;
  let errors = 0;
  let n = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, w) => {
      while (performance.now() < end) {
        const i = n++;
        const r = await fleet.chat(BODY, {
          key: keys[i % keys.length],
          instance: instances[(i + w) % instances.length],
        });
        if (r.status === 200) requests++;
        else errors++;
      }
    }),
  );
  const took = (performance.now() - t0) / 1000;
  const s1 = await commandStats(redisNodes);
  const r1 = await redisCpuMicros(redisNodes);
  const p1 = cpu();
  const g1 = postgresCpuMicros(pgPort);
  const d = (k: string) => (s1.get(k) ?? 0) - (s0.get(k) ?? 0);
  let commands = 0;
  for (const [k, v] of s1) if (k !== "info") commands += v - (s0.get(k) ?? 0);
  return {
    requests,
    errors,
    seconds: took,
    scriptCalls: d("evalsha") + d("eval") + d("evalsha_ro") + d("eval_ro"),
    commands,
    redisUs: r1 - r0,
    proxyUs: p1 - p0,
    pgUs: g1 - g0,
  };
}

interface Row {
  label: string;
  rps: number;
  trips: number;
  commands: number;
  redisUs: number;
  proxyUs: number;
  pgUs: number;
  errors: number;
}

function summarize(label: string, samples: Sample[]): Row {
  const per = (f: (s: Sample) => number) => median(samples.map((s) => f(s) / s.requests));
  return {
    label,
    rps: median(samples.map((s) => s.requests / s.seconds)),
    trips: per((s) => s.scriptCalls),
    commands: per((s) => s.commands),
    redisUs: per((s) => s.redisUs),
    proxyUs: per((s) => s.proxyUs),
    pgUs: per((s) => s.pgUs),
    errors: samples.reduce((a, s) => a + s.errors, 0),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Virtual keys with limits and budgets in teams with limits and budgets: what a fleet's requests look like. */
async function makeKeys(fleet: Fleet, count: number, teams: number): Promise<string[]> {
  const teamIds: string[] = [];
  for (let t = 0; t < teams; t++) {
    const team = await fleet.admin("/team/new", {
      rpm_limit: 100_000_000,
      tpm_limit: 1_000_000_000_000,
      max_budget: 1_000_000,
      budget_duration: "30d",
    });
    teamIds.push(team.team_id);
  }
  const keys: string[] = [];
  for (let i = 0; i < count; i += 20) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(20, count - i) }, (_, j) =>
        fleet.admin("/key/generate", {
          team_id: teamIds[(i + j) % teams],
          rpm_limit: 100_000_000,
          tpm_limit: 1_000_000_000_000,
          max_budget: 1_000_000,
          budget_duration: "30d",
        }),
      ),
    );
    keys.push(...batch.map((k) => k.key as string));
  }
  return keys;
}

async function startUpstream(): Promise<{ url: string; stop(): void }> {
  const proc = spawn(process.execPath, ["--import", "tsx", "bench/proxy-upstream.ts"], {
    cwd: root,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.on("exit", (code) => reject(new Error(`upstream exited ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}/v1`, stop: () => proc.kill("SIGKILL") };
}

function fleetConfig(upstream: string) {
  return {
    model_list: [
      {
        model_name: "bench",
        litellm_params: {
          model: "openai/bench-model",
          api_base: upstream,
          api_key: "sk-upstream",
          rpm: 1_000_000_000,
          tpm: 1_000_000_000_000,
          input_cost_per_token: 0.000001,
          output_cost_per_token: 0.000002,
        },
      },
    ],
    litellm_settings: { max_budget: 1_000_000, budget_duration: "30d" },
  };
}

/** Runs the 1- and 3-instance rows on one fleet, interleaved, plus the memory per key. */
async function measureFleet(
  fleet: Fleet,
  redisNodes: Redis[],
  pgPort: number,
  name: string,
): Promise<{ one: Row; three: Row; bytesPerKey: number; keysPerKey: number }> {
  const keys = await makeKeys(fleet, KEYS, TEAMS);
  // warm-up: every instance has seen every key (caches), scripts are loaded
  for (let i = 0; i < fleet.instances.length; i++) {
    await Promise.all(keys.map((k) => fleet.chat(BODY, { key: k, instance: i })));
  }
  await sample(fleet, keys, [0, 1, 2], 2, redisNodes, pgPort);
  const ones: Sample[] = [];
  const threes: Sample[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ([1, 3] as const) : ([3, 1] as const);
    for (const n of order) {
      const s = await sample(fleet, keys, n === 1 ? [0] : [0, 1, 2], SECONDS, redisNodes, pgPort);
      (n === 1 ? ones : threes).push(s);
    }
  }
  // memory per active key: 2,000 fresh keys, one request each
  const fresh = await makeKeys(fleet, MEMORY_KEYS, TEAMS);
  const countKeys = async () => {
    let n = 0;
    for (const node of redisNodes) n += await node.dbsize();
    return n;
  };
  const m0 = await usedMemory(redisNodes);
  const k0 = await countKeys();
  for (let i = 0; i < fresh.length; i += 50) {
    await Promise.all(fresh.slice(i, i + 50).map((k, j) => fleet.chat(BODY, { key: k, instance: j % 3 })));
  }
  const m1 = await usedMemory(redisNodes);
  const k1 = await countKeys();
  return {
    one: summarize(`${name}, 1 instance`, ones),
    three: summarize(`${name}, 3 instances`, threes),
    bytesPerKey: (m1 - m0) / MEMORY_KEYS,
    keysPerKey: (k1 - k0) / MEMORY_KEYS,
  };
}

/** Request shapes for the store-cost breakdown (the gate in this process, on the same standalone Redis). */
const SHAPES: Array<{ label: string; limits: (i: number) => Descriptor[]; budgets: (i: number) => unknown[] }> = [
  { label: "1 rate limit (key: rpm + tpm)", limits: (i) => [key(i)], budgets: () => [] },
  { label: "3 rate limits (key, team, deployment: rpm + tpm)", limits: (i) => three(i), budgets: () => [] },
  { label: "1 budget (key, 30 d)", limits: () => [], budgets: (i) => [keyBudget(i)] },
  {
    label: "3 rate limits + 3 budgets (key, team, global): the fleet's request",
    limits: (i) => three(i),
    budgets: (i) => [
      keyBudget(i),
      { scope: "team", id: `t${i % TEAMS}`, maxBudget: "1000000", duration: "30d" },
      { scope: "global", id: "proxy", maxBudget: "1000000", duration: "30d" },
    ],
  },
];
function key(i: number): Descriptor {
  return scopes.apiKey(`k${i % KEYS}`, { requests: 1e9, tokens: 1e12 });
}
function three(i: number): Descriptor[] {
  return [
    key(i),
    scopes.team(`t${i % TEAMS}`, { requests: 1e9, tokens: 1e12 }),
    { scope: "deployment", value: "bench", requests: 1e9, tokens: 1e12, windowMs: 60_000 },
  ];
}
function keyBudget(i: number) {
  return { scope: "key", id: `k${i % KEYS}`, maxBudget: "1000000", duration: "30d" };
}

/** Redis CPU per admit + settle of the gate for each request shape ({@link SHAPES}), `CONNECTIONS` in flight. */
async function shapeCosts(url: string, node: Redis): Promise<Array<{ label: string; redisUs: number }>> {
  const out: Array<{ label: string; redisUs: number }> = [];
  const prices = { m: { input_cost_per_token: "0.000001", output_cost_per_token: "0.000002" } };
  for (const shape of SHAPES) {
    const store = createRedisStore({ connection: url, prefix: `bench-shape-${out.length}:`, timeoutMs: 5_000 });
    try {
      const gate = createGate({ store, budgets: { prices } });
      const once = async (i: number) => {
        const a = await gate.admit({
          limits: shape.limits(i),
          tokens: { input: 12, output: 64, total: 76 },
          model: "m",
          maxTokens: 64,
          budgets: shape.budgets(i) as never,
        } as never);
        if (!a.ok) throw new Error(`bench shape denied: ${shape.label}`);
        await a.ticket.settle({ inputTokens: 12, outputTokens: 24 });
      };
      for (let i = 0; i < 500; i++) await once(i);
      const samples: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const c0 = await redisCpuMicros([node]);
        let n = 0;
        const end = performance.now() + 2_000;
        await Promise.all(
          Array.from({ length: CONNECTIONS }, async () => {
            while (performance.now() < end) await once(n++);
          }),
        );
        samples.push(((await redisCpuMicros([node])) - c0) / n);
      }
      out.push({ label: shape.label, redisUs: median(samples) });
    } finally {
      await store.close();
    }
  }
  return out;
}

export default async function run(): Promise<string> {
  const [redis, cluster, pg, upstream] = await Promise.all([
    startRedisServer(),
    startRedisCluster(),
    startPostgres(),
    startUpstream(),
  ]);
  const load0 = os.loadavg()[0]!;
  const results: Array<Awaited<ReturnType<typeof measureFleet>>> = [];
  let shapes: Array<{ label: string; redisUs: number }> = [];
  try {
    for (const kind of ["redis", "redis_cluster"] as const) {
      const fleet = await startFleet({
        instances: 3,
        store: kind === "redis" ? { type: "redis", url: redis.url } : { type: "redis_cluster", nodes: cluster.nodes },
        storeSettings: { timeout_ms: 2_000 },
        databaseUrl: await pg.createDatabase(),
        config: fleetConfig(upstream.url),
      });
      const nodes =
        kind === "redis" ? [new Redis(redis.url)] : cluster.nodes.map((n) => new Redis({ host: n.host, port: n.port }));
      try {
        results.push(
          await measureFleet(fleet, nodes, pg.port, kind === "redis" ? "standalone Redis" : "3-master Cluster"),
        );
      } finally {
        for (const n of nodes) n.disconnect();
        await fleet.stop();
      }
    }
    const admin = new Redis(redis.url);
    try {
      shapes = await shapeCosts(redis.url, admin);
    } finally {
      admin.disconnect();
    }
  } finally {
    upstream.stop();
    await Promise.all([redis.stop(), cluster.stop(), pg.stop()]);
  }
  const load1 = os.loadavg()[0]!;
  const [standalone, clustered] = results as [
    Awaited<ReturnType<typeof measureFleet>>,
    Awaited<ReturnType<typeof measureFleet>>,
  ];
  const rows = [standalone.one, standalone.three, clustered.one, clustered.three];
  const line = (r: Row) =>
    `| ${r.label} | ${fmt(r.rps)} | ${fmt(r.trips, 2)} | ${fmt(r.commands, 1)} | ${fmt(r.redisUs, 1)} | ${fmt(r.proxyUs)} | ${fmt(r.pgUs)} | ${r.errors} |`;
  const perCore = (us: number) => fmt(1e6 / us, 0);
  const s3 = standalone.three;
  const c3 = clustered.three;
  return [
    "## Fleet: store cost per proxied request (1 and 3 proxy instances)",
    "",
    `Real \`tollgate\` processes (the fleet harness of \`tooling/test-servers\`) on one redis-server, then on a 3-master Redis Cluster, with virtual keys and the ledger on PostgreSQL; the mock upstream of \`pnpm bench proxy\` in its own process; a closed loop of ${CONNECTIONS} clients in this process. ` +
      `Each request: a virtual key with rpm/tpm limits and a 30-day budget, its team's rpm/tpm limits and budget, the deployment's rpm/tpm and the global budget (${KEYS} keys in ${TEAMS} teams). ` +
      `"1 instance" sends only to the first process of the same fleet; ${ROUNDS} interleaved rounds × ${SECONDS} s, medians. ` +
      `Round trips = EVALSHA/EVAL calls (INFO commandstats); commands include those the scripts run; CPU from INFO cpu (Redis, summed over the masters), /proc (proxies, PostgreSQL with its backends). Load average ${load0.toFixed(1)} before, ${load1.toFixed(1)} after (2 shared cores: req/s is whatever was left for the proxies).`,
    "",
    "| fleet | req/s | store round trips / req | Redis commands / req | Redis CPU µs / req | proxy CPU µs / req | PostgreSQL CPU µs / req | errors |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map(line),
    "",
    `- **Store round trips per proxied request: ${fmt(standalone.one.trips, 2)} (1 instance), ${fmt(s3.trips, 2)} (3 instances) on standalone Redis** (target exactly 2: one admission, one settle); ${fmt(c3.trips, 2)} on the Cluster: one script per slot group, and the request's 6 hash tags (3 limit scopes, 3 budgets) land on 6 slots.`,
    `- Projected capacity from the CPU per request: **${perCore(standalone.one.proxyUs)} requests/s per proxy core** (one instance; ${perCore(s3.proxyUs)} with 3 instances sharing this machine's 2 cores with Redis, PostgreSQL, the upstream and the client), **${perCore(s3.redisUs)} requests/s per Redis core** (standalone, 3 instances); on the Cluster ${perCore(c3.redisUs)} requests/s per master core, about ${fmt((3 * 1e6) / c3.redisUs, 0)} requests/s for 3 masters; PostgreSQL (ledger) ${perCore(s3.pgUs)} requests/s per core.`,
    "",
    `Where the Redis CPU goes, by request shape: \`@tollgate/gate\` in this process on the same standalone Redis, ${CONNECTIONS} admit + settle in flight, ${ROUNDS} rounds × 2 s, medians (no proxy, no HTTP: the store's share alone):`,
    "",
    "| request shape | Redis CPU µs per admit + settle | requests/s per Redis core |",
    "|---|---:|---:|",
    ...shapes.map((x) => `| ${x.label} | ${fmt(x.redisUs, 1)} | ${perCore(x.redisUs)} |`),
    "",
    `- Redis memory per active virtual key (one request on each of ${fmt(MEMORY_KEYS)} fresh keys, INFO used_memory): **${fmt(standalone.bytesPerKey, 0)} bytes** on standalone (${fmt(standalone.keysPerKey, 1)} Redis keys per virtual key), ${fmt(clustered.bytesPerKey, 0)} bytes on the Cluster.`,
  ].join("\n");
}
