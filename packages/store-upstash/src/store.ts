import { TollgateError } from "@tollgate/core";
import {
  assembleRemoteStore,
  type RemoteStoreOptions,
  type ResilientStore,
  resolveRemoteOptions,
} from "@tollgate/redis-scripts";
import { createMemoryStore } from "@tollgate/store-memory";
import { Redis } from "@upstash/redis";
import { requesterOf, upstashExecutor } from "./executor.js";

/**
 * Options of {@link createUpstashStore}: the options every remote store shares ({@link RemoteStoreOptions}), and
 * either `client`, or `url` and `token`.
 */
export interface UpstashStoreOptions extends RemoteStoreOptions {
  /**
   * A client from `@upstash/redis` (or `@upstash/redis/cloudflare`, `@upstash/redis/fastly`). The store never
   * closes it. Its auto-pipelining and automatic deserialization settings do not matter: the store sends each
   * script call as its own request through the client's HTTP requester.
   * @default a client created from `url` and `token`
   */
  client?: Redis;
  /**
   * REST URL of the database (`UPSTASH_REDIS_REST_URL`), used when no `client` is given. The store then creates
   * a client without retries (an admission is not idempotent: a retried request could count twice).
   * @default undefined
   */
  url?: string;
  /** REST token of the database (`UPSTASH_REDIS_REST_TOKEN`), used with `url`. @default undefined */
  token?: string;
  /**
   * A call (one HTTP request, two on a NOSCRIPT fallback) that has not answered after this many ms counts as a
   * failure: the request is aborted and the failure policy decides. HTTPS round trips to a database in the same
   * region usually take a few ms, but a cold connection needs a TLS handshake, hence a looser default than Redis.
   * @default 500
   */
  timeoutMs?: number;
}

/** Default of {@link UpstashStoreOptions.timeoutMs}. */
export const DEFAULT_UPSTASH_TIMEOUT_MS = 500;

function clientFrom(options: UpstashStoreOptions): Redis {
  if (options.client) return options.client;
  const { url, token } = options;
  if (typeof url !== "string" || url.length === 0 || typeof token !== "string" || token.length === 0) {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      "[upstash] give either `client`, or both `url` and `token` (UPSTASH_REDIS_REST_URL / UPSTASH_REDIS_REST_TOKEN)",
    );
  }
  return new Redis({
    url,
    token,
    retry: false,
    enableAutoPipelining: false,
    automaticDeserialization: false,
  });
}

/**
 * Creates a `CounterStore` on Upstash Redis over its REST API: one HTTP request per admission, settle, release
 * and renewal (EVALSHA of the shared Tollgate scripts, EVAL once after NOSCRIPT), time from Redis `TIME`, and
 * the failure policy of the Redis store. Runs on Node and on edge runtimes.
 * @example
 * import { Redis } from "@upstash/redis";
 * const store = createUpstashStore({ client: Redis.fromEnv(), failurePolicy: "fallback" });
 */
export function createUpstashStore(options: UpstashStoreOptions = {}): ResilientStore {
  // The shared checks (INVALID_DURATION for timeoutMs, ...), before the executor is built on timeoutMs.
  const resolved = resolveRemoteOptions(options, "upstash", DEFAULT_UPSTASH_TIMEOUT_MS);
  return assembleRemoteStore(options, resolved, {
    name: "upstash",
    exec: upstashExecutor(requesterOf(clientFrom(options)), resolved.timeoutMs),
    createFallback: () => createMemoryStore(),
  });
}
