/**
 * Upstash store over HTTP: the real `@upstash/redis` client -> the Upstash REST test server (node:http) ->
 * a real redis-server, all on this machine. Measures admissions per second and counts HTTP requests per
 * admission; a bare PING through the same client and server gives the HTTP floor. (`@upstash/ratelimit` cannot
 * be compared here: its scripts carry an Upstash-only shebang flag, `allow-key-locking`, that redis-server 7.0
 * rejects.)
 */
import { createLimiter } from "@tollgate/core";
import { createUpstashStore } from "@tollgate/store-upstash";
import { startRedisServer, startUpstashRestServer, type UpstashRestServer } from "@tollgate/test-servers";
import { Redis } from "@upstash/redis";
import { benchDescriptors, fmt, HIGH, type Measured, measureConcurrent, measureSequential } from "./lib.js";

const SECONDS = 3;
const WARMUP = 200;

interface Row {
  label: string;
  m: Measured;
  /** HTTP requests the REST server received per operation. */
  perOp: number;
}

async function counted(rest: UpstashRestServer, label: string, run: () => Promise<Measured>): Promise<Row> {
  rest.resetLog();
  const m = await run();
  return { label, m, perOp: rest.requests / m.calls };
}

export default async function run(): Promise<string> {
  const redis = await startRedisServer();
  const rest = await startUpstashRestServer({ redisUrl: redis.url });
  const client = () => new Redis({ url: rest.url, token: rest.token, enableTelemetry: false });
  try {
    const store = createUpstashStore({ client: client(), prefix: "bench:", timeoutMs: 5_000 });
    const batch = (i: number) => ({
      windows: [
        {
          key: `{api_key:k${i % 1000}}`,
          windowMs: 60_000,
          algorithm: "fixed" as const,
          counters: [
            { name: "requests", limit: HIGH, amount: 1, enforce: true },
            { name: "tokens", limit: HIGH, amount: 500, enforce: true },
          ],
        },
      ],
      gauges: [],
    });
    // Warm every path (scripts cached by EVAL after the first NOSCRIPT) outside the measured windows.
    for (let i = 0; i < WARMUP; i++) await store.admit(batch(i));

    const rows: Row[] = [];
    rows.push(
      await counted(rest, "store.admit, 1 window (requests + tokens), sequential", () =>
        measureSequential((i) => store.admit(batch(i)), SECONDS, 0),
      ),
    );
    rows.push(
      await counted(rest, "store.admit, same batch, 32 in flight", () =>
        measureConcurrent((i) => store.admit(batch(i)), 32, SECONDS),
      ),
    );

    const limiter = createLimiter({ store });
    const descriptors = benchDescriptors;
    const admitSettle = async (i: number) => {
      const a = await limiter.admit(descriptors(i), { tokens: 500 });
      if (a.ok) await limiter.settle(a.reservation, { tokens: 420 });
    };
    for (let i = 0; i < WARMUP; i++) await admitSettle(i);
    rows.push(
      await counted(rest, "limiter admit + settle, 3 descriptors, sequential (per admit+settle)", () =>
        measureSequential(admitSettle, SECONDS, 0),
      ),
    );

    const ping = client();
    for (let i = 0; i < WARMUP; i++) await ping.ping();
    rows.push(
      await counted(rest, "bare PING through the same client and server (HTTP floor)", () =>
        measureSequential(() => ping.ping(), SECONDS, 0),
      ),
    );
    await store.close();

    const admitRow = rows[0]!;
    return [
      "## Upstash store over REST",
      "",
      "The real `@upstash/redis` client → the repo's Upstash REST test server (`tooling/test-servers`, node:http) →",
      "a real redis-server, all on this machine, so the numbers measure the client, HTTP and the Lua script, not",
      "a network; the client and the REST server share this process's event loop. A database in another region adds its round-trip time to every row. (`@upstash/ratelimit` is not",
      "compared: its scripts use an Upstash-only shebang flag, `allow-key-locking`, that open-source Redis rejects.)",
      "",
      "| operation | ops/s | p50 µs | p99 µs | HTTP requests per op |",
      "|---|---:|---:|---:|---:|",
      ...rows.map(
        (r) =>
          `| ${r.label} | ${fmt(r.m.perSecond)} | ${fmt(r.m.p50us, 0)} | ${fmt(r.m.p99us, 0)} | ${fmt(r.perOp, 2)} |`,
      ),
      "",
      `**HTTP requests per admission: ${fmt(admitRow.perOp, 2)}** (target: exactly 1 after the scripts are cached; ` +
        "the first call after a Redis restart or SCRIPT FLUSH costs one more, EVALSHA → NOSCRIPT → EVAL).",
      "",
    ].join("\n");
  } finally {
    await rest.close();
    await redis.stop();
  }
}
