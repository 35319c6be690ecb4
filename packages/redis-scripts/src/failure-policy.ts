/**
 * The failure policy shared by the remote stores: what a request gets when the backend cannot answer within
 * a few milliseconds, and how the store recovers by itself when the backend answers again.
 *
 * It takes its fallback store as an argument (the Redis and Upstash stores create a `@tollgate/store-memory` store
 * up front), so this module depends on nothing but `@tollgate/core`.
 */
import {
  type AdjustBatch,
  type AdjustResult,
  type AdmitBatch,
  type AdmitResult,
  type CounterStore,
  type GaugeOp,
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
import { type Listener, Listeners } from "./emitter.js";
import { ReplayQueue } from "./replay-queue.js";

/**
 * - `closed`: fail the call with `StoreUnavailableError` (`code: "STORE_UNAVAILABLE"`; the proxy answers 503).
 * - `open`: admit without counting; results carry `degraded: "open"`.
 * - `fallback`: decide on a local store (limits optionally divided by the instance count);
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
  /**
   * A call that has not answered after this many ms counts as a failure. A backend that times its own calls out
   * (the script stores: `timeoutMs` of {@link ScriptStore}) is not raced: it answers in time by itself, and knows
   * what to undo when it does not get its own answers. @default 100
   */
  timeoutMs?: number;
  /**
   * While degraded, calls skip the backend (answering at once by the policy) except one probe call at most
   * every `retryIntervalMs`; the first probe that answers switches back to healthy. Settles and releases waiting
   * to be replayed are retried at the same pace. @default 1000
   */
  retryIntervalMs?: number;
  /**
   * The local store the `fallback` policy decides on; required with it (the Redis and Upstash stores create a
   * `@tollgate/store-memory` store up front). Closed by `close()` only with `closeFallback`.
   */
  fallbackStore?: CounterStore;
  /** `close()` closes `fallbackStore` too (the store created it). @default false */
  closeFallback?: boolean;
  /**
   * `fallback` only: each limit is divided by this number of instances (rounded down, never below 1 for a
   * positive limit), so N instances deciding locally stay near the shared limit. @default 1
   */
  instances?: number;
  /** Local clock for retry intervals, events and `open` results. @default Date.now */
  now?: () => number;
  /** Most in-flight leases mirrored for the `fallback` policy, and most replays waiting. @default 100000 */
  maxTracked?: number;
}

/** A `CounterStore` wrapped by {@link withFailurePolicy}. */
export interface ResilientStore extends CounterStore {
  /** `degraded` while the backend is considered unavailable. */
  readonly health: StoreHealth;
  /** The policy applied while degraded. */
  readonly policy: FailurePolicy;
  /**
   * Calls waiting to reach the backend: settles and releases (with a ticket) answered by the policy while it was
   * unavailable, and compensations of admissions whose answer was lost.
   */
  readonly pendingReplays: number;
  /** Sends what waits now, retrying until nothing waits or `timeoutMs` passed; answers how many still wait. */
  flush(timeoutMs?: number): Promise<number>;
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
    throw new TollgateError("INVALID_DURATION", `timeoutMs must be a positive integer, got ${String(o.timeoutMs)}`);
  }
  if (!Number.isSafeInteger(resolved.retryIntervalMs) || resolved.retryIntervalMs < 0) {
    throw new TollgateError(
      "INVALID_DURATION",
      `retryIntervalMs must be a non-negative integer, got ${String(o.retryIntervalMs)}`,
    );
  }
  if (!Number.isSafeInteger(resolved.instances) || resolved.instances < 1) {
    throw new TollgateError("INVALID_ARGUMENT", `instances must be a positive integer, got ${String(o.instances)}`);
  }
  if (!["closed", "open", "fallback"].includes(resolved.policy)) {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `policy must be "closed", "open" or "fallback", got ${String(o.policy)}`,
    );
  }
  if (o.now !== undefined && typeof o.now !== "function") {
    throw new TollgateError("INVALID_ARGUMENT", "now must be a function returning ms since epoch");
  }
  if (o.fallbackStore !== undefined && !isStore(o.fallbackStore)) {
    throw new TollgateError("INVALID_ARGUMENT", "fallbackStore must be a CounterStore (admit, adjust, renew, read)");
  }
  return resolved;
}

