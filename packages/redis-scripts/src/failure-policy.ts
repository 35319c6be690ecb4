/**
 * The failure policy shared by the remote stores: what a request gets when the backend cannot answer within
 * a few milliseconds, and how the store recovers by itself when the backend answers again.
 */
import {
  type AdjustBatch,
  type AdjustResult,
  type AdmitBatch,
  type AdmitResult,
  type CounterStore,
  type LeaseRef,
  type ReadQuery,
  type ReadResult,
  STORE_CONTRACT_VERSION,
  StoreUnavailableError,
  TollgateError,
  validateAdjustBatch,
  validateAdmitBatch,
  validateReadQuery,
  validateRenew,
  type WindowState,
} from "@tollgate/core";
import { createMemoryStore } from "@tollgate/store-memory";
import { type Listener, Listeners } from "./emitter.js";

/**
 * - `closed`: fail the call with `StoreUnavailableError` (`code: "STORE_UNAVAILABLE"`; the proxy answers 503).
 * - `open`: admit without counting; results carry `degraded: "open"`.
 * - `fallback`: decide on a local in-memory store (limits optionally divided by the instance count);
 *   results carry `degraded: "fallback"`.
 */
export type FailurePolicy = "closed" | "open" | "fallback";

/** Health of the backend as the wrapper sees it. */
export type StoreHealth = "healthy" | "degraded";

/** Emitted on every switch between healthy and degraded. */
export interface StoreHealthEvent {
  /** Name of the wrapped store, e.g. `"redis"`. */
  store: string;
  /** The new state. */
  state: StoreHealth;
  /** The configured policy, i.e. what calls get while degraded. */
  policy: FailurePolicy;
  /** When the switch happened (ms since epoch, local clock). */
  at: number;
  /** The error that made the backend count as unavailable (switches to `degraded` only). */
  cause?: TollgateError;
}

/** Options of {@link withFailurePolicy}. */
export interface FailurePolicyOptions {
  /** What calls get while the backend is unavailable. @default "closed" */
  policy?: FailurePolicy;
  /** A call that has not answered after this many ms counts as a failure. @default 100 */
  timeoutMs?: number;
  /**
   * While degraded, calls skip the backend (answering at once by the policy) except one probe call at most
   * every `retryIntervalMs`; the first probe that answers switches back to healthy. @default 1000
   */
  retryIntervalMs?: number;
  /**
   * Local store for the `fallback` policy. When omitted, a `@tollgate/store-memory` store is created
   * (and closed by `close()`); an injected one is never closed. @default createMemoryStore()
   */
  fallbackStore?: CounterStore;
  /**
   * `fallback` only: each limit is divided by this number of instances (rounded down, never below 1 for a
   * positive limit), so N instances deciding locally stay near the shared limit. @default 1
   */
  instances?: number;
  /** Local clock for retry intervals, events and `open` results. @default Date.now */
  now?: () => number;
}

/** A `CounterStore` wrapped by {@link withFailurePolicy}. */
export interface ResilientStore extends CounterStore {
  /** `degraded` while the backend is considered unavailable. */
  readonly health: StoreHealth;
  /** The policy applied while degraded. */
  readonly policy: FailurePolicy;
  /** Listens to health switches; returns a function that removes the listener. */
  onHealthChange(listener: Listener<StoreHealthEvent>): () => void;
}

/** The settings of {@link FailurePolicyOptions} that take a default, resolved and validated. */
export interface ResolvedFailurePolicyOptions {
  policy: FailurePolicy;
  timeoutMs: number;
  retryIntervalMs: number;
  instances: number;
}

/**
 * Applies the defaults of {@link FailurePolicyOptions} and validates them, throwing what {@link withFailurePolicy}
 * throws for bad options (`INVALID_DURATION` for `timeoutMs` / `retryIntervalMs`, `INVALID_ARGUMENT` for
 * `instances` / `policy`). Stores call it before acquiring anything (e.g. opening a client) that bad options
 * would otherwise leak.
 */
