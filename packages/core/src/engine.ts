import { isNonNegativeInteger, TollgateError } from "./errors.js";
import { createIdGenerator } from "./ids.js";
import { DEFAULT_WINDOW_MS, descriptorKey, validateDescriptor } from "./scopes.js";
import type {
  AdjustBatch,
  AdjustResult,
  AdjustWindowOp,
  AdmitBatch,
  AdmitResult,
  CounterState,
  CounterStore,
  GaugeOp,
  LeaseRef,
  WindowAlgorithm,
  WindowOp,
  WindowSpec,
} from "./store.js";
import { STORE_CONTRACT_VERSION } from "./store.js";
import type { Denial, Descriptor, LimitStatus, LimitType } from "./types.js";

/**
 * Optional capability of in-process stores (the memory store has it): synchronous forms of `admit` and `adjust`
 * with the same semantics. The engine uses them when present, saving a promise per store call. `trusted` is true
 * only for batches the engine built from validated descriptors, which the store may then skip re-validating.
 */
export interface SyncCounterStore {
  admitSync(batch: AdmitBatch, trusted?: boolean): AdmitResult;
  adjustSync(batch: AdjustBatch, trusted?: boolean): AdjustResult;
}

/** The store's {@link SyncCounterStore} capability, when it has one. */
export function syncStoreOf(store: CounterStore): SyncCounterStore | undefined {
  const s = store as CounterStore & Partial<SyncCounterStore>;
  return typeof s.admitSync === "function" && typeof s.adjustSync === "function" ? (s as SyncCounterStore) : undefined;
}

/** Options of {@link createLimiter}. */
export interface LimiterOptions {
  /** Where counters live: `@tollgate/store-memory`, `@tollgate/store-redis`, `@tollgate/store-upstash` or your own. */
  store: CounterStore;
  /**
   * TTL of in-flight leases in ms. A crashed process frees its slots after this long; a running request keeps
   * its slot by calling {@link Limiter.renew} (a long stream should renew every TTL/3). @default 30000
   */
  leaseTtlMs?: number;
  /** Lease id generator; ids must be unique across every process sharing the store. @default createIdGenerator() */
  createId?: () => string;
  /**
   * Suggested retry delay for a denial by `max_parallel_requests`, in ms: a slot frees when any running
   * request finishes, which no store can foresee; the delay is capped by the earliest lease expiry. @default 1000
   */
  parallelRetryAfterMs?: number;
}

/** Per-request options of {@link Limiter.admit}. */
export interface AdmitOptions {
  /**
   * Tokens to reserve on every descriptor with a `tokens` limit (see `estimateRequestTokens`). Without it the
   * request reserves no tokens and the actual usage is charged at settle (LiteLLM's pre-reservation behaviour).
   */
  tokens?: number;
}

/** What {@link Limiter.settle} reconciles. */
export interface SettleUsage {
  /** Actual tokens of the request (see `tokensFromUsage`). */
  tokens: number;
  /**
   * Further descriptors charged the full actual tokens, in their current window (scopes that were not part of
   * the admission). Only those with a `tokens` limit are written.
   */
  unreserved?: Descriptor[];
}

/** One admitted window, remembered for reconciliation. */
interface ReservedWindow {
  key: string;
  windowMs: number;
  algorithm: WindowAlgorithm;
  start: number;
  /** The descriptor has a tokens limit (the window has a `tokens` counter). */
  hasTokens: boolean;
  tokens: number;
  requests: number;
}

/** Handle of an admitted request. Pass it to `settle`, `release` or `renew`. */
export interface Reservation {
  readonly id: string;
  /** Tokens reserved on each descriptor with a tokens limit. */
  readonly tokens: number;
  /** `open` until the first settle or release. */
  readonly state: "open" | "settled" | "released";
  /** @internal */
  readonly windows: ReadonlyArray<ReservedWindow>;
  /** @internal */
  readonly lease: LeaseRef | undefined;
}

export type Admission =
  | {
      ok: true;
      reservation: Reservation;
      /** One status per limit, in descriptor order. */
      statuses: LimitStatus[];
      /** Set when the store's failure policy decided (`open` or `fallback`). */
      degraded?: "open" | "fallback";
      now: number;
    }
  | {
      ok: false;
      /** The binding limit. */
      denial: Denial;
      /** Statuses before this request (nothing was consumed). */
      statuses: LimitStatus[];
      degraded?: "open" | "fallback";
      now: number;
    };

