/**
 * Redis store: admit + settle of a request under 3 scopes (api key, team, user; requests + tokens limits each) on the
 * realistic population (bench/population.ts: 10,000 keys / 100 teams / 1,000 users drawn from a fixed seed, token
 * estimates 100-999, actual usage 1-1.2x), 32 in flight, against LiteLLM v3's own Lua scripts doing the identical work
 * (bench/litellm.ts) and rate-limiter-flexible's RateLimiterRedis. Every side runs in alternating slices of one run
 * on the same redis-server and client configuration; Redis CPU per operation comes from `INFO cpu` around each slice
 * (load-independent, unlike the rate), this process's from `process.cpuUsage`. Starts its own redis-server processes
 * (tooling/test-servers).
 */
import { createLimiter, type Reservation, scopes } from "@tollgate/core";
import { createGate } from "@tollgate/gate";
import { createRedisStore } from "@tollgate/store-redis";
import { startRedisCluster, startRedisServer } from "@tollgate/test-servers";
import { Cluster, Redis } from "ioredis";
import { RateLimiterRedis } from "rate-limiter-flexible";
import { commandStats, fmt, HIGH, measureConcurrent, percentiles, redisCpuMicros } from "./lib.js";
import { type LiteLLMScripts, loadLiteLLMScripts } from "./litellm.js";
import { BENCH_PRICES, type DrawnRequest, fullGateRequest, population } from "./population.js";

const CONCURRENCY = 32;
/** Alternating slices: every side runs once per round, the order rotating each round. */
const ROUNDS = 6;
const SLICE_SECONDS = 1.5;
const WARMUP = 3_000;
const STEADY_RATE = 5_000;
const STEADY_SECONDS = 5;
/** LiteLLM's descriptors use a 60 s window (its default `window_size`). */
const WINDOW_S = 60;

const uid = () => Math.random().toString(36).slice(2, 8);

type Op = (i: number) => Promise<unknown>;

const scriptCalls = (a: Map<string, number>, b: Map<string, number>) =>
  (b.get("evalsha") ?? 0) - (a.get("evalsha") ?? 0) + (b.get("eval") ?? 0) - (a.get("eval") ?? 0);

interface SideFigures {
  name: string;
  perSecond: number;
  /** Redis CPU µs per operation, and this process's. */
  redisUs: number;
  nodeUs: number;
  p50us: number;
  p99us: number;
}

/**
 * Runs every side in alternating slices (`ROUNDS` × `SLICE_SECONDS` each, order rotating), so all of them see the
 * same machine. Answers each side's totals and, per round, each side's rate over the first side's.
 */
async function interleaved(
  admin: Redis,
  sides: Array<{ name: string; op: Op }>,
): Promise<{ figures: SideFigures[]; ratios: number[][] }> {
  const next = sides.map(() => 0);
  for (const [s, side] of sides.entries()) {
    for (; next[s]! < WARMUP; next[s]!++) await side.op(next[s]!);
  }
  const acc = sides.map(() => ({ ops: 0, secs: 0, redis: 0, node: 0, samples: [] as number[] }));
  const ratios: number[][] = sides.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    const order = sides.map((_, s) => (s + r) % sides.length);
    const rate: number[] = [];
    for (const s of order) {
      const base = next[s]!;
      const r0 = (await redisCpuMicros([admin])) / 1e6;
      const n0 = process.cpuUsage();
      const m = await measureConcurrent((i) => sides[s]!.op(base + i), CONCURRENCY, SLICE_SECONDS);
      const n = process.cpuUsage(n0);
      const r1 = (await redisCpuMicros([admin])) / 1e6;
      next[s] = base + m.calls + CONCURRENCY;
      const a = acc[s]!;
      a.ops += m.ops;
      a.secs += m.seconds;
      a.redis += r1 - r0;
      a.node += (n.user + n.system) / 1e6;
      a.samples.push(m.p50us, m.p99us);
      rate[s] = m.perSecond;
    }
    for (let s = 0; s < sides.length; s++) ratios[s]!.push(rate[s]! / rate[0]!);
  }
  const figures = sides.map((side, s) => {
    const a = acc[s]!;
    const p = a.samples;
    return {
      name: side.name,
      perSecond: a.ops / a.secs,
      redisUs: (a.redis * 1e6) / a.ops,
      nodeUs: (a.node * 1e6) / a.ops,
      // Medians over the slices of the per-slice p50 and p99.
      p50us: median(p.filter((_, i) => i % 2 === 0)),
      p99us: median(p.filter((_, i) => i % 2 === 1)),
    };
  });
  return { figures, ratios };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// ---- the sides ----

