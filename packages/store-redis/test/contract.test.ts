import { runStoreContract } from "@tollgate/store-test-suite";
import { Cluster, Redis } from "ioredis";
import { afterAll, inject } from "vitest";
import { createRedisStore } from "../src/index.js";

// One client per topology for the whole file; stores get it injected (and must not close it).
const redis = new Redis(inject("redis").url);
const cluster = new Cluster(inject("redisCluster").nodes);
afterAll(async () => {
  await redis.quit();
  await cluster.quit();
});

function factory(client: Redis | Cluster) {
  return ({ prefix }: { prefix: string }) => {
    let now = Date.now();
    const store = createRedisStore({ client, prefix, timeoutMs: 2000, testClock: () => now });
    return {
      store,
      advance: (ms: number) => {
        now += ms;
      },
    };
  };
}

runStoreContract({ name: "redis (standalone)", create: factory(redis) });
runStoreContract({ name: "redis (cluster)", create: factory(cluster) });

// The same suite on Redis' own clock (no injected time): its time-dependent cases use short real windows.
runStoreContract({
  name: "redis (standalone, server TIME, real expiry)",
  create: ({ prefix }) => ({ store: createRedisStore({ client: redis, prefix, timeoutMs: 2000 }) }),
});
