import { TollgateError } from "@tollgate/core";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createRedisStore } from "../src/index.js";
import { descriptor, uid } from "./helpers.js";

const redis = new Redis(inject("redis").url);
afterAll(async () => {
  await redis.quit();
});

async function expectCorrupt(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TollgateError);
  expect((err as TollgateError).code).toBe("STORE_DATA_CORRUPT");
}

describe("malformed data left by someone else", () => {
  // Every policy: corrupt data is a data error, never "Redis is down" (open would admit blindly otherwise).
  for (const failurePolicy of ["closed", "open", "fallback"] as const) {
    it(`a non-integer counter, window or hold gives STORE_DATA_CORRUPT and writes nothing (${failurePolicy})`, async () => {
      const prefix = `tgtest:${uid()}:`;
      const store = createRedisStore({ client: redis, prefix, failurePolicy });
      const good = `{api_key:${uid()}}`;
      const bad = `{api_key:${uid()}}`;
      const batch = { windows: [descriptor(good, 10, 1000), descriptor(bad, 10, 1000)], gauges: [] };
      expect((await store.admit(batch)).admitted).toBe(true);

      await redis.set(`${prefix}${bad}:tokens`, "abc");
      await expectCorrupt(store.admit(batch));
      await redis.set(`${prefix}${bad}:tokens`, "1.5");
      await expectCorrupt(store.admit(batch));
      await redis.set(`${prefix}${bad}:tokens`, "-3");
      await expectCorrupt(store.admit(batch));
      await redis.set(`${prefix}${bad}:tokens`, "10");
      await redis.set(`${prefix}${bad}:window`, "yesterday");
      await expectCorrupt(store.admit(batch));
      await expectCorrupt(
        store.read({ windows: [{ key: bad, windowMs: 60_000, algorithm: "fixed", counters: ["tokens"] }], gauges: [] }),
      );
      await expectCorrupt(
        store.adjust({
          windows: [{ key: bad, windowMs: 60_000, algorithm: "fixed", counters: [{ name: "tokens", delta: -1 }] }],
        }),
      );
      await redis.del(`${prefix}${bad}:window`);
      await redis.hset(`${prefix}${good}:tokens:held`, "someone", "lots");
      await redis.zadd(`${prefix}${good}:tokens:holds`, Date.now() + 60_000, "someone");
      await expectCorrupt(store.admit(batch));
      expect(store.health).toBe("healthy");

      // The good descriptor was never half-applied by the failed calls.
      expect(await redis.get(`${prefix}${good}:requests`)).toBe("1");
      expect(await redis.get(`${prefix}${good}:tokens`)).toBe("10");
      await store.close();
    });
  }

  it("a key of the wrong type gives STORE_DATA_CORRUPT (admit, adjust, renew, read)", async () => {
    const prefix = `tgtest:${uid()}:`;
    const store = createRedisStore({ client: redis, prefix });
    const key = `{api_key:${uid()}}`;
    await redis.hset(`${prefix}${key}:requests`, "x", "1");
    await expectCorrupt(store.admit({ windows: [descriptor(key, 10, 1000)], gauges: [] }));
    await redis.set(`${prefix}${key}:max_parallel_requests`, "7");
    const gauge = { key, name: "max_parallel_requests" };
    await expectCorrupt(
      store.admit({ windows: [], gauges: [{ ...gauge, limit: 5, enforce: true }], lease: { id: "l", ttlMs: 1000 } }),
    );
    await expectCorrupt(store.adjust({ windows: [], release: { id: "l", gauges: [gauge], holds: [] } }));
    await expectCorrupt(store.renew({ id: "l", gauges: [gauge], holds: [] }, 1000));
    await expectCorrupt(store.read({ windows: [], gauges: [gauge] }));
    await redis.lpush(`${prefix}${key}:tokens:holds`, "x");
    await expectCorrupt(store.renew({ id: "l", gauges: [], holds: [{ key, name: "tokens" }] }, 1000));
    await store.close();
  });
});
