/**
 * Vitest globalSetup: starts one standalone redis-server, one 3-master cluster and one PostgreSQL server once per
 * test run and provides their addresses to every test file (`inject("redis")`, `inject("redisCluster")`,
 * `inject("postgres")`). Tests isolate themselves by random key prefixes (Redis) and by a database of their own
 * (`createDatabase(inject("postgres").url)`); nothing ever flushes these servers.
 * PostgreSQL costs about 0.7 s of one core at start (initdb + postmaster), in parallel with the Redis servers.
 */
import type { TestProject } from "vitest/node";
import { startPostgres } from "./postgres.js";
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

/** Serializable address of the shared PostgreSQL server. */
export interface ProvidedPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`: the admin database; create your own with `createDatabase`. */
  url: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    redis: ProvidedRedis;
    redisCluster: ProvidedRedisCluster;
    postgres: ProvidedPostgres;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const starts = await Promise.allSettled([startRedisServer(), startRedisCluster(), startPostgres()]);
  const failed = starts.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) {
    // Stop whichever did start (its process and temp dir would outlive the run), then fail with the first error.
    await Promise.allSettled(starts.map((s) => (s.status === "fulfilled" ? s.value.stop() : undefined)));
    throw failed.reason;
  }
  const [server, cluster, postgres] = starts.map((s) => (s as PromiseFulfilledResult<unknown>).value) as [
    Awaited<ReturnType<typeof startRedisServer>>,
    Awaited<ReturnType<typeof startRedisCluster>>,
    Awaited<ReturnType<typeof startPostgres>>,
  ];
  project.provide("redis", { url: server.url });
  project.provide("redisCluster", { nodes: cluster.nodes });
  project.provide("postgres", { url: postgres.url });
  return async () => {
    await Promise.all([server.stop(), cluster.stop(), postgres.stop()]);
  };
}