export function resolveFailurePolicyOptions(o: FailurePolicyOptions = {}): ResolvedFailurePolicyOptions {
  const resolved: ResolvedFailurePolicyOptions = {
    policy: o.policy ?? "closed",
    timeoutMs: o.timeoutMs ?? 100,
    retryIntervalMs: o.retryIntervalMs ?? 1000,
    instances: o.instances ?? 1,
  };
  if (!Number.isSafeInteger(resolved.timeoutMs) || resolved.timeoutMs <= 0) {
    throw new TollgateError("INVALID_DURATION", `timeoutMs must be a positive integer, got ${o.timeoutMs}`);
  }
  if (!Number.isSafeInteger(resolved.retryIntervalMs) || resolved.retryIntervalMs < 0) {
    throw new TollgateError(
      "INVALID_DURATION",
      `retryIntervalMs must be a non-negative integer, got ${o.retryIntervalMs}`,
    );
  }
  if (!Number.isSafeInteger(resolved.instances) || resolved.instances < 1) {
    throw new TollgateError("INVALID_ARGUMENT", `instances must be a positive integer, got ${o.instances}`);
  }
  if (!["closed", "open", "fallback"].includes(resolved.policy)) {
    throw new TollgateError("INVALID_ARGUMENT", `policy must be "closed", "open" or "fallback", got ${o.policy}`);
  }
  return resolved;
}

const isUnavailable = (err: unknown): err is TollgateError =>
  err instanceof TollgateError && err.code === "STORE_UNAVAILABLE";

