import { StoreUnavailableError } from "@tollgate/core";
import type { StoreHealthEvent } from "@tollgate/redis-scripts";
import { type RedisServerHandle, startRedisServer, timed } from "@tollgate/test-servers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisStore } from "../src/index.js";
import { descriptor, uid } from "./helpers.js";

// A dedicated server: these tests kill it.
let server: RedisServerHandle;
beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  await server.stop();
});

const TIMEOUT = 100;
/** Allowed scheduling slack on top of the timeout on a shared, noisy machine. */
const SLACK = 150;

async function waitUntil(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("faults: kill -9 Redis mid-run, then restart it", () => {
  for (const policy of ["closed", "open", "fallback"] as const) {
    it(`policy ${policy}: answers within the timeout while Redis is dead and recovers by itself`, async () => {
      const store = createRedisStore({
        connection: server.url,
        prefix: `tgtest:${uid()}:`,
        failurePolicy: policy,
        timeoutMs: TIMEOUT,
        retryIntervalMs: 100,
        fallbackInstances: 2,
      });
      const events: StoreHealthEvent[] = [];
      store.onHealthChange((e) => events.push(e));
      const key = `{api_key:${uid()}}`;
      const batch = { windows: [descriptor(key, 10, 100_000)], gauges: [] };
      const ok = await store.admit(batch);
      expect(ok.admitted).toBe(true);
      expect(ok.degraded).toBeUndefined();

      await server.kill9();
      const first = await timed(store.admit(batch));
      expect(first.ms).toBeLessThan(TIMEOUT + SLACK);
      expect(store.health).toBe("degraded");
      expect(events.map((e) => e.state)).toEqual(["degraded"]);
      expect(events[0]!.cause?.code).toBe("STORE_UNAVAILABLE");

      // While degraded, calls do not wait on Redis at all (except one probe per retry interval).
      const burst = await Promise.all(Array.from({ length: 9 }, () => timed(store.admit(batch))));
      const all = [first, ...burst];
      for (const r of all) expect(r.ms).toBeLessThan(TIMEOUT + SLACK);
      if (policy === "closed") {
        for (const r of all) {
          expect(r.error).toBeInstanceOf(StoreUnavailableError);
          expect((r.error as StoreUnavailableError).code).toBe("STORE_UNAVAILABLE");
        }
      } else if (policy === "open") {
        for (const r of all) {
          expect(r.value?.admitted).toBe(true);
          expect(r.value?.degraded).toBe("open");
        }
      } else {
        // The local store enforces 10 / 2 instances = 5 requests, starting from this instance's share of what Redis
        // had counted before the outage (1 request: ceil(1 / 2) = 1), so 4 more.
        expect(all.filter((r) => r.value?.admitted).length).toBe(4);
        for (const r of all) expect(r.value?.degraded).toBe("fallback");
      }

      await server.restart();
      await waitUntil(async () => {
        const r = await store.admit(batch).catch(() => undefined);
        return r !== undefined && r.degraded === undefined;
      });
      expect(store.health).toBe("healthy");
      expect(events.map((e) => e.state)).toEqual(["degraded", "healthy"]);
      const back = await store.admit(batch);
      expect(back.degraded).toBeUndefined();
      expect(back.admitted).toBe(true);
      await store.close();
    });
  }
});

describe("fallback: what happens to in-flight slots across an outage (Redis paused, SIGSTOP)", () => {
  it("a slot taken before the outage counts locally, and its release during the outage reaches Redis after it", async () => {
    const prefix = `tgtest:${uid()}:`;
    const key = `{api_key:${uid()}}`;
    const gauge = { key, name: "max_parallel_requests" };
    const admitOne = (s: ReturnType<typeof createRedisStore>, id: string) =>
      s.admit({
        windows: [],
        gauges: [{ ...gauge, limit: 1, enforce: true }],
        lease: { id, ttlMs: 60_000 },
        ticket: true,
      });
    const store = createRedisStore({
      connection: server.url,
      prefix,
      failurePolicy: "fallback",
      timeoutMs: 200,
      retryIntervalMs: 100,
    });
    // Another process sharing the limit, with the default (closed) policy.
    const other = createRedisStore({ connection: server.url, prefix });
    try {
      const held = await admitOne(store, "held");
      expect(held).toMatchObject({ admitted: true });
      expect(held.degraded).toBeUndefined();

      server.pause();
      // The first call meets the outage: the fallback decides, and knows the slot this process holds.
      const during = await admitOne(store, "during");
      expect(during).toMatchObject({ admitted: false, degraded: "fallback", denied: { type: "gauge", gauge: 0 } });
      // The release is answered locally (the store is degraded, Redis is not asked) ...
      const released = await store.adjust({
        windows: [],
        release: { id: "held", gauges: [gauge], holds: [] },
        ticket: { id: "held", finish: "release", keepMs: 60_000 },
      });
      expect(released).toMatchObject({ degraded: "fallback", released: 1 });
      expect(store.pendingReplays).toBeGreaterThan(0);
      // ... and frees the slot locally at once.
      expect(await admitOne(store, "local")).toMatchObject({ admitted: true, degraded: "fallback" });
      await store.adjust({
        windows: [],
        release: { id: "local", gauges: [gauge], holds: [] },
        ticket: { id: "local", finish: "release", keepMs: 60_000 },
      });
    } finally {
      server.resume();
    }
    // After the outage the release reaches Redis: the slot is free for everyone well before its 60 s TTL.
    expect(await store.flush(5_000)).toBe(0);
    const after = await admitOne(other, "after");
    expect(after).toMatchObject({ admitted: true });
    expect(after.gauges[0]!.inFlight).toBe(1);
    await store.close();
    await other.close();
  });
});

describe("the fallback store exists before the first failure", () => {
  it("the first call of an outage answers by the fallback within the timeout (no store to create then)", async () => {
    const store = createRedisStore({
      connection: server.url,
      prefix: `tgtest:${uid()}:`,
      failurePolicy: "fallback",
      timeoutMs: TIMEOUT,
    });
    const batch = { windows: [descriptor(`{api_key:${uid()}}`, 10, 100_000)], gauges: [] };
    expect((await store.admit(batch)).degraded).toBeUndefined();
    server.pause();
    try {
      const first = await timed(store.admit(batch));
      expect(first.value?.degraded).toBe("fallback");
      expect(first.ms).toBeLessThan(TIMEOUT + SLACK);
    } finally {
      server.resume();
    }
    await store.close();
  });
});