/** Tollgate through the documented API: `createLimiter` over `createRedisStore`, descriptors from `scopes`. */
function tollgate(client: Redis | Cluster, pop: (i: number) => DrawnRequest): Op {
  const limiter = createLimiter({ store: createRedisStore({ client, prefix: `bench:${uid()}:`, timeoutMs: 5_000 }) });
  const limits = { requests: HIGH, tokens: HIGH };
  return async (i) => {
    const p = pop(i);
    const a = await limiter.admit(
      [scopes.apiKey(p.apiKey, limits), scopes.team(p.team, limits), scopes.user(p.user, limits)],
      { tokens: p.estimate },
    );
    if (!a.ok) throw new Error("bench limits must never deny");
    await a.reservation.settle({ tokens: p.actual });
  };
}

/**
 * LiteLLM v3's scripts on the identical work, with the KEYS/ARGV LiteLLM builds. `oneCall`: the admission of the 6
 * descriptors (3 scopes × requests + tokens, each pair `{scope:value}:window` + `{scope:value}:<type>`) in one
 * `CHECK_AND_INCREMENT_BY_N_SCRIPT`, the settle of the 3 token counters by actual − estimate in one
 * `TOKEN_INCREMENT_SCRIPT` (the fewest calls its scripts allow, on one Redis). Otherwise as LiteLLM calls them on a
 * Cluster-safe path: one check per descriptor's hash tag (3) and one token increment per hash tag (3).
 */
function litellm(
  client: Redis,
  scripts: LiteLLMScripts,
  shas: [string, string],
  pop: (i: number) => DrawnRequest,
  oneCall: boolean,
): Op {
  const [checkSha, incSha] = shas;
  const prefix = `bench:${uid()}:ll:`;
  return async (i) => {
    const p = pop(i);
    const bases = [`{api_key:${p.apiKey}}`, `{team:${p.team}}`, `{user:${p.user}}`].map((b) => prefix + b);
    const d = p.actual - p.estimate;
    const admitOne = async (keys: string[], args: Array<string | number>) => {
      const r = (await client.evalsha(checkSha, keys.length, ...keys, ...args)) as number[];
      if (r[0] !== 0) throw new Error("bench limits must never deny");
    };
    const descriptor = (b: string, keys: string[], args: Array<string | number>) => {
      keys.push(`${b}:window`, `${b}:requests`, `${b}:window`, `${b}:tokens`);
      args.push(HIGH, 1, WINDOW_S, WINDOW_S, HIGH, p.estimate, WINDOW_S, WINDOW_S);
    };
    if (oneCall) {
      const keys: string[] = [];
      const args: Array<string | number> = [];
      for (const b of bases) descriptor(b, keys, args);
      await admitOne(keys, args);
      const tk = bases.map((b) => `${b}:tokens`);
      await client.evalsha(incSha, 3, ...tk, d, WINDOW_S, d, WINDOW_S, d, WINDOW_S);
    } else {
      await Promise.all(
        bases.map((b) => {
          const keys: string[] = [];
          const args: Array<string | number> = [];
          descriptor(b, keys, args);
          return admitOne(keys, args);
        }),
      );
      await Promise.all(bases.map((b) => client.evalsha(incSha, 1, `${b}:tokens`, d, WINDOW_S)));
    }
  };
}

/**
 * The full request through `@tollgate/gate`: the same 3 scopes (max parallel on the key too) and 3 budgets (key,
 * team, user), one admission (limits, lease, cost holds, ticket) and one settle. More work than the other rows: its
 * Redis CPU is compared with LiteLLM's limits-only pair.
 */
