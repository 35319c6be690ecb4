/**
 * @tollgate/store-redis: the `CounterStore` on Redis and Redis Cluster (ioredis), one Lua script per
 * admission, with a failure policy for when Redis is down.
 */
import { TollgateError } from "@tollgate/core";
import {
  createScriptStore,
  evalshaWithFallback,
  type FailurePolicy,
  type FailurePolicyOptions,
  type ResilientStore,
  resolveFailurePolicyOptions,
  type ScriptExecutor,
  withFailurePolicy,
} from "@tollgate/redis-scripts";
import calculateSlot from "cluster-key-slot";
import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from "ioredis";

export type {
  FailurePolicy,
  ResilientStore,
  StoreHealth,
  StoreHealthEvent,
} from "@tollgate/redis-scripts";

/** Options of {@link createRedisStore}. Give exactly one of `client`, `connection` or `cluster`. */
export interface RedisStoreOptions {
  /**
   * An ioredis `Redis` or `Cluster` client to use. The store never closes it. Its own settings apply; set
   * `commandTimeout` and `maxRetriesPerRequest` on it yourself (see the README) for fast failure.
   */
  client?: Redis | Cluster;
  /** A `redis://` URL or ioredis options for a standalone client the store creates and closes. */
  connection?: string | RedisOptions;
  /** Startup nodes (and options) for a Cluster client the store creates and closes. */
  cluster?: { nodes: ClusterNode[]; options?: ClusterOptions };
  /** Prepended to every key, outside the braces (`tollgate:{api_key:abc}:requests`). @default "tollgate:" */
  prefix?: string;
  /** What calls get while Redis is unavailable: `closed`, `open` or `fallback`. @default "closed" */
  failurePolicy?: FailurePolicy;
  /**
   * Milliseconds after which a call counts as failed. Also the `commandTimeout` of a client the store creates.
   * @default 100
   */
  timeoutMs?: number;
  /** While degraded, at most one call per this many ms probes Redis; the first answer recovers. @default 1000 */
  retryIntervalMs?: number;
  /** `fallback` only: each limit is divided by this many instances on the local store. @default 1 */
  fallbackInstances?: number;
  /**
   * Testing only: the store clock in ms, used by the scripts instead of Redis TIME (lets tests move time
   * without sleeping). Never set it in production: instances would stop agreeing on time. @default undefined
   */
  testClock?: () => number;
}

/** Settings of clients the store creates: fail fast instead of queueing, reconnect forever. */
function ownedClientDefaults(timeoutMs: number): RedisOptions {
  return {
    commandTimeout: timeoutMs,
    // A dead Redis must not hold a request: no per-request retries; queued commands fail at the next
    // failed reconnect attempt, and the timeout bounds everything else.
    maxRetriesPerRequest: 0,
    connectTimeout: Math.max(1000, timeoutMs),
    // Reconnect forever with a capped backoff, so the store recovers by itself when Redis is back.
    retryStrategy: (times: number) => Math.min(50 * times, 500),
  };
}

function isCluster(client: Redis | Cluster): client is Cluster {
  return (client as Cluster).isCluster === true;
}

function ioredisExecutor(client: Redis | Cluster): ScriptExecutor {
  return evalshaWithFallback({
    evalsha: (sha, keys, args) => client.evalsha(sha, keys.length, ...keys, ...args),
    eval: (source, keys, args) => client.eval(source, keys.length, ...keys, ...args),
  });
}

/**
 * Creates the Redis `CounterStore`. Standalone: one round trip per admission, adjustment and renewal.
 * Cluster: one script per hash-slot group, in parallel, with compensation when a group denies.
 * @example
 * import { Redis } from "ioredis";
 * const store = createRedisStore({ client: new Redis(process.env.REDIS_URL!), failurePolicy: "fallback" });
 * @example
 * const store = createRedisStore({ connection: "redis://127.0.0.1:6379", timeoutMs: 50 });
 * await store.close(); // quits the client it created
 */
export function createRedisStore(options: RedisStoreOptions): ResilientStore {
  const given = [options.client, options.connection, options.cluster].filter((x) => x !== undefined).length;
  if (given !== 1) {
    throw new TollgateError("INVALID_ARGUMENT", "createRedisStore needs exactly one of client, connection or cluster");
  }
  const policyOptions: FailurePolicyOptions = {
    policy: options.failurePolicy,
    timeoutMs: options.timeoutMs,
    retryIntervalMs: options.retryIntervalMs,
    instances: options.fallbackInstances,
  };
  // Bad failure-policy options must throw before a client exists: a created client connects at once and
  // would reconnect forever with nothing left to close it.
  const { timeoutMs } = resolveFailurePolicyOptions(policyOptions);
  const owned = !options.client;
  let client: Redis | Cluster;
  if (options.client) {
    client = options.client;
  } else {
    const defaults = ownedClientDefaults(timeoutMs);
    if (options.cluster) {
      client = new Cluster(options.cluster.nodes, {
        clusterRetryStrategy: defaults.retryStrategy,
        ...options.cluster.options,
        redisOptions: { ...defaults, ...options.cluster.options?.redisOptions },
      });
    } else {
      const conn = options.connection!;
      client = typeof conn === "string" ? new Redis(conn, defaults) : new Redis({ ...defaults, ...conn });
    }
    // Connection errors surface through calls (as STORE_UNAVAILABLE) and health events, not as unhandled events.
    client.on("error", () => {});
  }
  const core = createScriptStore({
    name: "redis",
    exec: ioredisExecutor(client),
    prefix: options.prefix,
    slotOf: isCluster(client) ? calculateSlot : undefined,
    testClock: options.testClock,
    onClose: owned
      ? async () => {
          // QUIT lets pending replies arrive; a dead server cannot answer it, so bound the wait.
          // The bound is cleared once QUIT answers, so close() never keeps the process alive for it.
          let timer: ReturnType<typeof setTimeout> | undefined;
          const bound = new Promise((r) => {
            timer = setTimeout(r, timeoutMs);
          });
          await Promise.race([client.quit().catch(() => undefined), bound]);
          clearTimeout(timer);
          client.disconnect();
        }
      : undefined,
  });
  return withFailurePolicy(core, policyOptions);
}
