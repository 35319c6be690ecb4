/**
 * Redis unreachable when the proxy starts, with the database (management API) on: the proxy must start, answer by
 * its failure policy, and recover without a restart when Redis comes up; the identity cache's pub/sub invalidation
 * must subscribe once Redis answers, and again after Redis is killed and restarted.
 * Real processes: redis-server (killed before the proxy starts, restarted later), PostgreSQL, two proxies.
 */
import { randomBytes } from "node:crypto";
import {
  createDatabase,
  type OpenAIUpstream,
  type ProxyProcess,
  type RedisServerHandle,
  startOpenAIUpstream,
  startProxyProcess,
  startRedisServer,
} from "@tollgate/test-servers";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { chat, eventually, MASTER, post } from "./helpers.js";

let upstream: OpenAIUpstream;
beforeAll(async () => {
  upstream = await startOpenAIUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

const completion = (url: string, key = MASTER) =>
  post(
    url,
    "/v1/chat/completions",
    { model: "m", ...chat() },
    {
      authorization: `Bearer ${key}`,
    },
  );

function config(redis: RedisServerHandle, policy: "closed" | "fallback", databaseUrl: string, extra = ""): string {
  return `
model_list:
  - model_name: m
    litellm_params: { model: openai/m, api_base: ${upstream.apiBase}, rpm: 3 }
general_settings:
  master_key: ${MASTER}
  database_url: ${databaseUrl}
  key_cache_refresh_seconds: 600   # only the Redis bus can make a change on another instance show within the test
  store: { type: redis, url: "${redis.url}", failure_policy: ${policy}, timeout_ms: 300, prefix: "tg-down-${randomBytes(4).toString("hex")}:" }
${extra}`;
}

/** Instances subscribed to the invalidation channel, as Redis counts them. */
async function subscribers(redis: RedisServerHandle): Promise<number> {
  const r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  try {
    const reply = (await r.call("PUBSUB", "NUMSUB", "tollgate:invalidate")) as [string, number];
    return Number(reply[1]);
  } finally {
    r.disconnect();
  }
}

describe("Redis down when the proxy starts (database on)", () => {
  it("closed policy: starts, answers 503 in OpenAI's shape, recovers when Redis comes up, and its cache bus subscribes then and after a restart of Redis", async () => {
    const redis = await startRedisServer();
    await redis.kill9();
    const db = await createDatabase(inject("postgres").url);
    const procs: ProxyProcess[] = [];
    try {
      const a = await startProxyProcess({ config: config(redis, "closed", db) });
      procs.push(a);
      upstream.reset();

      // Redis down: the request path answers by the policy, nothing reaches the upstream; health and the
      // management API (database only) keep answering.
      const down = await completion(a.url);
      expect(down.status).toBe(503);
      expect(down.json.error).toMatchObject({ type: "service_unavailable", code: "503", param: null });
      expect(down.json.error.message).toContain("store unavailable");
      expect(upstream.stats.requests).toBe(0);
      expect((await fetch(`${a.url}/health/liveliness`)).status).toBe(200);
      expect((await fetch(`${a.url}/health/readiness`)).status).toBe(503);
      const gen = await post(a.url, "/key/generate", {});
      expect(gen.status).toBe(200);
      const key = gen.json.key as string;
      expect((await completion(a.url, key)).status).toBe(503);

      // Redis comes up: the same process serves, without a restart.
      await redis.restart();
      await eventually(async () => expect((await completion(a.url, key)).status).toBe(200), 30_000);
      await eventually(async () => expect((await fetch(`${a.url}/health/readiness`)).status).toBe(200), 30_000);
      await eventually(async () => expect(await subscribers(redis)).toBe(1), 30_000);
      expect(a.stderr()).toBe("");

      // A second instance (started with Redis up) blocks the key A has in memory: A hears it through the bus.
      const b = await startProxyProcess({ config: config(redis, "closed", db) });
      procs.push(b);
      await eventually(async () => expect(await subscribers(redis)).toBe(2), 30_000);
      expect((await post(b.url, "/key/block", { key })).status).toBe(200);
      await eventually(async () => expect((await completion(a.url, key)).status).toBe(401), 5_000);

      // Redis killed and restarted: both instances subscribe again, and A hears the next change.
      await redis.kill9();
      expect((await completion(a.url)).status).toBe(503);
      await redis.restart();
      await eventually(async () => expect(await subscribers(redis)).toBe(2), 30_000);
      await eventually(async () => expect((await completion(a.url)).status).toBe(200), 30_000);
      expect((await completion(a.url, key)).status).toBe(401);
      expect((await post(b.url, "/key/unblock", { key })).status).toBe(200);
      await eventually(async () => expect((await completion(a.url, key)).status).toBe(200), 5_000);

      for (const p of procs) expect(await p.stop()).toBe(0);
      expect(a.stdout()).not.toMatch(/"level":50/);
    } finally {
      for (const p of procs) await p.stop("SIGKILL");
      await redis.stop();
    }
  }, 180_000);

  it("fallback policy: starts and decides locally (rpm exact on the fallback), then counts in Redis once it is up", async () => {
    const redis = await startRedisServer();
    await redis.kill9();
    const db = await createDatabase(inject("postgres").url);
    let p: ProxyProcess | undefined;
    try {
      const prefix = `tg-fb-${randomBytes(4).toString("hex")}:`;
      p = await startProxyProcess({
        config: config(redis, "fallback", db).replace(/prefix: "[^"]+"/, `prefix: "${prefix}"`),
      });
      upstream.reset();
      const first = await Promise.all(Array.from({ length: 5 }, () => completion(p!.url)));
      expect(first.filter((r) => r.status === 200)).toHaveLength(3);
      expect(first.filter((r) => r.status === 429)).toHaveLength(2);
      expect(upstream.stats.requests).toBe(3);

      await redis.restart();
      const r = new Redis(redis.url);
      try {
        // Once the store is healthy again, requests are counted in Redis (under the configured prefix).
        await eventually(async () => {
          await completion(p!.url);
          expect((await fetch(`${p!.url}/health/readiness`)).status).toBe(200);
          expect((await r.keys(`${prefix}*`)).length).toBeGreaterThan(0);
        }, 30_000);
        await eventually(async () => expect(await subscribers(redis)).toBe(1), 30_000);
      } finally {
        r.disconnect();
      }
      expect(await p.stop()).toBe(0);
    } finally {
      await p?.stop("SIGKILL");
      await redis.stop();
    }
  }, 120_000);
});