function fullRequest(client: Redis | Cluster, pop: (i: number) => DrawnRequest): Op {
  const gate = createGate({
    store: createRedisStore({ client, prefix: `bench:${uid()}:`, timeoutMs: 5_000 }),
    budgets: { prices: BENCH_PRICES },
  });
  return async (i) => {
    const { request, usage } = fullGateRequest(pop(i), HIGH);
    const a = await gate.admit(request);
    if (!a.ok) throw new Error("bench limits must never deny");
    await a.ticket.settle(usage);
  };
}

/** rate-limiter-flexible on the identical work: 6 `consume`s, then the 3 token corrections (`penalty` / `reward`). */
function flexible(client: Redis, pop: (i: number) => DrawnRequest): Op {
  const prefix = `bench:${uid()}:rlf`;
  const opts = { storeClient: client, points: HIGH, duration: WINDOW_S };
  const requests = [0, 1, 2].map((n) => new RateLimiterRedis({ ...opts, keyPrefix: `${prefix}:r${n}` }));
  const tokens = [0, 1, 2].map((n) => new RateLimiterRedis({ ...opts, keyPrefix: `${prefix}:t${n}` }));
  return async (i) => {
    const p = pop(i);
    const k = [p.apiKey, p.team, p.user];
    await Promise.all(k.flatMap((key, n) => [requests[n]!.consume(key, 1), tokens[n]!.consume(key, p.estimate)]));
    const d = p.actual - p.estimate;
    await Promise.all(k.map((key, n) => (d >= 0 ? tokens[n]!.penalty(key, d) : tokens[n]!.reward(key, -d))));
  };
}

async function rawEvalsha(client: Redis | Cluster): Promise<Op> {
  const script = "return redis.call('INCR', KEYS[1])";
  const sha = (await (client instanceof Cluster
    ? Promise.all(client.nodes("master").map((n) => n.script("LOAD", script))).then((r) => r[0])
    : client.script("LOAD", script))) as string;
  const prefix = `bench:${uid()}:raw:`;
  return (i) => client.evalsha(sha, 1, `${prefix}{${i % 1000}}`);
}

/** Round trips and commands per admission and per settle (INFO commandstats deltas, sequential requests). */
async function roundTrips(
  op: (i: number) => { admit: () => Promise<unknown>; settle: () => Promise<unknown> },
  admin: Redis,
  n = 1000,
): Promise<{ admit: number; settle: number; commands: number }> {
  const pairs = Array.from({ length: n }, (_, i) => op(i));
  const s0 = await commandStats([admin]);
  for (const p of pairs) await p.admit();
  const s1 = await commandStats([admin]);
  for (const p of pairs) await p.settle();
  const s2 = await commandStats([admin]);
  let commands = 0;
  for (const [k, v] of s2) if (k !== "info") commands += v - (s0.get(k) ?? 0);
  return { admit: scriptCalls(s0, s1) / n, settle: scriptCalls(s1, s2) / n, commands: commands / n };
}

/** Open-loop load at a fixed rate; latency of each admission (and of each settle) as the caller sees it. */
async function steady(
  client: Redis,
  pop: (i: number) => DrawnRequest,
): Promise<{ admit: { p50us: number; p99us: number }; settle: { p99us: number }; rate: number }> {
  const limiter = createLimiter({ store: createRedisStore({ client, prefix: `bench:${uid()}:`, timeoutMs: 5_000 }) });
  const limits = { requests: HIGH, tokens: HIGH };
  const admitLat: number[] = [];
  const settleLat: number[] = [];
  const pending = new Set<Promise<void>>();
  let i = 0;
  const t0 = performance.now();
  const end = t0 + STEADY_SECONDS * 1000;
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - t0) / 1000) * STEADY_RATE);
    while (i < due) {
      const p = pop(i++);
      const run = (async () => {
        const s = performance.now();
        const a = await limiter.admit(
          [scopes.apiKey(p.apiKey, limits), scopes.team(p.team, limits), scopes.user(p.user, limits)],
          { tokens: p.estimate },
        );
        const m = performance.now();
        admitLat.push((m - s) * 1000);
        if (a.ok) await a.reservation.settle({ tokens: p.actual });
        settleLat.push((performance.now() - m) * 1000);
      })();
      pending.add(run);
      run.finally(() => pending.delete(run));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - t0) / 1000;
  return { admit: percentiles(admitLat), settle: percentiles(settleLat), rate: admitLat.length / elapsed };
}

