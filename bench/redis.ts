/**
 * Redis store: admit + settle of a request under 3 descriptors (requests + tokens limits each), on a standalone
 * Redis and on a 3-master Cluster, against (a) the raw ceiling (a trivial single-key EVALSHA loop, same client,
 * same concurrency) and (b) rate-limiter-flexible's RateLimiterRedis consuming the same limits. Round trips are
 * counted with `INFO commandstats` deltas. Starts its own redis-server processes (tooling/test-servers).
 */
import { createLimiter } from "@tollgate/core";
import { createRedisStore } from "@tollgate/store-redis";
import { startRedisCluster, startRedisServer } from "@tollgate/test-servers";
import { Cluster, Redis } from "ioredis";
import { RateLimiterRedis } from "rate-limiter-flexible";
import {
  benchDescriptors,
  flexibleAdmitSettle,
  fmt,
  HIGH,
  type Measured,
  measureConcurrent,
  percentiles,
} from "./lib.js";

const SECONDS = 4;
const CONCURRENCY = 32;
const STEADY_RATE = 5_000;
const STEADY_SECONDS = 5;
/** ioredis defaults (no auto-pipelining) for every row; with it on, the raw ceiling rises and Tollgate does not. */
const AUTO_PIPELINING = false;

const uid = () => Math.random().toString(36).slice(2, 8);

const descriptors = benchDescriptors;

/** Calls per command summed over every node, from `INFO commandstats`. */
async function commandStats(nodes: Redis[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const node of nodes) {
    const info = await node.info("commandstats");
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
    }
  }
  return out;
}

/** Client-issued commands between two snapshots (script-internal calls and INFO itself excluded). */
function scriptCalls(a: Map<string, number>, b: Map<string, number>): number {
  const d = (k: string) => (b.get(k) ?? 0) - (a.get(k) ?? 0);
  return d("evalsha") + d("eval");
}

/** Every top-level command between two snapshots, for clients that do not use scripts only. */
function allCalls(a: Map<string, number>, b: Map<string, number>, exclude: string[]): number {
  let n = 0;
  for (const [k, v] of b) if (!exclude.includes(k)) n += v - (a.get(k) ?? 0);
  return n;
}

/** Redis server CPU seconds (user + sys) so far, from `INFO cpu`. */
async function redisCpu(admin: Redis): Promise<number> {
  const info = await admin.info("cpu");
  const read = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? Number.NaN);
  return read("used_cpu_user") + read("used_cpu_sys");
}

interface WithCpu extends Measured {
  /** Redis CPU µs per operation, and the share of one core Redis used during the row. */
  redisUs: number;
  redisBusy: number;
  /** This process's CPU µs per operation (engine, client, event loop). */
  nodeUs: number;
}

/** Runs a standalone row and accounts the CPU it cost on both sides. */
async function withCpu(admin: Redis, row: () => Promise<Measured>): Promise<WithCpu> {
  const r0 = await redisCpu(admin);
  const n0 = process.cpuUsage();
  const m = await row();
  const n = process.cpuUsage(n0);
  const redis = (await redisCpu(admin)) - r0;
  return {
    ...m,
    redisUs: (redis * 1e6) / m.ops,
    redisBusy: (redis / m.seconds) * 100,
    nodeUs: (n.user + n.system) / m.ops,
  };
}

function tollgateLimiter(client: Redis | Cluster) {
  return createLimiter({ store: createRedisStore({ client, prefix: `bench:${uid()}:`, timeoutMs: 2000 }) });
}

async function admitSettle(client: Redis | Cluster): Promise<Measured> {
  const limiter = tollgateLimiter(client);
  const once = async (i: number) => {
    const a = await limiter.admit(descriptors(i), { tokens: 500 });
    if (!a.ok) throw new Error("bench limits must never deny");
    await limiter.settle(a.reservation, { tokens: 420 });
  };
  for (let i = 0; i < 2000; i++) await once(i);
  return measureConcurrent(once, CONCURRENCY, SECONDS);
}

