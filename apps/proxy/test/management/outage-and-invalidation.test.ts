import { createDatabase, type PostgresHandle, startPostgres } from "@tollgate/test-servers";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRedisBus, type FinishedRequest, hashSecret } from "../../src/management/index.js";
import { resolveError, startManagement, type TestManagement } from "./helpers.js";

describe("PostgreSQL down: management answers 503, known keys keep serving, spend reaches the ledger afterwards", () => {
  let pg: PostgresHandle;
  let m: TestManagement;
  const errors: string[] = [];
  beforeAll(async () => {
    pg = await startPostgres();
    const url = await pg.createDatabase();
    m = await startManagement(
      "postgres",
      {
        ledger: { flushIntervalMs: 3_600_000, onError: (err) => errors.push(String(err)) },
        database: { connectTimeoutMs: 1_000 },
      },
      url,
    );
  }, 90_000);
  afterAll(async () => {
    await m.cleanup().catch(() => {});
    await pg.stop();
  });

  it("survives a kill -9 of the database and a restart", async () => {
    const k = await m.call("POST", "/key/generate", { body: { max_budget: 5 } });
    const secret = k.body.key as string;
    const ident = await m.resolveRequest({ headers: { authorization: `Bearer ${secret}` } });
    await pg.kill9();

    const t0 = Date.now();
    const down = await m.call("POST", "/key/generate", { body: {} });
    expect(down.status).toBe(503);
    expect(down.body.error).toMatchObject({ type: "service_unavailable", code: "503" });
    expect((await m.call("GET", "/key/info", { query: { key: secret } })).status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(15_000);

    // The request path: a cached key is served synchronously, no database needed.
    const again = m.resolveRequest({ headers: { authorization: `Bearer ${secret}` } });
    expect(again).not.toBeInstanceOf(Promise);
    // A key the instance has never seen cannot be verified: 503.
    const unknown = await resolveError(m, { headers: { authorization: "Bearer sk-never-seen-before" } });
    expect(unknown.status).toBe(503);

    // Spend recorded during the outage stays queued...
    const rec = (id: string): FinishedRequest => ({
      requestId: id,
      identity: ident,
      callType: "acompletion",
      modelGroup: "gpt-4o",
      status: "success",
      costNano: 1_000,
      startTime: Date.now(),
      endTime: Date.now(),
      budgets: ident.budgets,
    });
    for (let i = 0; i < 10; i++) m.record(rec(`outage-${i}`));
    await m.ledger.flush();
    expect(m.ledger.pending).toBe(10);
    expect(m.ledger.failures).toBeGreaterThan(0);

    // ...and reaches the ledger once the database is back.
    await pg.restart();
    // The first write may still meet a pooled connection the crash broke; the ledger retries on its next tick.
    for (let i = 0; i < 20 && m.ledger.pending > 0; i++) await m.ledger.flush();
    expect(m.ledger.pending).toBe(0);
    expect((await m.repo.getKey(hashSecret(secret)))?.spend_nano).toBe(10_000);
    expect((await m.call("GET", "/spend/logs", { query: { api_key: secret } })).body).toHaveLength(10);
    expect((await m.call("POST", "/key/generate", { body: {} })).status).toBe(200);
  }, 90_000);
});

describe("cache invalidation across instances", () => {
  let a: TestManagement;
  let b: TestManagement;
  const redis: Redis[] = [];
  const conn = () => {
    const r = new Redis(inject("redis").url, { lazyConnect: false });
    redis.push(r);
    return r;
  };
  beforeAll(async () => {
    const url = await createDatabase(inject("postgres").url);
    const channel = `tollgate:invalidate:${Math.random().toString(36).slice(2)}`;
    a = await startManagement(
      "postgres",
      { bus: await createRedisBus({ publisher: conn(), subscriber: conn(), channel }) },
      url,
    );
    b = await startManagement(
      "postgres",
      { bus: await createRedisBus({ publisher: conn(), subscriber: conn(), channel }) },
      url,
    );
  });
  afterAll(async () => {
    await a.cleanup();
    await b.cleanup();
    for (const r of redis) r.disconnect();
  });

  it("a block on one instance refuses the key on the other within 1 s (Redis pub/sub); unblock likewise", async () => {
    const k = await a.call("POST", "/key/generate", { body: {} });
    const secret = k.body.key as string;
    // B knows the key (cached) and serves it without the database.
    await b.resolveRequest({ headers: { authorization: `Bearer ${secret}` } });
    expect(b.resolveRequest({ headers: { authorization: `Bearer ${secret}` } })).not.toBeInstanceOf(Promise);

    const t0 = performance.now();
    await a.call("POST", "/key/block", { body: { key: secret } });
    let seenAfter = Number.POSITIVE_INFINITY;
    while (performance.now() - t0 < 5_000) {
      try {
        await b.resolveRequest({ headers: { authorization: `Bearer ${secret}` } });
      } catch (err) {
        expect((err as Error).message).toContain("Key is blocked");
        seenAfter = performance.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(seenAfter).toBeLessThan(1_000);
    console.log(`[invalidation] a block on instance A refused on instance B after ${seenAfter.toFixed(1)} ms`);

    await a.call("POST", "/key/unblock", { body: { key: secret } });
    const t1 = performance.now();
    let okAfter = Number.POSITIVE_INFINITY;
    while (performance.now() - t1 < 5_000) {
      try {
        await b.resolveRequest({ headers: { authorization: `Bearer ${secret}` } });
        okAfter = performance.now() - t1;
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    expect(okAfter).toBeLessThan(1_000);
  });

  it("a key created on one instance after the other refused it works there at once (negative entry dropped)", async () => {
    const secret = `sk-made-later-${Math.random().toString(36).slice(2)}`;
    expect((await resolveError(b, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(401);
    await a.call("POST", "/key/generate", { body: { key: secret } });
    let ok = false;
    const t0 = performance.now();
    while (!ok && performance.now() - t0 < 1_000) {
      ok = await (async () => b.resolveRequest({ headers: { authorization: `Bearer ${secret}` } }))().then(
        () => true,
        async () => {
          await new Promise((r) => setTimeout(r, 5));
          return false;
        },
      );
    }
    expect(ok).toBe(true);
  });
});

describe("cache invalidation without Redis: the refresh interval", () => {
  it("another instance's change shows after refreshMs, without the request ever waiting for the database", async () => {
    const url = await createDatabase(inject("postgres").url);
    let clock = 1_000_000;
    const a = await startManagement("postgres", {}, url);
    const b = await startManagement("postgres", { now: () => clock, cache: { refreshMs: 2_000 } }, url);
    try {
      const k = await a.call("POST", "/key/generate", { body: { rpm_limit: 1 } });
      const secret = k.body.key as string;
      const first = await b.resolveRequest({ headers: { authorization: `Bearer ${secret}` } });
      expect(first.descriptors[0]).toMatchObject({ requests: 1 });
      await a.call("POST", "/key/update", { body: { key: secret, rpm_limit: 2 } });
      // Within the interval B still uses what it has (synchronously).
      clock += 1_999;
      const within = b.resolveRequest({ headers: { authorization: `Bearer ${secret}` } });
      expect(within).not.toBeInstanceOf(Promise);
      expect((within as Awaited<typeof within>).descriptors[0]).toMatchObject({ requests: 1 });
      // After it, the next request still answers at once (stale copy) and starts a background refresh...
      clock += 2;
      const stale = b.resolveRequest({ headers: { authorization: `Bearer ${secret}` } });
      expect(stale).not.toBeInstanceOf(Promise);
      // ...whose result the following requests see.
      let fresh = stale as Awaited<typeof stale>;
      for (let i = 0; i < 200 && fresh.descriptors[0]?.requests !== 2; i++) {
        await new Promise((r) => setTimeout(r, 5));
        fresh = await b.resolveRequest({ headers: { authorization: `Bearer ${secret}` } });
      }
      expect(fresh.descriptors[0]).toMatchObject({ requests: 2 });
    } finally {
      await a.cleanup();
      await b.cleanup();
    }
  });
});
