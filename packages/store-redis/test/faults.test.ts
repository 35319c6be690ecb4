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
        // The local store enforces 10 / 2 instances = 5 requests.
        expect(all.filter((r) => r.value?.admitted).length).toBe(5);
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
