/**
 * @tollgate/store-redis: the `CounterStore` on Redis and Redis Cluster (ioredis), one Lua script per
 * admission, with a failure policy for when Redis is down.
 */
import { TollgateError } from "@tollgate/core";
import {
  assembleRemoteStore,
  evalshaWithFallback,
  type RemoteStoreOptions,
  type ResilientStore,
  resolveRemoteOptions,
  SCRIPTS,
  type ScriptExecutor,
} from "@tollgate/redis-scripts";
import { createMemoryStore } from "@tollgate/store-memory";
import calculateSlot from "cluster-key-slot";
import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from "ioredis";

export type {
  FailurePolicy,
  RemoteStoreOptions,
  ResilientStore,
  StoreHealth,
  StoreHealthEvent,
} from "@tollgate/redis-scripts";

/** Default of {@link RedisStoreOptions.timeoutMs}. */
export const DEFAULT_REDIS_TIMEOUT_MS = 1000;

/**
 * Options of {@link createRedisStore}: the options every remote store shares ({@link RemoteStoreOptions}), and
 * exactly one of `client`, `connection` or `cluster`.
 */
export interface RedisStoreOptions extends RemoteStoreOptions {
  /**
   * An ioredis `Redis` or `Cluster` client to use. The store never closes it. Its own settings apply; set
   * `commandTimeout` and `maxRetriesPerRequest: 0` on it yourself (see the README) for fast failure.
   */
  client?: Redis | Cluster;
  /** A `redis://` URL or ioredis options for a standalone client the store creates and closes. */
  connection?: string | RedisOptions;
  /** Startup nodes (and options) for a Cluster client the store creates and closes. */
  cluster?: { nodes: ClusterNode[]; options?: ClusterOptions };
  /**
   * A script call that has not answered after this many ms counts as failed (also the `commandTimeout` of a client
   * the store creates). An admission that fails this way is undone in the background, since Redis may still apply
   * it; a settle or release with a ticket is replayed until Redis answers.
   * @default 1000
   */
  timeoutMs?: number;
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

/** Resolves once a Cluster client knows its nodes (at once when it already does). */
function clusterReady(cluster: Cluster): Promise<void> {
  if (cluster.status === "ready") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onReady = () => {
      cluster.off("error", onError);
      resolve();
    };
    const onError = (err: unknown) => {
      cluster.off("ready", onReady);
      reject(err);
    };
    cluster.once("ready", onReady);
    cluster.once("error", onError);
  });
}

/** `SCRIPT LOAD` of `source` on the standalone server, or on every master of the Cluster. */
async function loadScript(client: Redis | Cluster, source: string): Promise<void> {
  if (!isCluster(client)) {
    await client.script("LOAD", source);
    return;
  }
  await clusterReady(client);
  await Promise.all(client.nodes("master").map((node) => node.script("LOAD", source)));
}

function ioredisExecutor(client: Redis | Cluster): ScriptExecutor {
  return evalshaWithFallback({
    evalsha: (sha, keys, args) => client.evalsha(sha, keys.length, ...keys, ...args),
    eval: (source, keys, args) => client.eval(source, keys.length, ...keys, ...args),
    load: (source) => loadScript(client, source),
  });
}

/**
 * Creates the Redis `CounterStore`. Standalone: one round trip per admission, adjustment and renewal.
 * Cluster: one script per hash-slot group, in parallel, with compensation when a group denies or does not answer.
 * The scripts are loaded (`SCRIPT LOAD`, every master of a Cluster) as the store is created; the first calls wait
 * for that, at most `timeoutMs`.
 * @example
 * import { Redis } from "ioredis";
 * const store = createRedisStore({ client: new Redis(process.env.REDIS_URL!), failurePolicy: "fallback" });
 * @example
 * const store = createRedisStore({ connection: "redis://127.0.0.1:6379", timeoutMs: 50 });
 * await store.close(); // quits the client it created
 */
export function createRedisStore(options: RedisStoreOptions): ResilientStore {
  // Bad options must throw before a client exists: a created client connects at once and would reconnect forever
  // with nothing left to close it.
  const resolved = resolveRemoteOptions(options, "redis", DEFAULT_REDIS_TIMEOUT_MS);
  const given = [options.client, options.connection, options.cluster].filter((x) => x !== undefined).length;
  if (given !== 1) {
    throw new TollgateError("INVALID_ARGUMENT", "createRedisStore needs exactly one of client, connection or cluster");
  }
  if (options.client !== undefined && !(options.client instanceof Redis || options.client instanceof Cluster)) {
    throw new TollgateError("INVALID_ARGUMENT", "[redis] client must be an ioredis Redis or Cluster");
  }
  if (options.cluster !== undefined && !Array.isArray(options.cluster.nodes)) {
    throw new TollgateError("INVALID_ARGUMENT", "[redis] cluster.nodes must be an array of { host, port }");
  }
  if (
    options.connection !== undefined &&
    typeof options.connection !== "string" &&
    typeof options.connection !== "object"
  ) {
    throw new TollgateError("INVALID_ARGUMENT", "[redis] connection must be a redis:// URL or ioredis options");
  }
  const { timeoutMs } = resolved;
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
  return assembleRemoteStore(options, resolved, {
    name: "redis",
    exec: ioredisExecutor(client),
    slotOf: isCluster(client) ? calculateSlot : undefined,
    ready: () => Promise.all(SCRIPTS.map((s) => loadScript(client, s.source))),
    createFallback: () => createMemoryStore(),
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
}
