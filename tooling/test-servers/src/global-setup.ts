/**
 * Vitest globalSetup: starts one standalone redis-server and one 3-master cluster once per test run and
 * provides their addresses to every test file (`inject("redis")`, `inject("redisCluster")`).
 * Tests isolate themselves by random key prefixes; nothing ever flushes these servers.
 */
import type { TestProject } from "vitest/node";
import { type RedisClusterHandle, type RedisServerHandle, startRedisCluster, startRedisServer } from "./redis.js";

/** Serializable address of the shared standalone server. */
export interface ProvidedRedis {
  host: string;
  port: number;
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
  let server: RedisServerHandle | undefined;
  let cluster: RedisClusterHandle | undefined;
  try {
    [server, cluster] = await Promise.all([startRedisServer(), startRedisCluster()]);
  } catch (err) {
    await server?.stop();
    await cluster?.stop();
    throw err;
  }
  project.provide("redis", { host: server.host, port: server.port, url: server.url });
  project.provide("redisCluster", { nodes: cluster.nodes });
  return async () => {
    await Promise.all([server?.stop(), cluster?.stop()]);
  };
}