interface Plan {
  batch: AdmitBatch;
  /** For each window op: the descriptor and which counter is which. */
  windowSources: Descriptor[];
  gaugeSources: Descriptor[];
}

interface MutableReservation {
  id: string;
  tokens: number;
  state: "open" | "settled" | "released";
  windows: ReservedWindow[];
  lease: LeaseRef | undefined;
}

const GAUGE = "max_parallel_requests";
const NONE: readonly Descriptor[] = [];
/** Most interned keys a limiter keeps (about 10 MB at worst) before starting over. */
const KEY_CACHE = 100_000;

type WindowShape = Pick<WindowSpec, "windowMs" | "algorithm">;

function isEnforced(d: Descriptor): boolean {
  if (d.shadow) return false;
  if (d.enforceWhen === undefined) return true;
  try {
    return d.enforceWhen() !== false;
  } catch {
    return true; // a failing condition enforces (fail-safe)
  }
}

function windowCounters(d: Descriptor): string[] {
  const names: string[] = [];
  if (d.requests !== undefined) names.push("requests");
  if (d.tokens !== undefined) names.push("tokens");
  return names;
}

/**
 * Merges descriptors naming the same scope and value, keeping the strictest limit of each kind. Requests carry a
 * handful of descriptors, so a pairwise scan beats building a map.
 */