function isStore(s: unknown): s is CounterStore {
  const o = s as Partial<CounterStore> | null;
  return (
    typeof o === "object" &&
    o !== null &&
    typeof o.admit === "function" &&
    typeof o.adjust === "function" &&
    typeof o.renew === "function" &&
    typeof o.read === "function" &&
    typeof o.close === "function"
  );
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

/** A store that times out its own calls (see {@link ScriptStore}). */
interface SelfTimed {
  timeoutMs?: number;
  pendingCompensations?: number;
  flush?(timeoutMs: number): Promise<number>;
}

/** An in-flight lease this process took on the backend, mirrored for the fallback. */
interface Mirrored {
  gauges: Array<{ key: string; name: string }>;
  expiresAt: number;
  ticket: boolean;
}

/** The last state the backend answered for a window, mirrored for the fallback (LiteLLM mirrors its counters too). */
interface SeenWindow {
  windowMs: number;
  algorithm: "fixed" | "sliding";
  noHolds: boolean | undefined;
  names: string[];
  /** value + held per counter, as the backend last answered. */
  used: number[];
  /** Local time at which the window ends, as far as the last answer tells. */
  endsAt: number;
}

/** A bounded insertion-ordered map: the oldest entry goes beyond `max`. */
function boundedSet<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}

class FailurePolicyStore implements ResilientStore {
  readonly contractVersion = STORE_CONTRACT_VERSION;
  readonly name: string;
  readonly policy: FailurePolicy;
  private readonly timeoutMs: number | undefined;
  private readonly retryIntervalMs: number;
  private readonly instances: number;
  private readonly now: () => number;
  private readonly listeners = new Listeners<StoreHealthEvent>();
  private readonly fallback: CounterStore | undefined;
  private readonly closeFallback: boolean;
  private readonly maxTracked: number;
  private readonly replays: ReplayQueue;
  /** `fallback`: in-flight leases taken on the backend by this process, by lease id. */
  private readonly inflight = new Map<string, Mirrored>();
  /** `fallback`: the last counts the backend answered per window key, to seed the local store in an outage. */
  private readonly seen = new Map<string, SeenWindow>();
  /** `fallback`: leases (and tickets) admitted by the local store; their settles and releases stay local. */
  private readonly localTickets = new Map<string, true>();
  private state: StoreHealth = "healthy";
  private lastError: TollgateError | undefined;
  private lastTry = 0;
  private probing = false;
  private closed = false;

  constructor(
    private readonly backend: CounterStore & SelfTimed,
    o: FailurePolicyOptions,
  ) {
    this.name = backend.name;
    const resolved = resolveFailurePolicyOptions(o);
    this.policy = resolved.policy;
    // A backend that times out its own calls knows what to undo when it does; racing it would lose that.
    this.timeoutMs = backend.timeoutMs === undefined ? resolved.timeoutMs : undefined;
    this.retryIntervalMs = resolved.retryIntervalMs;
    this.instances = resolved.instances;
    this.now = o.now ?? Date.now;
    this.fallback = o.fallbackStore;
    this.closeFallback = o.closeFallback === true;
    this.maxTracked = o.maxTracked ?? 100_000;
    if (this.policy === "fallback" && !this.fallback) {
      throw new TollgateError("INVALID_ARGUMENT", 'policy "fallback" needs a fallbackStore');
    }
    this.replays = new ReplayQueue({
      retryIntervalMs: Math.max(1, resolved.retryIntervalMs),
      now: this.now,
      maxEntries: this.maxTracked,
    });
  }

  get health(): StoreHealth {
    return this.state;
  }

  get pendingReplays(): number {
    return this.replays.size + (this.backend.pendingCompensations ?? 0);
  }

