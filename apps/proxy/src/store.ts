/** The store the config describes: memory (default), Redis, Redis Cluster or Upstash, with its failure policy. */
import type { CounterStore } from "@tollgate/core";
import { createMemoryStore } from "@tollgate/store-memory";
import { createRedisStore, type ResilientStore } from "@tollgate/store-redis";
import { createUpstashStore } from "@tollgate/store-upstash";
import type { StoreConfig } from "./config/load.js";

export interface StoreHandle {
  store: CounterStore;
  health(): "healthy" | "degraded";
  close(): Promise<void>;
}

export function createStore(
  config: StoreConfig,
  onHealth: (state: "healthy" | "degraded", cause: Error | undefined) => void,
): StoreHandle {
  if (config.type === "memory") {
    const store = createMemoryStore({ maxEntries: config.maxEntries ?? 500_000 });
    return { store, health: () => "healthy", close: () => store.close() };
  }
  let store: ResilientStore;
  if (config.type === "redis") {
    store = createRedisStore({
      connection: config.url,
      prefix: config.prefix,
      failurePolicy: config.failurePolicy,
      timeoutMs: config.timeoutMs,
      fallbackInstances: config.fallbackInstances,
    });
  } else if (config.type === "redis_cluster") {
    store = createRedisStore({
      cluster: {
        nodes: config.nodes,
        options: config.password === undefined ? undefined : { redisOptions: { password: config.password } },
      },
      prefix: config.prefix,
      failurePolicy: config.failurePolicy,
      timeoutMs: config.timeoutMs,
      fallbackInstances: config.fallbackInstances,
    });
  } else {
    store = createUpstashStore({
      url: config.url,
      token: config.token,
      prefix: config.prefix,
      failurePolicy: config.failurePolicy,
      timeoutMs: config.timeoutMs,
      fallbackInstances: config.fallbackInstances,
    });
  }
  store.onHealthChange((e) => onHealth(e.state, (e as { cause?: Error }).cause));
  return { store, health: () => store.health, close: () => store.close() };
}