function withTimeout<T>(p: Promise<T>, ms: number, store: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreUnavailableError(store, `no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** Divides a limit for one of `n` instances: rounded down, at least 1 when the limit is positive. */
export function perInstanceLimit(limit: number, n: number): number {
  if (n <= 1 || limit === 0) return limit;
  return Math.max(1, Math.floor(limit / n));
}

const zeroWindows = (windows: Array<{ counters: unknown[] }>, now: number): WindowState[] =>
  windows.map((w) => ({ start: now, counters: w.counters.map(() => ({ value: 0, previous: 0, held: 0 })) }));

class FailurePolicyStore implements ResilientStore {
  readonly contractVersion = STORE_CONTRACT_VERSION;
  readonly name: string;
  readonly policy: FailurePolicy;
  private readonly timeoutMs: number;
  private readonly retryIntervalMs: number;
  private readonly instances: number;
  private readonly now: () => number;
  private readonly listeners = new Listeners<StoreHealthEvent>();
  private fallback: CounterStore | undefined;
  private readonly ownsFallback: boolean;
  private state: StoreHealth = "healthy";
  private lastError: TollgateError | undefined;
  private lastTry = 0;
  private probing = false;
  private closed = false;

  constructor(
    private readonly backend: CounterStore,
    o: FailurePolicyOptions,
  ) {
    this.name = backend.name;
    const resolved = resolveFailurePolicyOptions(o);
    this.policy = resolved.policy;
    this.timeoutMs = resolved.timeoutMs;
    this.retryIntervalMs = resolved.retryIntervalMs;
    this.instances = resolved.instances;
    this.now = o.now ?? Date.now;
    this.fallback = o.fallbackStore;
    this.ownsFallback = o.fallbackStore === undefined;
  }

  get health(): StoreHealth {
    return this.state;
  }

  onHealthChange(listener: Listener<StoreHealthEvent>): () => void {
    return this.listeners.add(listener);
  }

  private switchTo(state: StoreHealth, cause?: TollgateError): void {
    if (this.state === state) return;
    this.state = state;
    const event: StoreHealthEvent = { store: this.name, state, policy: this.policy, at: this.now() };
    if (cause) event.cause = cause;
    this.listeners.emit(event);
  }

  private local(): CounterStore {
    this.fallback ??= createMemoryStore();
    return this.fallback;
  }

  /**
   * Runs `op` on the backend with the timeout, or answers by the policy. Errors that prove the backend
   * answered (bad input, corrupt data, closed) pass through and count as healthy.
   */
  private async call<T>(op: () => Promise<T>, degraded: () => Promise<T> | T): Promise<T> {
    if (this.closed) throw new TollgateError("STORE_CLOSED", `[${this.name}] the store is closed`);
    const probe = this.state === "degraded";
    if (probe) {
      const t = this.now();
      if (this.probing || t - this.lastTry < this.retryIntervalMs) return this.degradedAnswer(degraded);
      this.probing = true;
      this.lastTry = t;
    }
    try {
      const result = await withTimeout(op(), this.timeoutMs, this.name);
      this.switchTo("healthy");
      return result;
    } catch (err) {
      if (!isUnavailable(err)) {
        if (!(err instanceof TollgateError && err.code === "STORE_CLOSED")) this.switchTo("healthy");
        throw err;
      }
      this.lastError = err;
      this.lastTry = this.now();
      this.switchTo("degraded", err);
      return this.degradedAnswer(degraded);
    } finally {
      if (probe) this.probing = false;
    }
  }

  private degradedAnswer<T>(degraded: () => Promise<T> | T): Promise<T> | T {
    if (this.policy === "closed") {
      throw new StoreUnavailableError(this.name, "the store is unavailable (failure policy: closed)", {
        cause: this.lastError,
      });
    }
    return degraded();
  }

  admit(batch: AdmitBatch): Promise<AdmitResult> {
    return this.call(
      () => this.backend.admit(batch),
      async () => {
        validateAdmitBatch(batch);
        if (this.policy === "open") {
          const now = this.now();
          return {
            admitted: true,
            now,
            windows: zeroWindows(batch.windows, now),
            gauges: batch.gauges.map(() => ({ inFlight: 0, earliestExpiry: null })),
            degraded: "open",
          };
        }
        const n = this.instances;
        const scaled: AdmitBatch =
          n === 1
            ? batch
            : {
                ...batch,
                windows: batch.windows.map((w) => ({
                  ...w,
                  counters: w.counters.map((c) => ({ ...c, limit: perInstanceLimit(c.limit, n) })),
                })),
                gauges: batch.gauges.map((g) => ({ ...g, limit: perInstanceLimit(g.limit, n) })),
              };
        return { ...(await this.local().admit(scaled)), degraded: "fallback" };
      },
    );
  }

  adjust(batch: AdjustBatch): Promise<AdjustResult> {
    return this.call(
      () => this.backend.adjust(batch),
      async () => {
        validateAdjustBatch(batch);
        if (this.policy === "open") {
          const now = this.now();
          return {
            now,
            applied: batch.windows.map(() => false),
            windows: zeroWindows(batch.windows, now),
            released: 0,
            degraded: "open",
          };
        }
        return { ...(await this.local().adjust(batch)), degraded: "fallback" };
      },
    );
  }

  renew(lease: LeaseRef, ttlMs: number): Promise<number> {
    return this.call(
      () => this.backend.renew(lease, ttlMs),
      () => {
        validateRenew(lease, ttlMs);
        // `open` tracks no leases: report every entry as renewed so running requests are not cut off.
        if (this.policy === "open") return lease.gauges.length + lease.holds.length;
        return this.local().renew(lease, ttlMs);
      },
    );
  }

  read(query: ReadQuery): Promise<ReadResult> {
    return this.call(
      () => this.backend.read(query),
      () => {
        validateReadQuery(query);
        if (this.policy === "open") {
          const now = this.now();
          return {
            now,
            windows: zeroWindows(query.windows, now),
            gauges: query.gauges.map(() => ({ inFlight: 0, earliestExpiry: null })),
          };
        }
        return this.local().read(query);
      },
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.backend.close();
    if (this.ownsFallback) await this.fallback?.close();
  }
}

/**
 * Wraps a remote store with a failure policy, millisecond timeouts and automatic recovery.
 * @example
 * const store = withFailurePolicy(createScriptStore({ name: "redis", exec }), { policy: "fallback", instances: 3 });
 * store.onHealthChange((e) => log.warn(`store ${e.store} is ${e.state}`));
 */
export function withFailurePolicy(store: CounterStore, options: FailurePolicyOptions = {}): ResilientStore {
  return new FailurePolicyStore(store, options);
}
