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

/** Every key under a prefix with its type and content, to check that a failed call changed nothing. */
async function snapshot(prefix: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of (await redis.keys(`${prefix}*`)).sort()) {
    const type = await redis.type(key);
    if (type === "string") out[key] = await redis.get(key);
    else if (type === "hash") out[key] = await redis.hgetall(key);
    else if (type === "zset") out[key] = await redis.zrange(key, 0, -1, "WITHSCORES");
    else out[key] = type;
  }
  return out;
}

describe("corrupt data table: STORE_DATA_CORRUPT and nothing changed", () => {
  const cases: Array<[string, (prefix: string, key: string) => Promise<unknown>]> = [
    ["a window start far in the future", (p, k) => redis.set(`${p}${k}:window`, String(Date.now() + 10 * 86_400_000))],
    ["a window start with a sign and letters", (p, k) => redis.set(`${p}${k}:window`, "-12a")],
    ["a counter beyond 17 digits", (p, k) => redis.set(`${p}${k}:tokens`, "123456789012345678")],
    [
      "a counter of the wrong type",
      (p, k) => redis.del(`${p}${k}:tokens`).then(() => redis.lpush(`${p}${k}:tokens`, "1")),
    ],
    ["a ticket that is not one", (p) => redis.set(`${p}ticket:T`, "maybe")],
    // An admission records a new ticket with SET, over whatever another writer left under its key name (checking the
    // type of an absent key would cost every admission a call); settles still check it.
    ["a ticket of the wrong type (settle only)", (p) => redis.hset(`${p}ticket:T`, "state", "o")],
  ];
  for (const [what, plant] of cases) {
    it(`${what}: admit, settle and read answer STORE_DATA_CORRUPT and write nothing`, async () => {
      const prefix = `tgtest:${uid()}:`;
      const store = createRedisStore({ client: redis, prefix });
      const key = `{api_key:${uid()}}`;
      const window = { ...descriptor(key, 10, 1000), noHolds: true };
      const first = await store.admit({
        windows: [window],
        gauges: [],
        lease: { id: "S", ttlMs: 60_000 },
        ticket: true,
      });
      expect(first.admitted).toBe(true);
      await plant(prefix, key);
      const before = await snapshot(prefix);
      const ticketed = { windows: [window], gauges: [], lease: { id: "T", ttlMs: 60_000 }, ticket: true };
      if (!what.includes("settle only")) await expectCorrupt(store.admit(ticketed));
      await expectCorrupt(
        store.adjust({
          readBack: false,
          windows: [
            { key, windowMs: 60_000, algorithm: "fixed", noHolds: true, counters: [{ name: "tokens", delta: -1 }] },
          ],
          release: { id: "T", gauges: [], holds: [] },
          ticket: { id: "T", finish: "settle", keepMs: 60_000 },
        }),
      );
      if (!what.includes("ticket")) {
        await expectCorrupt(
          store.read({
            windows: [{ key, windowMs: 60_000, algorithm: "fixed", noHolds: true, counters: ["requests", "tokens"] }],
            gauges: [],
          }),
        );
      }
      expect(await snapshot(prefix)).toEqual(before);
      expect(store.health).toBe("healthy");
      await store.close();
    });
  }
});
