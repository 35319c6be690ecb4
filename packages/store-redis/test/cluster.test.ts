import type { ReadResult } from "@tollgate/core";
import calculateSlot from "cluster-key-slot";
import { Cluster } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createRedisStore } from "../src/index.js";
import { descriptor, uid } from "./helpers.js";

const cluster = new Cluster(inject("redisCluster").nodes);
afterAll(async () => {
  await cluster.quit();
});

/**
 * Base keys in different thirds of the slot space, so one request spans several slots and, with the three
 * masters `redis-cli --cluster create` sets up (0-5460, 5461-10922, 10923-16383), several nodes.
 */
function keysOnDistinctSlots(n: number): string[] {
  const keys: string[] = [];
  for (let part = 0; keys.length < n; ) {
    const key = `{api_key:${uid()}}`;
    if (Math.floor(calculateSlot(key) / 5462) === part) {
      keys.push(key);
      part++;
    }
  }
  return keys;
}

describe("redis cluster: requests spanning hash slots", () => {
  it("admits across slots without CROSSSLOT and denies all-or-nothing, restoring every counter", async () => {
    const prefix = `tgtest:${uid()}:`;
    const store = createRedisStore({ client: cluster, prefix, timeoutMs: 2000 });
    const [a, b, c] = keysOnDistinctSlots(3) as [string, string, string];
    const gaugeKey = a;
    const lease = (id: string) => ({ id, ttlMs: 30_000 });
    const batch = (id: string) => ({
      windows: [descriptor(a, 100, 1000), descriptor(b, 100, 1000), descriptor(c, 2, 1000)],
      gauges: [{ key: gaugeKey, name: "max_parallel_requests", limit: 100, enforce: true }],
      lease: lease(id),
    });
    const read = () =>
      store.read({
        windows: [a, b, c].map((key) => ({
          key,
          windowMs: 60_000,
          algorithm: "fixed" as const,
          counters: ["requests", "tokens"],
        })),
        gauges: [{ key: gaugeKey, name: "max_parallel_requests" }],
      });

    /** Two admitted requests on each of a, b and c (requests, tokens), and both their leases on the gauge. */
    const expectTwoAdmitted = (r: ReadResult) => {
      expect(r.windows.map((w) => w.counters.map((x) => x.value))).toEqual([
        [2, 20],
        [2, 20],
        [2, 20],
      ]);
      expect(r.gauges[0]!.inFlight).toBe(2);
    };

    expect((await store.admit(batch("r1"))).admitted).toBe(true);
    expect((await store.admit(batch("r2"))).admitted).toBe(true);
    expectTwoAdmitted(await read());

    // c's requests limit (2) is exhausted: the groups of a and b apply, then must be compensated.
    const denied = await store.admit(batch("r3"));
    expect(denied.admitted).toBe(false);
    expect(denied.denied).toEqual({ type: "counter", window: 2, counter: 0 });
    expectTwoAdmitted(denied);

    expectTwoAdmitted(await read());
    // The denied request's lease is nowhere: releasing it frees nothing.
    const rel = await store.adjust({
      windows: [],
      release: { id: "r3", gauges: [{ key: gaugeKey, name: "max_parallel_requests" }], holds: [] },
    });
    expect(rel.released).toBe(0);
    await store.close();
  });

  it("a cross-slot hold and gauge are all-or-nothing too, and release frees them on every slot", async () => {
    const prefix = `tgtest:${uid()}:`;
    const store = createRedisStore({ client: cluster, prefix, timeoutMs: 2000 });
    const [a, b] = keysOnDistinctSlots(2) as [string, string];
    const mk = (id: string) => ({
      windows: [
        {
          key: a,
          windowMs: 60_000,
          algorithm: "fixed" as const,
          counters: [{ name: "spend", limit: 100, amount: 0, hold: 40, enforce: true }],
        },
      ],
      gauges: [{ key: b, name: "max_parallel_requests", limit: 1, enforce: true }],
      lease: { id, ttlMs: 30_000 },
    });
    const first = await store.admit(mk("x1"));
    expect(first.admitted).toBe(true);
    expect(first.windows[0]!.counters[0]!.held).toBe(40);
    // The gauge on b is full: the hold applied on a's slot must be undone.
    const second = await store.admit(mk("x2"));
    expect(second.admitted).toBe(false);
    expect(second.denied).toEqual({ type: "gauge", gauge: 0 });
    expect(second.windows[0]!.counters[0]!.held).toBe(40);
    const q = {
      windows: [{ key: a, windowMs: 60_000, algorithm: "fixed" as const, counters: ["spend"] }],
      gauges: [{ key: b, name: "max_parallel_requests" }],
    };
    expect((await store.read(q)).windows[0]!.counters[0]!.held).toBe(40);
    const released = await store.adjust({
      windows: [],
      release: {
        id: "x1",
        gauges: [{ key: b, name: "max_parallel_requests" }],
        holds: [{ key: a, name: "spend" }],
      },
    });
    expect(released.released).toBe(2);
    const r = await store.read(q);
    expect(r.windows[0]!.counters[0]!.held).toBe(0);
    expect(r.gauges[0]!.inFlight).toBe(0);
    expect(
      await store.renew(
        { id: "x1", gauges: [{ key: b, name: "max_parallel_requests" }], holds: [{ key: a, name: "spend" }] },
        1000,
      ),
    ).toBe(0);
    await store.close();
  });

  it("concurrent cross-slot requests never overshoot any limit", async () => {
    const prefix = `tgtest:${uid()}:`;
    const store = createRedisStore({ client: cluster, prefix, timeoutMs: 5000 });
    const [a, b, c] = keysOnDistinctSlots(3) as [string, string, string];
    const results = await Promise.all(
      Array.from({ length: 200 }, () =>
        store.admit({
          windows: [descriptor(a, 40, 10_000), descriptor(b, 1000, 10_000), descriptor(c, 1000, 10_000)],
          gauges: [],
        }),
      ),
    );
    const admitted = results.filter((r) => r.admitted).length;
    // Spurious denials are possible while another request compensates; an overshoot never is.
    expect(admitted).toBeLessThanOrEqual(40);
    expect(admitted).toBeGreaterThan(0);
    const r = await store.read({
      windows: [a, b, c].map((key) => ({ key, windowMs: 60_000, algorithm: "fixed" as const, counters: ["requests"] })),
      gauges: [],
    });
    expect(r.windows.map((w) => w.counters[0]!.value)).toEqual([admitted, admitted, admitted]);
    await store.close();
  });

  it("a store given cluster nodes creates its own Cluster client and closes it", async () => {
    const store = createRedisStore({ cluster: { nodes: inject("redisCluster").nodes }, prefix: `tgtest:${uid()}:` });
    const [a, b] = keysOnDistinctSlots(2) as [string, string];
    const r = await store.admit({ windows: [descriptor(a, 5, 100), descriptor(b, 5, 100)], gauges: [] });
    expect(r.admitted).toBe(true);
    await store.close();
    await store.close();
    await expect(store.admit({ windows: [descriptor(a, 5, 100)], gauges: [] })).rejects.toMatchObject({
      code: "STORE_CLOSED",
    });
  });
});