  async flush(timeoutMs = 5000): Promise<number> {
    const [mine, theirs] = await Promise.all([
      this.replays.flush(timeoutMs),
      this.backend.flush ? this.backend.flush(timeoutMs) : 0,
    ]);
    return mine + theirs;
  }

  onHealthChange(listener: Listener<StoreHealthEvent>): () => void {
    return this.listeners.add(listener);
  }

  private switchTo(state: StoreHealth, cause?: TollgateError): void {
    if (this.state === state) return;
    this.state = state;
    const event: StoreHealthEvent = { store: this.name, state, policy: this.policy, at: this.now() };
    if (cause) event.cause = cause;
    if (state === "healthy") {
      // What waited for the backend goes now: a slot released during the outage frees at once.
      if (this.replays.size > 0) void this.replays.pass();
    }
    this.listeners.emit(event);
  }

  /**
   * Runs `op` on the backend (raced against the timeout unless it times itself out), or answers by the policy.
   * Errors that prove the backend answered (bad input, corrupt data, closed) pass through and count as healthy.
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
      const result = await (this.timeoutMs === undefined ? op() : withTimeout(op(), this.timeoutMs, this.name));
      this.switchTo("healthy");
      return result;
    } catch (err) {
      if (!isUnavailable(err)) {
        if (!(err instanceof TollgateError && err.code === "STORE_CLOSED")) this.switchTo("healthy");
        throw err;
      }
      this.lastError = err;
      this.lastTry = this.now();
      if (this.state === "healthy" && this.policy === "fallback") await this.seedFallback();
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

  /**
   * Entering an outage with the `fallback` policy, the local store starts from what the backend last said:
   * - each window still running gets its last answered usage divided by the instance count (this instance's share
   *   of what was already counted), so the instances together admit about the rest of the limit, not a whole
   *   limit more; the local window lasts a full window from now (it may stay full a little longer than the real one);
   * - the leases this process holds on the backend are taken on the local store too (never denied), so requests
   *   already in flight count against the local share of each `max_parallel_requests` limit and their releases free
   *   them there. Other instances' leases count in their own local stores.
   */
  private async seedFallback(): Promise<void> {
    const now = this.now();
    const n = this.instances;
    for (const [key, w] of this.seen) {
      if (w.endsAt <= now) continue;
      const counters = w.names.map((name, i) => ({
        name,
        limit: 0,
        amount: Math.ceil(w.used[i]! / n),
        enforce: false,
      }));
      const window = { key, windowMs: w.windowMs, algorithm: w.algorithm, noHolds: w.noHolds, counters };
      await this.fallback!.admit({ windows: [window], gauges: [] }).catch(() => undefined);
    }
    this.seen.clear();
    for (const [id, m] of this.inflight) {
      const ttlMs = m.expiresAt - now;
      if (ttlMs <= 0) {
        this.inflight.delete(id);
        continue;
      }
      const gauges: GaugeOp[] = m.gauges.map((g) => ({ key: g.key, name: g.name, limit: 0, enforce: false }));
      await this.fallback!.admit({ windows: [], gauges, lease: { id, ttlMs }, ticket: m.ticket }).catch(
        () => undefined,
      );
    }
  }

  /**
   * A ticketed settle or release the backend did not get: replayed until it does (its ticket makes the replay
   * apply exactly once), for at most half the ticket's keep time, so that the finished mark of an attempt that did
   * apply is still there when a replay arrives.
   */
  private replayLater(batch: AdjustBatch): void {
    const t = batch.ticket;
    if (!t) return;
    this.replays.add(`${t.finish} ${t.id}`, () => this.backend.adjust(batch), this.now() + t.keepMs / 2, false);
  }