/**
 * Round trips per admission and per settle, counted separately on an otherwise idle standalone server: every
 * call the store makes is one EVALSHA (EVAL after NOSCRIPT), so round trips = evalsha + eval calls; `commands`
 * also counts the commands the scripts run inside Redis.
 */
async function roundTrips(
  client: Redis,
  admin: Redis,
): Promise<{ admit: number; settle: number; admitCommands: number; settleCommands: number }> {
  const limiter = tollgateLimiter(client);
  const N = 1000;
  const s0 = await commandStats([admin]);
  const reservations = [];
  for (let i = 0; i < N; i++) {
    const a = await limiter.admit(descriptors(i), { tokens: 500 });
    if (!a.ok) throw new Error("denied");
    reservations.push(a.reservation);
  }
  const s1 = await commandStats([admin]);
  for (const r of reservations) await limiter.settle(r, { tokens: 420 });
  const s2 = await commandStats([admin]);
  const exclude = ["info"];
  return {
    admit: scriptCalls(s0, s1) / N,
    settle: scriptCalls(s1, s2) / N,
    admitCommands: allCalls(s0, s1, exclude) / N,
    settleCommands: allCalls(s1, s2, exclude) / N,
  };
}

async function rawEvalsha(client: Redis | Cluster): Promise<Measured> {
  const script = "return redis.call('INCR', KEYS[1])";
  const sha = (await (client instanceof Cluster
    ? Promise.all(client.nodes("master").map((n) => n.script("LOAD", script))).then((r) => r[0])
    : client.script("LOAD", script))) as string;
  const prefix = `bench:${uid()}:raw:`;
  const once = (i: number) => client.evalsha(sha, 1, `${prefix}{${i % 1000}}`);
  for (let i = 0; i < 2000; i++) await once(i);
  return measureConcurrent(once, CONCURRENCY, SECONDS);
}

/**
 * A lower bound, not a limiter: the least any implementation of the LiteLLM key layout can ask of Redis for
 * this admit+settle. The admission reads the 9 keys with one MGET, compares, and INCRBYs the 6 counters (SET
 * with PX when a window starts); the settle compares the 3 window starts and INCRBYs the 3 token counters.
 * Nothing else: no value validation, no holds, no leases, no statuses in the reply, no sliding windows.
 */
const FLOOR_ADMIT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local vals = redis.call('MGET', unpack(KEYS))
local W = tonumber(ARGV[1])
local n = #KEYS / 3
local starts = {}
for w = 0, n - 1 do
  local s = tonumber(vals[3 * w + 1])
  if not s or now - s >= W then s = false end
  starts[w + 1] = s
  local r = s and tonumber(vals[3 * w + 2]) or 0
  local tk = s and tonumber(vals[3 * w + 3]) or 0
  local a = 2 + 4 * w
  if r + tonumber(ARGV[a + 1]) > tonumber(ARGV[a]) or tk + tonumber(ARGV[a + 3]) > tonumber(ARGV[a + 2]) then return {0} end
end
for w = 0, n - 1 do
  local k, a = 3 * w + 1, 2 + 4 * w
  if starts[w + 1] then
    redis.call('INCRBY', KEYS[k + 1], ARGV[a + 1])
    redis.call('INCRBY', KEYS[k + 2], ARGV[a + 3])
  else
    starts[w + 1] = now
    redis.call('SET', KEYS[k], now, 'PX', W)
    redis.call('SET', KEYS[k + 1], ARGV[a + 1], 'PX', W)
    redis.call('SET', KEYS[k + 2], ARGV[a + 3], 'PX', W)
  end
end
return { 1, unpack(starts) }
`;
const FLOOR_SETTLE = `
local n = #KEYS / 2
local starts = redis.call('MGET', unpack(KEYS, 1, n))
for w = 1, n do
  if starts[w] == ARGV[w] then redis.call('INCRBY', KEYS[n + w], ARGV[n + 1]) end