function dedupe(descriptors: readonly Descriptor[]): readonly Descriptor[] {
  const n = descriptors.length;
  let out: Descriptor[] | undefined;
  for (let i = 1; i < n; i++) {
    const d = descriptors[i]!;
    for (let j = 0; j < i; j++) {
      const e = descriptors[j]!;
      if (e.value === d.value && e.scope === d.scope) {
        out ??= descriptors.slice();
        out[i] = undefined as unknown as Descriptor;
        // merge into the first occurrence still present
        let k = j;
        while (out[k] === undefined) k--;
        const prev = out[k]!;
        out[k] = {
          ...prev,
          requests: minDefined(prev.requests, d.requests),
          tokens: minDefined(prev.tokens, d.tokens),
          maxParallel: minDefined(prev.maxParallel, d.maxParallel),
        };
        break;
      }
    }
  }
  return out ? out.filter((d) => d !== undefined) : descriptors;
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/**
 * The admission and reservation engine: admits a request's descriptors atomically (all or nothing), reserves
 * tokens, takes in-flight leases, and reconciles or refunds afterwards. A denied request consumes nothing.
 */
export class Limiter {
  readonly store: CounterStore;
  private readonly sync: SyncCounterStore | undefined;
  private readonly leaseTtlMs: number;
  private readonly createId: () => string;
  private readonly parallelRetryAfterMs: number;
  /**
   * Interned base keys by scope and value. A freshly concatenated key must be flattened and hashed on its first
   * lookup (about 100 ns); an interned one was hashed once. Bounded: cleared when it outgrows {@link KEY_CACHE}.
   */
  private readonly keys = new Map<string, Map<string, string>>();
  private keyCount = 0;

  constructor(options: LimiterOptions) {
    if (options.store?.contractVersion !== STORE_CONTRACT_VERSION) {
      throw new TollgateError(
        "CONTRACT_VERSION_MISMATCH",
        `store implements contract ${String(options.store?.contractVersion)}, this engine needs ${STORE_CONTRACT_VERSION}`,
      );
    }
    this.store = options.store;
    this.sync = syncStoreOf(options.store);
    this.leaseTtlMs = options.leaseTtlMs ?? 30_000;
    if (!Number.isSafeInteger(this.leaseTtlMs) || this.leaseTtlMs <= 0) {
      throw new TollgateError("INVALID_ARGUMENT", `leaseTtlMs must be a positive integer, got ${options.leaseTtlMs}`);
    }
    this.createId = options.createId ?? createIdGenerator();
    this.parallelRetryAfterMs = options.parallelRetryAfterMs ?? 1000;
  }

  /**
   * Admits a request: checks and applies every limit of every descriptor in one atomic store call.
   * Descriptors without limits are ignored and write nothing.
   */
  async admit(descriptors: readonly Descriptor[], options: AdmitOptions = {}): Promise<Admission> {
    const tokens = options.tokens ?? 0;
    if (!isNonNegativeInteger(tokens)) {
      throw new TollgateError("INVALID_AMOUNT", `tokens must be a non-negative integer, got ${options.tokens}`);
    }
    const plan = this.plan(dedupe(descriptors), tokens);
    const id = plan.batch.lease?.id ?? "";
    if (plan.batch.windows.length === 0 && plan.batch.gauges.length === 0) {
      return { ok: true, reservation: this.reservation(id, tokens, [], undefined), statuses: [], now: 0 };
    }
    const result = this.sync ? this.sync.admitSync(plan.batch, true) : await this.store.admit(plan.batch);
    if (!result.admitted) {
      const statuses = this.statuses(plan, result);
      const denial = this.denial(plan, result, statuses);
      const out: Admission = { ok: false, denial, statuses, now: result.now };
      if (result.degraded) out.degraded = result.degraded;
      return out;
    }
    const windows: ReservedWindow[] = new Array(plan.batch.windows.length);
    for (let i = 0; i < windows.length; i++) {
      const w = plan.batch.windows[i]!;
      const d = plan.windowSources[i]!;
      windows[i] = {
        key: w.key,
        windowMs: w.windowMs,
        algorithm: w.algorithm,
        start: result.windows[i]!.start,
        hasTokens: d.tokens !== undefined,
        tokens: d.tokens !== undefined ? tokens : 0,
        requests: d.requests !== undefined ? 1 : 0,
      };
    }
    const lease =
      plan.batch.gauges.length > 0
        ? { id, gauges: plan.batch.gauges.map((g) => ({ key: g.key, name: g.name })), holds: [] }
        : undefined;
    return new Admitted(this.reservation(id, tokens, windows, lease), result, plan, this);
  }

  /**
   * Reconciles tokens after the call: actual minus reserved on the reserved scopes (only while their window is
   * the one charged), full actual on `usage.unreserved`, and releases the in-flight lease. Idempotent: returns
   * false and changes nothing when the reservation was already settled or released.
   */
  async settle(reservation: Reservation, usage: SettleUsage): Promise<boolean> {
    if (!isNonNegativeInteger(usage.tokens)) {
      throw new TollgateError("INVALID_AMOUNT", `usage.tokens must be a non-negative integer, got ${usage.tokens}`);
    }
    const extra = usage.unreserved ? dedupe(usage.unreserved) : NONE;
    for (const d of extra) validateDescriptor(d);
    const r = reservation as MutableReservation;
    if (r.state !== "open") return false;
    const ops: AdjustWindowOp[] = [];
    for (const w of r.windows) {
      if (!w.hasTokens) continue;
      const delta = usage.tokens - w.tokens;
      if (delta !== 0) {
        ops.push({
          key: w.key,
          windowMs: w.windowMs,
          algorithm: w.algorithm,
          expectStart: w.start,
          counters: [{ name: "tokens", delta }],
        });
      }
    }
    if (usage.tokens > 0) {
      for (const d of extra) {
        if (d.tokens === undefined) continue;
        ops.push({
          key: descriptorKey(d),
          windowMs: d.windowMs ?? DEFAULT_WINDOW_MS,
          algorithm: d.algorithm ?? "fixed",
          counters: windowCounters(d).map((name) => ({ name, delta: name === "tokens" ? usage.tokens : 0 })),
        });
      }
    }
    return this.finish(r, "settled", ops);
  }

  /**
   * Refunds everything the admission charged (the request and its reserved tokens, while their window is still
   * the one charged) and releases the in-flight lease: for requests that failed. Idempotent.
   */
  async release(reservation: Reservation): Promise<boolean> {
    const r = reservation as MutableReservation;
    if (r.state !== "open") return false;
    const ops: AdjustWindowOp[] = [];
    for (const w of r.windows) {
      const counters = [];
      if (w.requests > 0) counters.push({ name: "requests", delta: -w.requests });
      if (w.tokens > 0) counters.push({ name: "tokens", delta: -w.tokens });
      if (counters.length > 0) ops.push({ ...spec(w), expectStart: w.start, counters });
    }
    return this.finish(r, "released", ops);
  }

  /** Extends the in-flight lease of a running request. Returns false when the lease has already expired. */
  async renew(reservation: Reservation): Promise<boolean> {
    const r = reservation as MutableReservation;
    if (r.lease === undefined || r.state !== "open") return false;
    return (await this.store.renew(r.lease, this.leaseTtlMs)) > 0;
  }

  /** Current statuses of the descriptors' limits, without consuming anything. */
  async status(descriptors: readonly Descriptor[]): Promise<LimitStatus[]> {
    const plan = this.plan(dedupe(descriptors), 0);
    const result = await this.store.read({
      windows: plan.batch.windows.map((w) => ({ ...spec(w), counters: w.counters.map((c) => c.name) })),
      gauges: plan.batch.gauges.map((g) => ({ key: g.key, name: g.name })),
    });
    return this.statuses(plan, { admitted: true, now: result.now, windows: result.windows, gauges: result.gauges });
  }

  private async finish(r: MutableReservation, state: "settled" | "released", ops: AdjustWindowOp[]): Promise<boolean> {
    r.state = state; // claimed before awaiting: a concurrent second call is a no-op
    if (ops.length === 0 && r.lease === undefined) return true;
    const batch: AdjustBatch = r.lease ? { windows: ops, release: r.lease } : { windows: ops };
    try {
      if (this.sync) this.sync.adjustSync(batch, true);
      else await this.store.adjust(batch);
    } catch (err) {
      r.state = "open"; // nothing was applied (adjust is atomic): the caller may retry
      throw err;
    }
    return true;
  }

  private reservation(id: string, tokens: number, windows: ReservedWindow[], lease: LeaseRef | undefined): Reservation {
    const r: MutableReservation = { id, tokens, state: "open", windows, lease };
    return r;
  }

  private plan(descriptors: readonly Descriptor[], tokens: number): Plan {
    const windows: WindowOp[] = [];
    const gauges: GaugeOp[] = [];
    const windowSources: Descriptor[] = [];
    const gaugeSources: Descriptor[] = [];
    for (const d of descriptors) {
      validateDescriptor(d);
      const hasWindow = d.requests !== undefined || d.tokens !== undefined;
      if (!hasWindow && d.maxParallel === undefined) continue;
      const key = this.keyOf(d);
      const enforce = isEnforced(d);
      if (hasWindow) {
        const counters = [];
        if (d.requests !== undefined) counters.push({ name: "requests", limit: d.requests, amount: 1, enforce });
        if (d.tokens !== undefined) counters.push({ name: "tokens", limit: d.tokens, amount: tokens, enforce });
        windows.push({ key, windowMs: d.windowMs ?? DEFAULT_WINDOW_MS, algorithm: d.algorithm ?? "fixed", counters });
        windowSources.push(d);
      }
      if (d.maxParallel !== undefined) {
        gauges.push({ key, name: GAUGE, limit: d.maxParallel, enforce });
        gaugeSources.push(d);
      }
    }
    const batch: AdmitBatch =
      gauges.length > 0
        ? { windows, gauges, lease: { id: this.createId(), ttlMs: this.leaseTtlMs } }
        : { windows, gauges };
    return { batch, windowSources, gaugeSources };
  }

  /** The interned `{scope:value}` key of a validated descriptor. */
  private keyOf(d: Descriptor): string {
    let byValue = this.keys.get(d.scope);
    if (byValue === undefined) {
      byValue = new Map();
      this.keys.set(d.scope, byValue);
    }
    let key = byValue.get(d.value);
    if (key === undefined) {
      if (this.keyCount >= KEY_CACHE) {
        this.keys.clear();
        this.keyCount = 0;
        byValue = new Map();
        this.keys.set(d.scope, byValue);
      }
      key = descriptorKey(d);
      byValue.set(d.value, key);
      this.keyCount++;
    }
    return key;
  }

  /** @internal */
  statuses(plan: Plan, result: AdmitResult): LimitStatus[] {
    const out: LimitStatus[] = [];
    const { windows, gauges } = plan.batch;
    for (let i = 0; i < windows.length; i++) {
      const w = windows[i]!;
      const d = plan.windowSources[i]!;
      const state = result.windows[i]!;
      for (let j = 0; j < w.counters.length; j++) {
        const c = w.counters[j]!;
        const used = usedOf(state.counters[j]!, w, state.start, result.now);
        const st = status(
          d,
          c.name as LimitType,
          c.limit,
          used,
          state.start + w.windowMs,
          w.counters[0]!.enforce,
          result.admitted,
        );
        st.windowMs = w.windowMs;
        out.push(st);
      }
    }
    for (let i = 0; i < gauges.length; i++) {
      const g = gauges[i]!;
      const state = result.gauges[i]!;
      out.push(
        status(
          plan.gaugeSources[i]!,
          GAUGE,
          g.limit,
          state.inFlight,
          state.earliestExpiry ?? result.now,
          g.enforce,
          result.admitted,
        ),
      );
    }
    return out;
  }

  private denial(plan: Plan, result: AdmitResult, statuses: LimitStatus[]): Denial {
    const at = result.denied;
    if (at === undefined) throw new TollgateError("STORE_DATA_CORRUPT", `[${this.store.name}] denial without a cause`);
    if (at.type === "gauge") {
      const state = result.gauges[at.gauge]!;
      const idx = statusIndex(plan, at);
      const wait = state.earliestExpiry === null ? 0 : state.earliestExpiry - result.now;
      return {
        ...statuses[idx]!,
        retryAfterMs: Math.max(0, Math.min(this.parallelRetryAfterMs, wait)),
        now: result.now,
      };
    }
    const w = plan.batch.windows[at.window]!;
    const c = w.counters[at.counter]!;
    const state = result.windows[at.window]!;
    const retryAt = capacityAt(
      state.counters[at.counter]!,
      c.amount + (c.hold ?? 0),
      c.limit,
      w,
      state.start,
      result.now,
    );
    return {
      ...statuses[statusIndex(plan, at)]!,
      retryAfterMs: Math.max(0, retryAt - result.now),
      now: result.now,
    };
  }
}

function spec(w: { key: string; windowMs: number; algorithm: WindowAlgorithm }) {
  return { key: w.key, windowMs: w.windowMs, algorithm: w.algorithm };
}

function statusIndex(plan: Plan, at: NonNullable<AdmitResult["denied"]>): number {
  let idx = 0;
  const windows = plan.batch.windows;
  if (at.type === "counter") {
    for (let i = 0; i < at.window; i++) idx += windows[i]!.counters.length;
    return idx + at.counter;
  }
  for (const w of windows) idx += w.counters.length;
  return idx + at.gauge;
}

function usedOf(s: CounterState, w: WindowShape, start: number, now: number): number {
  const base = s.value + s.held;
  if (w.algorithm === "fixed" || s.previous === 0) return base;
  const weight = Math.max(0, w.windowMs - (now - start)) / w.windowMs;
  return base + Math.floor(s.previous * weight);
}

function status(
  d: Descriptor,
  type: LimitType,
  limit: number,
  used: number,
  resetAt: number,
  enforced: boolean,
  admitted: boolean,
): LimitStatus {
  return {
    scope: d.scope,
    value: d.value,
    type,
    limit,
    remaining: Math.max(0, limit - used),
    used,
    resetAt,
    wouldDeny: !enforced && (admitted ? used > limit : used >= limit),
    enforced,
  };
}

/**
 * The earliest time a denied counter could admit `add`: the end of a fixed window, or for a sliding window the
 * moment the previous window's weight has decayed enough (possibly in the next window).
 */
export function capacityAt(
  s: CounterState,
  add: number,
  limit: number,
  w: WindowShape,
  start: number,
  now: number,
): number {
  const W = w.windowMs;
  const end = start + W;
  if (w.algorithm === "fixed") return end;
  // room needed for the decaying previous-window part, this window's committed and held usage, and `add`
  const room = (add > 0 ? limit - add : limit - 1e-9) - s.value - s.held;
  if (room >= 0 && s.previous > 0) {
    const at = start + Math.ceil(W * (1 - room / s.previous));
    if (at < end) return Math.max(now, at);
  }
  // next window: this window's value becomes the decaying part
  const nextRoom = (add > 0 ? limit - add : limit - 1e-9) - s.held;
  if (nextRoom < 0 || s.value === 0) return nextRoom < 0 ? end + W : end;
  return end + Math.max(0, Math.ceil(W * (1 - nextRoom / s.value)));
}

/** An admission whose statuses are computed on first access (most callers never read them). */
class Admitted {
  readonly ok = true as const;
  readonly now: number;
  readonly degraded?: "open" | "fallback";
  #statuses: LimitStatus[] | undefined;

  constructor(
    readonly reservation: Reservation,
    private readonly result: AdmitResult,
    private readonly plan: Plan,
    private readonly limiter: Limiter,
  ) {
    this.now = result.now;
    if (result.degraded) this.degraded = result.degraded;
  }

  get statuses(): LimitStatus[] {
    this.#statuses ??= this.limiter.statuses(this.plan, this.result);
    return this.#statuses;
  }
}

/** Creates a {@link Limiter}. */
export function createLimiter(options: LimiterOptions): Limiter {
  return new Limiter(options);
}
