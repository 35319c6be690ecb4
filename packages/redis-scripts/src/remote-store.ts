/**
 * The options the Redis and Upstash stores share, and the assembly both do: a script store with its own timeouts
 * and compensations, wrapped in the failure policy, with the fallback store created up front.
 */
import { type CounterStore, TollgateError } from "@tollgate/core";
import type { ScriptExecutor } from "./executor.js";
import {
  type FailurePolicy,
  type FailurePolicyOptions,
  type ResilientStore,
  resolveFailurePolicyOptions,
  withFailurePolicy,
} from "./failure-policy.js";
import { createScriptStore, DEFAULT_TICKET_KEEP_MS } from "./script-store.js";

/** Options shared by `createRedisStore` and `createUpstashStore`. */
export interface RemoteStoreOptions {
  /** Prepended to every key, outside the braces (`tollgate:{api_key:abc}:requests`). @default "tollgate:" */
  prefix?: string;
  /**
   * What calls get while the backend cannot answer within `timeoutMs`: `"closed"` throws `StoreUnavailableError`
   * (`code: "STORE_UNAVAILABLE"`), `"open"` admits without counting (`degraded: "open"`), `"fallback"` decides on a
   * local in-memory store (`degraded: "fallback"`).
   * @default "closed"
   */
  failurePolicy?: FailurePolicy;
  /**
   * A script call that has not answered after this many ms counts as failed. An admission that fails this way is
   * compensated in the background (it may still be applied later), and a settle or release with a ticket is
   * replayed until it reaches the backend. Defaults differ per store (Redis 250, Upstash 500).
   */
  timeoutMs?: number;
  /**
   * While degraded, calls answer at once by the policy, except one probe at most every `retryIntervalMs`; the first
   * probe that answers switches back to healthy. Waiting replays and compensations are retried at this pace.
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
   * `fallback` only: the local store. When omitted, a `@tollgate/store-memory` store is created with the store
   * (not at the first failure) and closed by `close()`; an injected one is never closed.
   * @default createMemoryStore()
   */
  fallbackStore?: CounterStore;
  /**
   * How long the store's own tickets live: the finished mark of a compensation (an admission arriving that much
   * later than its compensation would apply) and the ticket of an admission that did not ask for one.
   * @default 60000
   */
  ticketKeepMs?: number;
  /** Local clock for retry intervals, health events and `open` results (never for limits). @default Date.now */
  now?: () => number;
  /**
   * Testing only: the store clock in ms, read on every call and used by the scripts instead of Redis `TIME`
   * (lets tests move time without sleeping). Never set it in production: instances would stop agreeing on time.
   * @default undefined (Redis TIME)
   */
  testClock?: () => number;
}

/** {@link RemoteStoreOptions} with defaults applied, validated before anything is created. */
export interface ResolvedRemoteOptions {
  prefix: string | undefined;
  policy: FailurePolicyOptions;
  timeoutMs: number;
  retryIntervalMs: number;
  ticketKeepMs: number;
}

/**
 * Validates the shared options and applies their defaults (`timeoutMs` per store), throwing `INVALID_ARGUMENT` /
 * `INVALID_DURATION` before a client or a fallback store exists. `options` must be an object.
 */
export function resolveRemoteOptions(options: unknown, store: string, defaultTimeoutMs: number): ResolvedRemoteOptions {
  if (typeof options !== "object" || options === null) {
    throw new TollgateError("INVALID_ARGUMENT", `[${store}] options must be an object`);
  }
  const o = options as RemoteStoreOptions;
  // null and undefined both mean the default prefix (applied by createScriptStore).
  if (o.prefix != null && typeof o.prefix !== "string") {
    throw new TollgateError("INVALID_ARGUMENT", `[${store}] prefix must be a string`);
  }
  if (o.testClock !== undefined && typeof o.testClock !== "function") {
    throw new TollgateError("INVALID_ARGUMENT", `[${store}] testClock must be a function`);
  }
  const ticketKeepMs = o.ticketKeepMs ?? DEFAULT_TICKET_KEEP_MS;
  if (!Number.isSafeInteger(ticketKeepMs) || ticketKeepMs <= 0) {
    throw new TollgateError(
      "INVALID_DURATION",
      `[${store}] ticketKeepMs must be a positive integer, got ${String(o.ticketKeepMs)}`,
    );
  }
  const policy: FailurePolicyOptions = {
    policy: o.failurePolicy,
    timeoutMs: o.timeoutMs ?? defaultTimeoutMs,
    retryIntervalMs: o.retryIntervalMs,
    instances: o.fallbackInstances,
    fallbackStore: o.fallbackStore,
    now: o.now,
  };
  const resolved = resolveFailurePolicyOptions(policy);
  return {
    prefix: o.prefix ?? undefined,
    policy,
    timeoutMs: resolved.timeoutMs,
    retryIntervalMs: resolved.retryIntervalMs,
    ticketKeepMs,
  };
}

/** What a store package adds to the shared options to build a remote store. */
export interface RemoteStoreParts {
  name: string;
  exec: ScriptExecutor;
  slotOf?: (key: string) => number;
  /** Started at once; the first calls wait for it (at most `timeoutMs`). */
  ready?: () => Promise<unknown>;
  onClose?: () => Promise<void> | void;
  /** Creates the local store of the `fallback` policy (called once, at creation, when none was given). */
  createFallback: () => CounterStore;
}

/**
 * Builds a remote store from resolved options: the script store (own timeouts, tickets, compensations) wrapped in
 * the failure policy, with the fallback store created now when the policy needs one.
 */
export function assembleRemoteStore(
  options: RemoteStoreOptions,
  resolved: ResolvedRemoteOptions,
  parts: RemoteStoreParts,
): ResilientStore {
  const core = createScriptStore({
    name: parts.name,
    exec: parts.exec,
    prefix: resolved.prefix,
    slotOf: parts.slotOf,
    timeoutMs: resolved.timeoutMs,
    ticketKeepMs: resolved.ticketKeepMs,
    retryIntervalMs: Math.max(1, resolved.retryIntervalMs),
    now: options.now,
    ready: parts.ready,
    testClock: options.testClock,
    onClose: parts.onClose,
  });
  const created = resolved.policy.policy === "fallback" && options.fallbackStore === undefined;
  return withFailurePolicy(core, {
    ...resolved.policy,
    fallbackStore: created ? parts.createFallback() : options.fallbackStore,
    closeFallback: created,
  });
}
