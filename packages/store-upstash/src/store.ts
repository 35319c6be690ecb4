import type { CounterStore } from "@tollgate/core";
import { TollgateError } from "@tollgate/core";
import {
  createScriptStore,
  type FailurePolicy,
  type FailurePolicyOptions,
  type ResilientStore,
  resolveFailurePolicyOptions,
  withFailurePolicy,
} from "@tollgate/redis-scripts";
import { Redis } from "@upstash/redis";
import { requesterOf, upstashExecutor } from "./executor.js";

/** Options of {@link createUpstashStore}. Give either `client`, or `url` and `token`. */
export interface UpstashStoreOptions {
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
  /** Prepended to every key, outside the braces, so several apps can share one database. @default "tollgate:" */
  prefix?: string;
  /**
   * What calls get when Upstash cannot answer within `timeoutMs`: `"closed"` throws `StoreUnavailableError`
   * (`code: "STORE_UNAVAILABLE"`), `"open"` admits without counting (`degraded: "open"`), `"fallback"` decides
   * on a local in-memory store (`degraded: "fallback"`).
   * @default "closed"
   */
  failurePolicy?: FailurePolicy;
  /**
   * A call (one HTTP request, two on a NOSCRIPT fallback) that has not answered after this many ms counts as a
   * failure: the request is aborted and the failure policy decides. HTTPS round trips to a database in the same
   * region usually take a few ms, but a cold connection needs a TLS handshake, hence a looser default than Redis.
   * @default 500
   */
  timeoutMs?: number;
  /**
   * While degraded, calls answer at once by the policy, except one probe at most every `retryIntervalMs`; the
   * first probe that answers switches back to healthy.
   * @default 1000
   */
  retryIntervalMs?: number;
  /**
   * `fallback` only: each limit is divided by this number of instances (rounded down, at least 1 for a positive
   * limit), so N instances deciding locally stay near the shared limit.
   * @default 1
   */
  fallbackInstances?: number;
  /**
   * `fallback` only: the local store. When omitted, a `@tollgate/store-memory` store is created and closed by
   * `close()`; an injected one is never closed.
   * @default createMemoryStore()
   */
  fallbackStore?: CounterStore;
  /** Local clock for retry intervals, health events and `open` results (never for limits). @default Date.now */
  now?: () => number;
  /**
   * Testing only: the store clock in ms, read on every call and used by the scripts instead of Redis `TIME`
   * (lets tests move time without sleeping). Never set it in production: instances would stop agreeing on time.
   * @default undefined (Redis TIME)
   */
  testClock?: () => number;
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
  const policyOptions: FailurePolicyOptions = {
    policy: options.failurePolicy,
    timeoutMs: options.timeoutMs ?? DEFAULT_UPSTASH_TIMEOUT_MS,
    retryIntervalMs: options.retryIntervalMs,
    instances: options.fallbackInstances,
    fallbackStore: options.fallbackStore,
    now: options.now,
  };
  // The failure policy's own checks (INVALID_DURATION for timeoutMs), before the executor is built on timeoutMs.
  const { timeoutMs } = resolveFailurePolicyOptions(policyOptions);
  // null and undefined both mean the default prefix (applied by createScriptStore).
  if (options.prefix != null && typeof options.prefix !== "string") {
    throw new TollgateError("INVALID_ARGUMENT", "[upstash] prefix must be a string");
  }
  const backend = createScriptStore({
    name: "upstash",
    exec: upstashExecutor(requesterOf(clientFrom(options)), timeoutMs),
    prefix: options.prefix,
    testClock: options.testClock,
  });
  return withFailurePolicy(backend, policyOptions);
}
