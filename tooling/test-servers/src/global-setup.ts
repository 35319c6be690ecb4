/**
 * Vitest globalSetup: starts one standalone redis-server and one 3-master cluster once per test run and
 * provides their addresses to every test file (`inject("redis")`, `inject("redisCluster")`).
 * Tests isolate themselves by random key prefixes; nothing ever flushes these servers.
 */
import type { TestProject } from "vitest/node";
import { startRedisCluster, startRedisServer } from "./redis.js";

/** Serializable address of the shared standalone server. */
export interface ProvidedRedis {
  /** `redis://127.0.0.1:<port>` */
  url: string;
}

/** Serializable addresses of the shared cluster's masters. */
export interface ProvidedRedisCluster {
  nodes: Array<{ host: string; port: number }>;
}

declare module "vitest" {
  export interface ProvidedContext {
    redis: ProvidedRedis;
    redisCluster: ProvidedRedisCluster;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [serverStart, clusterStart] = await Promise.allSettled([startRedisServer(), startRedisCluster()]);
  if (serverStart.status === "rejected" || clusterStart.status === "rejected") {
    // Stop whichever did start (its process and temp dir would outlive the run), then fail with the first error.
    await Promise.allSettled(
      [serverStart, clusterStart].map((s) => (s.status === "fulfilled" ? s.value.stop() : undefined)),
    );
    throw serverStart.status === "rejected" ? serverStart.reason : (clusterStart as PromiseRejectedResult).reason;
  }
  const server = serverStart.value;
  const cluster = clusterStart.value;
  project.provide("redis", { url: server.url });
  project.provide("redisCluster", { nodes: cluster.nodes });
  return async () => {
    await Promise.all([server.stop(), cluster.stop()]);
  };
}
