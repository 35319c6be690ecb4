import { Cluster, Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";
import { startRedisCluster, startRedisServer } from "../src/index.js";

describe("test-servers: redis", () => {
  it("the globalSetup provides a standalone server and a cluster that answer", async () => {
    const redis = new Redis(inject("redis").url);
    expect(await redis.ping()).toBe("PONG");
    await redis.quit();
    const cluster = new Cluster(inject("redisCluster").nodes);
    const info = await cluster.cluster("INFO");
    expect(String(info)).toContain("cluster_state:ok");
    expect(inject("redisCluster").nodes).toHaveLength(3);
    await cluster.quit();
  });

  it("kill9 stops answering and restart comes back on the same port", async () => {
    const server = await startRedisServer();
    try {
      const probe = () =>
        new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      const a = probe();
      await a.connect();
      await a.set("k", "1");
      await a.quit();
      await server.kill9();
      const b = probe();
      b.on("error", () => {});
      await expect(b.connect()).rejects.toThrow();
      b.disconnect();
      await server.restart();
      const c = probe();
      await c.connect();
      expect(await c.ping()).toBe("PONG");
      // No persistence: a crash loses data, as a real crash without AOF would.
      expect(await c.get("k")).toBeNull();
      await c.quit();
    } finally {
      await server.stop();
    }
  });

  it("a missing redis-server binary is a clear failure with install instructions, never a skip", async () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      await expect(startRedisServer()).rejects.toThrow("apt-get install -y redis-server");
      await expect(startRedisCluster()).rejects.toThrow("apt-get install -y redis-server");
    } finally {
      process.env.PATH = path;
    }
  });
});
