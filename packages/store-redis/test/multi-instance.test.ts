import { Cluster, Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createRedisStore } from "../src/index.js";
import { descriptor, uid } from "./helpers.js";

// LiteLLM documents a drift of up to 10 at 100 RPS across 3 instances; the shared script makes ours zero.
describe("multi-instance accuracy", () => {
  const clients: Array<Redis | Cluster> = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit()));
  });

  async function fire(make: () => Redis | Cluster): Promise<{ admitted: number; stored: number }> {
    const prefix = `tgtest:${uid()}:`;
    const key = `{api_key:${uid()}}`;
    const stores = [0, 1, 2].map(() => {
      const client = make();
      clients.push(client);
      return createRedisStore({ client, prefix, timeoutMs: 5000 });
    });
    const batch = { windows: [descriptor(key, 50, 1_000_000)], gauges: [] };
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => stores[i % 3]!.admit(batch)));
    const read = await stores[0]!.read({
      windows: [{ key, windowMs: 60_000, algorithm: "fixed", counters: ["requests"] }],
      gauges: [],
    });
    await Promise.all(stores.map((s) => s.close()));
    return { admitted: results.filter((r) => r.admitted).length, stored: read.windows[0]!.counters[0]!.value };
  }

  it("3 instances with separate clients, 300 concurrent admissions, limit 50: exactly 50 (standalone)", async () => {
    const { admitted, stored } = await fire(() => new Redis(inject("redis").url));
    expect(admitted).toBe(50);
    expect(stored).toBe(50);
  });

  it("3 instances with separate clients, 300 concurrent admissions, limit 50: exactly 50 (cluster)", async () => {
    const { admitted, stored } = await fire(() => new Cluster(inject("redisCluster").nodes));
    expect(admitted).toBe(50);
    expect(stored).toBe(50);
  });
});