  /** `fallback`: keeps the counts the backend just answered for each window (see {@link seedFallback}). */
  private remember(batch: AdmitBatch, r: AdmitResult): void {
    const local = this.now();
    batch.windows.forEach((w, i) => {
      const st = r.windows[i];
      if (!st) return;
      const span = w.algorithm === "sliding" ? 2 * w.windowMs : w.windowMs;
      boundedSet(
        this.seen,
        w.key,
        {
          windowMs: w.windowMs,
          algorithm: w.algorithm,
          noHolds: w.noHolds,
          names: w.counters.map((c) => c.name),
          used: st.counters.map((c) => c.value + c.held),
          endsAt: local + (st.start + span - r.now),
        },
        this.maxTracked,
      );
    });
  }

  admit(batch: AdmitBatch): Promise<AdmitResult> {
    return this.call(
      async () => {
        const r = await this.backend.admit(batch);
        if (this.fallback) this.remember(batch, r);
        if (this.fallback && r.admitted && batch.lease && batch.gauges.length > 0) {
          boundedSet(
            this.inflight,
            batch.lease.id,
            {
              gauges: batch.gauges.map((g) => ({ key: g.key, name: g.name })),
              expiresAt: this.now() + batch.lease.ttlMs,
              ticket: batch.ticket === true,
            },
            this.maxTracked,
          );
        }
        return r;
      },
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
        const r = await this.fallback!.admit(scaled);
        if (r.admitted && batch.lease) boundedSet(this.localTickets, batch.lease.id, true, this.maxTracked);
        return { ...r, degraded: "fallback" };
      },
    );
  }

  adjust(batch: AdjustBatch): Promise<AdjustResult> {
    const id = batch.ticket?.id ?? batch.release?.id;
    if (id !== undefined && this.localTickets.has(id)) {
      // Admitted by the local store during an outage: it is finished there (the backend never counted it).
      validateAdjustBatch(batch);
      if (batch.release) this.localTickets.delete(id);
      return this.fallback!.adjust(batch).then((r) => ({ ...r, degraded: "fallback" as const }));
    }
    if (batch.release) this.inflight.delete(batch.release.id);
    return this.call(
      () => this.backend.adjust(batch),
      async (): Promise<AdjustResult> => {
        validateAdjustBatch(batch);
        this.replayLater(batch);
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
        return { ...(await this.fallback!.adjust(batch)), degraded: "fallback" };
      },
    ).catch((err: unknown) => {
      // closed: the caller gets the error, the backend still gets the settle or release once it answers.
      if (isUnavailable(err) && this.policy === "closed") this.replayLater(batch);
      throw err;
    });
  }

  renew(lease: LeaseRef, ttlMs: number): Promise<number> {
    const m = this.inflight.get(lease.id);
    if (m) m.expiresAt = this.now() + ttlMs;
    if (this.localTickets.has(lease.id)) {
      validateRenew(lease, ttlMs);
      return this.fallback!.renew(lease, ttlMs);
    }
    return this.call(
      () => this.backend.renew(lease, ttlMs),
      () => {
        validateRenew(lease, ttlMs);
        // `open` tracks no leases: report every entry as renewed so running requests are not cut off.
        if (this.policy === "open") return lease.gauges.length + lease.holds.length + (lease.windows ? 1 : 0);
        return this.fallback!.renew(lease, ttlMs);
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
        return this.fallback!.read(query);
      },
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Replays still waiting get one last chance while the backend's connection is up.
    if (this.replays.size > 0) await this.replays.flush(this.timeoutMs ?? this.backend.timeoutMs ?? 1000);
    this.replays.close();
    await this.backend.close();
    if (this.closeFallback) await this.fallback?.close();
  }
}

/**
 * Wraps a remote store with a failure policy, millisecond timeouts, automatic recovery, and replays of the
 * ticketed settles and releases the backend missed.
 * @example
 * const store = withFailurePolicy(createScriptStore({ name: "redis", exec, timeoutMs: 100 }), {
 *   policy: "fallback",
 *   fallbackStore: createMemoryStore(),
 *   instances: 3,
 * });
 * store.onHealthChange((e) => log.warn(`store ${e.store} is ${e.state}`));
 */
export function withFailurePolicy(store: CounterStore, options: FailurePolicyOptions = {}): ResilientStore {
  return new FailurePolicyStore(store, options);
}