export default async function run(): Promise<string> {
  const scripts = loadLiteLLMScripts();
  // allSettled, so that when one start fails the one that did start is still stopped below.
  const [serverStart, clusterStart] = await Promise.allSettled([startRedisServer(), startRedisCluster()]);
  const server = serverStart.status === "fulfilled" ? serverStart.value : undefined;
  const cluster = clusterStart.status === "fulfilled" ? clusterStart.value : undefined;
  const clients: Array<Redis | Cluster> = [];
  try {
    if (!server || !cluster) {
      throw serverStart.status === "rejected" ? serverStart.reason : (clusterStart as PromiseRejectedResult).reason;
    }
    // One client configuration for every side (ioredis defaults, no auto-pipelining).
    const client = new Redis(server.url);
    const admin = new Redis(server.url);
    const clusterClient = new Cluster(cluster.nodes);
    const clusterAdmins = cluster.nodes.map((n) => new Redis(n.port, n.host));
    clients.push(client, admin, clusterClient, ...clusterAdmins);
    const pop = population();

    const sides: Array<{ name: string; op: Op }> = [];
    let shas: [string, string] | undefined;
    if (scripts) {
      shas = (await Promise.all([
        client.script("LOAD", scripts.checkAndIncrement),
        client.script("LOAD", scripts.tokenIncrement),
      ])) as [string, string];
      sides.push({ name: "LiteLLM v3's scripts, 1 call + 1 call", op: litellm(client, scripts, shas, pop, true) });
    }
    sides.push({ name: "Tollgate: createLimiter + createRedisStore, scopes builders", op: tollgate(client, pop) });
    if (scripts && shas) {
      sides.push({
        name: "LiteLLM v3's scripts as it calls them: 3 checks + 3 increments",
        op: litellm(client, scripts, shas, pop, false),
      });
    }
    sides.push({ name: "rate-limiter-flexible RateLimiterRedis", op: flexible(client, pop) });
    sides.push({
      name: "Tollgate full request (@tollgate/gate: 3 scopes + max parallel + 3 budgets, one admission, one settle)",
      op: fullRequest(client, pop),
    });
    const { figures, ratios } = await interleaved(admin, sides);

    // Round trips per admission and settle, sequential, on the same server.
    const limiter = createLimiter({ store: createRedisStore({ client, prefix: `bench:${uid()}:`, timeoutMs: 5_000 }) });
    const limits = { requests: HIGH, tokens: HIGH };
    const trips = await roundTrips((i) => {
      const p = pop(i);
      let reservation: Reservation | undefined;
      return {
        admit: async () => {
          const a = await limiter.admit(
            [scopes.apiKey(p.apiKey, limits), scopes.team(p.team, limits), scopes.user(p.user, limits)],
            { tokens: p.estimate },
          );
          if (!a.ok) throw new Error("denied");
          reservation = a.reservation;
        },
        settle: () => reservation!.settle({ tokens: p.actual }),
      };
    }, admin);

    const onCluster = await measureConcurrent(tollgate(clusterClient, pop), CONCURRENCY, 3);
    const raw = await measureConcurrent(await rawEvalsha(client), CONCURRENCY, 2);
    const st = await steady(client, pop);

    const ms = (us: number) => fmt(us / 1000, 2);
    const anchor = figures[0]!;
    const tg = figures.find((f) => f.name.startsWith("Tollgate"))!;
    const tgIndex = figures.indexOf(tg);
    const full = figures.find((f) => f.name.startsWith("Tollgate full request"))!;
    const rows = figures.map(
      (f, s) =>
        `| ${f.name} | ${fmt(f.perSecond)} | ${fmt(median(ratios[s]!), 2)}× | ${fmt(f.redisUs, 1)} | ${fmt(f.nodeUs, 1)} | ${ms(f.p50us)} | ${ms(f.p99us)} |`,
    );
    const load = (await import("node:os"))
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ");
    return [
      "## Redis store: admit + settle against LiteLLM's own scripts",
      "",
      `Real redis-server processes on loopback, one ioredis client per topology (default options, no auto-pipelining), ${CONCURRENCY} requests in flight. ` +
        "Workload: 3 scopes (api key, team, user) with requests + tokens limits, drawn from 10,000 keys / 100 teams / 1,000 users " +
        "(uniform, fixed seed), token estimates 100–999 reserved at admission, actual usage 1–1.2× the estimate settled. " +
        `Sides run in alternating slices (${ROUNDS} rounds × ${SLICE_SECONDS} s each, order rotating); the ratio is the median of the per-round ratios to the first row. ` +
        `Redis CPU per operation comes from \`INFO cpu\` around each slice (it does not depend on the machine's load as the rate does); this process's from \`process.cpuUsage\`. Load average at the end: ${load}.`,
      scripts
        ? `LiteLLM's Lua is read at run time from \`${scripts.source.replace(/^.*\/shared\//, "../shared/")}\` (parallel_request_limiter_v3.py): \`CHECK_AND_INCREMENT_BY_N_SCRIPT\` and \`TOKEN_INCREMENT_SCRIPT\` with the KEYS/ARGV LiteLLM builds (window/counter pairs under each scope's hash tag, 60 s windows).`
        : "LiteLLM's seed file was not found (../shared/seeds/000_00b783dfd7166662.txt): its rows are missing.",
      "",
      "| workload (admit + settle) | ops/s | ratio | Redis CPU µs/op | this process CPU µs/op | p50 ms | p99 ms |",
      "|---|---:|---:|---:|---:|---:|---:|",
      ...rows,
      `| Tollgate on a 3-master Cluster (keys on 3 masters, not interleaved) | ${fmt(onCluster.perSecond)} | | | | ${ms(onCluster.p50us)} | ${ms(onCluster.p99us)} |`,
      `| raw ceiling: trivial single-key EVALSHA (not interleaved) | ${fmt(raw.perSecond)} | | | | ${ms(raw.p50us)} | ${ms(raw.p99us)} |`,
      "",
      `- **Tollgate ${fmt(median(ratios[tgIndex]!), 2)}× LiteLLM's scripts' throughput** (target ≥ 1.3×), **${fmt(tg.redisUs, 1)} µs of Redis CPU per admit + settle against ${fmt(anchor.redisUs, 1)} µs** (target: less), ` +
        "with what LiteLLM's scripts lack: all-or-nothing across scopes, window-guarded refunds, holds, leases, statuses, tickets (exactly-once settles).",
      `- **Full request** (limits + lease + 3 budgets in one admission, one settle, through \`@tollgate/gate\`): ${fmt(full.redisUs, 1)} µs of Redis CPU per request, ` +
        `${fmt(full.redisUs / anchor.redisUs, 2)}× LiteLLM's limits-only pair; ${fmt(full.nodeUs, 1)} µs in this process.`,
      `- Round trips (INFO commandstats, 1,000 sequential requests): **${fmt(trips.admit, 2)} per admission, ${fmt(trips.settle, 2)} per settle**; ${fmt(trips.commands, 1)} Redis commands per admit + settle counting those inside the scripts.`,
      `- **Steady ${fmt(STEADY_RATE)} admissions/s** (open loop, measured ${fmt(st.rate)}/s for ${STEADY_SECONDS} s, each followed by its settle): admission p50 ${ms(st.admit.p50us)} ms, **p99 ${ms(st.admit.p99us)} ms** (target < 2 ms); settle p99 ${ms(st.settle.p99us)} ms.`,
      "",
    ].join("\n");
  } finally {
    await Promise.all(clients.map((c) => c.quit().catch(() => undefined)));
    await server?.stop();
    await cluster?.stop();
  }
}