end
return 1
`;

async function floor(client: Redis): Promise<Measured> {
  const [admitSha, settleSha] = (await Promise.all([
    client.script("LOAD", FLOOR_ADMIT),
    client.script("LOAD", FLOOR_SETTLE),
  ])) as [string, string];
  const prefix = `bench:${uid()}:floor:`;
  const once = async (i: number) => {
    const keys: string[] = [];
    const args: string[] = ["60000"];
    const bases = descriptors(i).map((d) => `${prefix}{${d.scope}:${d.value}}`);
    for (const b of bases) {
      keys.push(`${b}:window`, `${b}:requests`, `${b}:tokens`);
      args.push(String(HIGH), "1", String(HIGH), "500");
    }
    const r = (await client.evalsha(admitSha, keys.length, ...keys, ...args)) as number[];
    if (r[0] !== 1) throw new Error("bench limits must never deny");
    const starts = r.slice(1).map(String);
    const sk = [...bases.map((b) => `${b}:window`), ...bases.map((b) => `${b}:tokens`)];
    await client.evalsha(settleSha, sk.length, ...sk, ...starts, "-80");
  };
  for (let i = 0; i < 2000; i++) await once(i);
  return measureConcurrent(once, CONCURRENCY, SECONDS);
}

async function flexible(client: Redis): Promise<Measured> {
  const prefix = `bench:${uid()}:rlf`;
  const opts = { storeClient: client, points: HIGH, duration: 60 };
  const once = flexibleAdmitSettle((name) => new RateLimiterRedis({ ...opts, keyPrefix: `${prefix}:${name}` }));
  for (let i = 0; i < 500; i++) await once(i);
  return measureConcurrent(once, CONCURRENCY, SECONDS);
}

/** rate-limiter-flexible's round trips (one script call per consume or reward) and commands per admit+settle. */
async function flexibleCalls(client: Redis, admin: Redis): Promise<{ trips: number; commands: number }> {
  const prefix = `bench:${uid()}:rlfc`;
  const opts = { storeClient: client, points: HIGH, duration: 60 };
  const once = flexibleAdmitSettle((name) => new RateLimiterRedis({ ...opts, keyPrefix: `${prefix}:${name}` }));
  const N = 200;
  const s0 = await commandStats([admin]);
  for (let i = 0; i < N; i++) await once(i);
  const s1 = await commandStats([admin]);
  return { trips: scriptCalls(s0, s1) / N, commands: allCalls(s0, s1, ["info"]) / N };
}

/** Open-loop load at a fixed rate; latency of each admission (and of each settle) as the caller sees it. */
async function steady(
  client: Redis,
): Promise<{ admit: { p50us: number; p99us: number }; settle: { p99us: number }; rate: number }> {
  const limiter = tollgateLimiter(client);
  const admitLat: number[] = [];
  const settleLat: number[] = [];
  const pending = new Set<Promise<void>>();
  const perTick = STEADY_RATE / 1000; // one tick per ms
  let i = 0;
  const t0 = performance.now();
  const end = t0 + STEADY_SECONDS * 1000;
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - t0) / 1000) * STEADY_RATE);
    while (i < due) {
      const n = i++;
      const p = (async () => {
        const s = performance.now();
        const a = await limiter.admit(descriptors(n), { tokens: 500 });
        const m = performance.now();
        admitLat.push((m - s) * 1000);
        if (a.ok) await limiter.settle(a.reservation, { tokens: 420 });
        settleLat.push((performance.now() - m) * 1000);
      })();
      pending.add(p);
      p.finally(() => pending.delete(p));
    }
    await new Promise((r) => setTimeout(r, 1 / perTick));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - t0) / 1000;
  return { admit: percentiles(admitLat), settle: percentiles(settleLat), rate: admitLat.length / elapsed };
}

export default async function run(): Promise<string> {
  // allSettled, so that when one start fails the one that did start is still stopped below.
  const [serverStart, clusterStart] = await Promise.allSettled([startRedisServer(), startRedisCluster()]);
  const server = serverStart.status === "fulfilled" ? serverStart.value : undefined;
  const cluster = clusterStart.status === "fulfilled" ? clusterStart.value : undefined;
  const clients: Array<Redis | Cluster> = [];
  try {
    if (!server || !cluster) {
      throw serverStart.status === "rejected" ? serverStart.reason : (clusterStart as PromiseRejectedResult).reason;
    }
    // One client configuration for every row (Tollgate, raw ceiling, rate-limiter-flexible).
    const client = new Redis(server.url, { enableAutoPipelining: AUTO_PIPELINING });
    const admin = new Redis(server.url);
    const clusterClient = new Cluster(cluster.nodes, { enableAutoPipelining: AUTO_PIPELINING });
    const clusterAdmins = cluster.nodes.map((n) => new Redis(n.port, n.host));
    clients.push(client, admin, clusterClient, ...clusterAdmins);

    const trips = await roundTrips(client, admin);
    const rlfCalls = await flexibleCalls(client, admin);

    const sa = await commandStats([admin]);
    const standalone = await withCpu(admin, () => admitSettle(client));
    const sb = await commandStats([admin]);
    const standaloneTripsPerSec = scriptCalls(sa, sb) / standalone.seconds;

    const ca = await commandStats(clusterAdmins);
    const onCluster = await admitSettle(clusterClient);
    const cb = await commandStats(clusterAdmins);
    const clusterTripsPerSec = scriptCalls(ca, cb) / onCluster.seconds;

    const raw = await withCpu(admin, () => rawEvalsha(client));
    const rawCluster = await rawEvalsha(clusterClient);
    const rlf = await withCpu(admin, () => flexible(client));
    const low = await withCpu(admin, () => floor(client));
    const st = await steady(client);

    const ratio = standalone.perSecond / rlf.perSecond;
    const ceiling = (standaloneTripsPerSec / raw.perSecond) * 100;
    const ceilingCluster = (clusterTripsPerSec / rawCluster.perSecond) * 100;
    const ms = (us: number) => fmt(us / 1000, 2);
    return [
      "## Redis store: admit + settle, 3 descriptors (requests + tokens each)",
      "",
      `Real redis-server processes on loopback (standalone, and a 3-master Cluster), one ioredis client (auto-pipelining ${AUTO_PIPELINING ? "on" : "off"}, the same for every row), ${CONCURRENCY} requests in flight, ${SECONDS} s per row.`,
      "Tollgate rows use the engine (`createLimiter` over `createRedisStore`): admit with a 500-token estimate, then settle at 420 tokens.",
      "rate-limiter-flexible does the same work: 6 `consume` calls (3 scopes × requests/tokens), then 3 `reward`s.",
      "",
      "| workload | ops/s | Redis round trips/s | p50 ms | p99 ms |",
      "|---|---:|---:|---:|---:|",
      `| Tollgate admit+settle, standalone | ${fmt(standalone.perSecond)} | ${fmt(standaloneTripsPerSec)} | ${ms(standalone.p50us)} | ${ms(standalone.p99us)} |`,
      `| Tollgate admit+settle, Cluster (keys on 3 masters) | ${fmt(onCluster.perSecond)} | ${fmt(clusterTripsPerSec)} | ${ms(onCluster.p50us)} | ${ms(onCluster.p99us)} |`,
      `| raw ceiling: trivial single-key EVALSHA, standalone | ${fmt(raw.perSecond)} | ${fmt(raw.perSecond)} | ${ms(raw.p50us)} | ${ms(raw.p99us)} |`,
      `| raw ceiling: trivial single-key EVALSHA, Cluster | ${fmt(rawCluster.perSecond)} | ${fmt(rawCluster.perSecond)} | ${ms(rawCluster.p50us)} | ${ms(rawCluster.p99us)} |`,
      `| rate-limiter-flexible RateLimiterRedis, standalone | ${fmt(rlf.perSecond)} | ${fmt(rlf.perSecond * rlfCalls.trips)} (${fmt(rlfCalls.trips, 0)} per op) | ${ms(rlf.p50us)} | ${ms(rlf.p99us)} |`,
      `| lower bound (not a limiter): stripped LiteLLM-layout scripts, standalone | ${fmt(low.perSecond)} | ${fmt(low.perSecond * 2)} | ${ms(low.p50us)} | ${ms(low.p99us)} |`,
      "",
      `- Round trips (INFO commandstats deltas, 1,000 sequential requests): **${fmt(trips.admit, 2)} per admission, ${fmt(trips.settle, 2)} per settle** (target 1 and 1); ` +
        `Redis commands executed per admit+settle including those inside the scripts: ${fmt(trips.admitCommands + trips.settleCommands, 1)}; ` +
        `rate-limiter-flexible: ${fmt(rlfCalls.trips, 1)} round trips and ${fmt(rlfCalls.commands, 1)} commands per admit+settle.`,
      `- **Throughput ratio: ${fmt(ratio, 2)}×** rate-limiter-flexible on admit+settle (target ≥ 6×).`,
      `- **Round trips/s: ${fmt(ceiling, 0)}% of the raw EVALSHA ceiling** on standalone (target ≥ 60%); Cluster: ${fmt(ceilingCluster, 0)}%.`,
      `- Where the time goes (standalone rows, CPU per operation from \`INFO cpu\` and \`process.cpuUsage\`): Tollgate ` +
        `${fmt(standalone.redisUs, 1)} µs of Redis CPU per admit+settle (Redis at ${fmt(standalone.redisBusy, 0)}% of one core: the bottleneck) and ` +
        `${fmt(standalone.nodeUs, 1)} µs in this process; rate-limiter-flexible ${fmt(rlf.redisUs, 1)} µs of Redis CPU ` +
        `(${fmt(rlf.redisBusy, 0)}% of a core) and ${fmt(rlf.nodeUs, 1)} µs here; a trivial EVALSHA ${fmt(raw.redisUs, 1)} µs of Redis CPU ` +
        `(${fmt(raw.redisBusy, 0)}% of a core) and ${fmt(raw.nodeUs, 1)} µs here. 6× rate-limiter-flexible on the same Redis core would ` +
        `leave ${fmt(rlf.redisUs / 6, 1)} µs of Redis CPU per admit+settle, about what ${fmt(rlf.redisUs / 6 / raw.redisUs, 1)} trivial ` +
        "EVALSHAs cost; an admit+settle writes 6 counters in 9 keys of the LiteLLM layout in 2 scripts.",
      `- **Lower bound of the LiteLLM layout** (last row: the same admit+settle reduced to one MGET and 6 INCRBY, then 3 INCRBY, ` +
        "without validation, holds, leases, statuses or sliding windows; not usable as a limiter): " +
        `${fmt(low.perSecond / rlf.perSecond, 2)}× rate-limiter-flexible, ${fmt(low.redisUs, 1)} µs of Redis CPU per admit+settle ` +
        `(Redis at ${fmt(low.redisBusy, 0)}% of a core), ${fmt(low.nodeUs, 1)} µs here, round trips at ${fmt(((low.perSecond * 2) / raw.perSecond) * 100, 0)}% of the ceiling. ` +
        `Tollgate reaches ${fmt((standalone.perSecond / low.perSecond) * 100, 0)}% of this bound's throughput with the full contract.`,
      `- **Steady ${fmt(STEADY_RATE)} admissions/s** (open loop, measured ${fmt(st.rate)}/s for ${STEADY_SECONDS} s, each followed by its settle): ` +
        `admission p50 ${ms(st.admit.p50us)} ms, **p99 ${ms(st.admit.p99us)} ms** (target < 2 ms); settle p99 ${ms(st.settle.p99us)} ms.`,
      "",
    ].join("\n");
  } finally {
    await Promise.all(clients.map((c) => c.quit().catch(() => undefined)));
    await server?.stop();
    await cluster?.stop();
  }
}
