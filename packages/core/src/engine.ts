import { isNonNegativeInteger, TollgateError } from "./errors.js";
import {
  FlatBatch,
  type FlatCounterStore,
  FlatResult,
  flatStoreOf,
  toAdjustBatch,
  toAdmitBatch,
  toAdmitResult,
} from "./flat.js";
import { createIdGenerator } from "./ids.js";
import { DEFAULT_WINDOW_MS, descriptorKey, validateDescriptor, validateIdentity, validateLimits } from "./scopes.js";
import type {
  AdjustBatch,
  AdmitBatch,
  AdmitResult,
  CounterState,
  CounterStore,
  GaugeState,
  LeaseRef,
  WindowSpec,
  WindowState,
} from "./store.js";
import type { Denial, Descriptor, LimitStatus, LimitType } from "./types.js";
import { checkStore } from "./validate.js";

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

/** Handle of an admitted request. Pass it to `settle`, `release` or `renew`. */
export interface Reservation {
  readonly id: string;
  /** Tokens reserved on each descriptor with a tokens limit. */
  readonly tokens: number;
  /** `open` until the first settle or release. */
  readonly state: "open" | "settled" | "released";
}

/*
 * What a reservation keeps of each admitted window: STRIDE numbers in one array (one allocation per admission,
 * no boxed numbers): the window's start, length and flags, then for its first and second counter the value plus
 * held and the previous window's value, as the store answered (statuses are built from them on demand). Gauges
 * follow the windows: in-flight count and earliest expiry (-1 for none) each.
 */
const START = 0;
const WINDOW_MS = 1;
const FLAGS = 2;
const COUNTERS = 3;
const STRIDE = 7;
const SLIDING = 1;
const HAS_REQUESTS = 2;
const HAS_TOKENS = 4;

function windowFlags(sliding: boolean, d: Descriptor): number {
  return (
    (sliding ? SLIDING : 0) | (d.requests !== undefined ? HAS_REQUESTS : 0) | (d.tokens !== undefined ? HAS_TOKENS : 0)
  );
}

/**
 * A reservation. On the flat path it is also the admission itself (`ok`, `now`, `statuses`: one object per
 * admission, built without a derived-class constructor); on the contract path an {@link Admitted} wraps it.
 */
class Held implements Reservation {
  state: "open" | "settled" | "released" = "open";
  readonly ok = true as const;
  private cached: LimitStatus[] | undefined = undefined;
  /** The limiter that admitted it: a private brand, so a forged object or another limiter's reservation is refused. */
  readonly #owner: Limiter;

  constructor(
    owner: Limiter,
    readonly id: string,
    readonly tokens: number,
    /** Number of windows. */
    readonly count: number,
    /** Contract path: each window's base key. */
    readonly keys: string[] | undefined,
    /** Flat path: each window's handle in the in-process store. */
    readonly handles: unknown[] | undefined,
    readonly nums: number[],
    readonly lease: LeaseRef | undefined,
    /** Flat path: the admission's time, and what its statuses are built from. */
    readonly now: number,
    private readonly limiter: Limiter | undefined,
    private readonly descriptors: readonly Descriptor[] | undefined,
    private readonly enforced: boolean[] | undefined,
  ) {
    this.#owner = owner;
  }

  /**
   * `x` as a reservation of `limiter`.
   * @throws {TollgateError} `INVALID_ARGUMENT` when `x` is not a reservation an admission returned, or was admitted by
   *   another limiter (its windows and handles belong to that limiter's store).
   */
  static of(x: unknown, limiter: Limiter): Held {
    if (typeof x !== "object" || x === null || !(#owner in x)) {
      throw new TollgateError(
        "INVALID_ARGUMENT",
        `expected the reservation of an admission (admission.reservation), got ${x === null ? "null" : typeof x}`,
      );
    }
    if ((x as Held).#owner !== limiter) {
      throw new TollgateError(
        "INVALID_ARGUMENT",
        "this reservation was admitted by another limiter: settle, release or renew it through that limiter",
      );
    }
    return x as Held;
  }

  windowKey(i: number): string {
    return this.keys === undefined ? "" : this.keys[i]!;
  }

  /** Whether the admission counted a window of `d`'s scope and value (`key` is its interned base key). */
  hasWindow(key: string, d: Descriptor): boolean {
    if (this.keys !== undefined) return this.keys.includes(key);
    return (
      this.descriptors?.some(
        (e) => e.scope === d.scope && e.value === d.value && (e.requests !== undefined || e.tokens !== undefined),
      ) ?? false
    );
  }

  get reservation(): Reservation {
    return this;
  }

  /** Flat path: statuses built on first access from the numbers kept. */
  get statuses(): LimitStatus[] {
    if (this.cached === undefined) {
      if (this.limiter === undefined || this.descriptors === undefined) return [];
      // undefined flags mean every descriptor was enforced at admission (conditions are not evaluated again)
      const enforced = this.enforced ?? new Array<boolean>(this.descriptors.length).fill(true);
      const plan = this.limiter.planOf(this.descriptors, this.tokens, enforced);
      this.cached = this.limiter.statuses(plan, fromHeld(plan, this.now, this));
    }
    return this.cached;
  }
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

/** An admission in the contract's object form, with the descriptor behind each window and gauge. */
interface Plan {
  batch: AdmitBatch;
  windowSources: Descriptor[];
  gaugeSources: Descriptor[];
}

/**
 * An interned key, and the in-process store's handle of its window from the last admission (a hint the store
 * checks: a window it has since dropped is looked up again).
 */
interface KeySlot {
  readonly key: string;
  handle: unknown;
  /** The same for the key's in-flight gauge. */
  gaugeHandle: unknown;
}

const GAUGE = "max_parallel_requests";
const NONE: readonly Descriptor[] = [];
const NO_NUMS: number[] = [];
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

/**
 * Merges descriptors naming the same scope and value, keeping the strictest limit of each kind. Requests carry a
 * handful of descriptors, so a pairwise scan beats building a map.
 */
function dedupe(descriptors: readonly Descriptor[]): readonly Descriptor[] {
  const n = descriptors.length;
  let out: Descriptor[] | undefined;
  for (let i = 1; i < n; i++) {
    const d = descriptors[i]!;
    if (typeof d !== "object" || d === null) continue; // not a descriptor: validation names it
    for (let j = 0; j < i; j++) {
      const e = descriptors[j]!;
      if (typeof e === "object" && e !== null && e.value === d.value && e.scope === d.scope) {
        out ??= descriptors.slice();
        out[i] = undefined as unknown as Descriptor;
        // j is the first occurrence (the scan stops at the first match), so it is still present
        const prev = out[j]!;
        out[j] = {
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
 *
 * Every call is first written into a flat batch ({@link FlatBatch}). An in-process store that offers the flat
 * capability (the memory store) takes it as is, synchronously; any other store gets the contract's object form.
 */
export class Limiter {
  readonly store: CounterStore;
  private readonly flat: FlatCounterStore | undefined;
  private readonly leaseTtlMs: number;
  private readonly createId: () => string;
  private readonly parallelRetryAfterMs: number;
  /**
   * Interned base keys by scope and value. A freshly concatenated key must be flattened and hashed on its first
   * lookup (about 100 ns); an interned one was hashed once. Bounded: cleared when it outgrows {@link KEY_CACHE}.
   */
  private readonly keys = new Map<string, Map<string, KeySlot>>();
  private keyCount = 0;
  /** The first 16 scopes of {@link keys}, for lookups by identity. */
  private readonly scopeNames: string[] = [];
  private readonly scopeKeys: Array<Map<string, KeySlot>> = [];
  /**
   * Scratch reused by every call: the batch, the flat answer and the descriptor behind each window and gauge.
   * Calls never interleave while using them (no await in between), except a re-entrant call from an
   * `enforceWhen` condition, which gets fresh ones (`filling`).
   */
  private readonly scratch = new FlatBatch();
  private readonly answer = new FlatResult();
  private readonly windowSources: Descriptor[] = [];
  private readonly windowSlots: KeySlot[] = [];
  private readonly gaugeSlots: KeySlot[] = [];
  private readonly gaugeSources: Descriptor[] = [];
  private filling = false;

  constructor(options: LimiterOptions) {
    if (typeof options !== "object" || options === null) {
      throw new TollgateError("INVALID_ARGUMENT", "createLimiter needs options with a store: createLimiter({ store })");
    }
    checkStore(options.store, "store");
    this.store = options.store;
    this.flat = flatStoreOf(options.store);
    this.leaseTtlMs = options.leaseTtlMs ?? 30_000;
    if (!Number.isSafeInteger(this.leaseTtlMs) || this.leaseTtlMs <= 0) {
      throw new TollgateError("INVALID_ARGUMENT", `leaseTtlMs must be a positive integer, got ${options.leaseTtlMs}`);
    }
    if (options.createId !== undefined && typeof options.createId !== "function") {
      throw new TollgateError("INVALID_ARGUMENT", "createId must be a function returning unique ids");
    }
    this.createId = options.createId ?? createIdGenerator();
    this.parallelRetryAfterMs = options.parallelRetryAfterMs ?? 1000;
    if (!isNonNegativeInteger(this.parallelRetryAfterMs)) {
      throw new TollgateError(
        "INVALID_ARGUMENT",
        `parallelRetryAfterMs must be a non-negative integer (ms), got ${String(options.parallelRetryAfterMs)}`,
      );
    }
  }

  /**
   * Admits a request: checks and applies every limit of every descriptor in one atomic store call.
   * Descriptors without limits are ignored and write nothing.
   */
  async admit(descriptors: readonly Descriptor[], options: AdmitOptions = {}): Promise<Admission> {
    if (!Array.isArray(descriptors)) throw notAList("admit", descriptors);
    if (typeof options !== "object" || options === null) {
      throw new TollgateError("INVALID_ARGUMENT", `admit options must be an object, got ${String(options)}`);
    }
    const tokens = options.tokens ?? 0;
    if (!isNonNegativeInteger(tokens)) {
      throw new TollgateError("INVALID_AMOUNT", `tokens must be a non-negative integer, got ${options.tokens}`);
    }
    const ds = dedupe(descriptors);
    const own = !this.filling;
    const b = own ? this.scratch : new FlatBatch();
    const ws = own ? this.windowSources : [];
    const gs = own ? this.gaugeSources : [];
    const slots = own ? this.windowSlots : [];
    const gslots = own ? this.gaugeSlots : [];
    let enforced: boolean[] | undefined;
    this.filling = true;
    try {
      enforced = this.fill(b.reset(), ds, tokens, ws, gs, slots, gslots, undefined);
    } finally {
      if (own) this.filling = false;
    }
    if (b.windowCount === 0 && b.gaugeCount === 0) {
      const reservation = new Held(
        this,
        "",
        tokens,
        0,
        undefined,
        undefined,
        NO_NUMS,
        undefined,
        0,
        undefined,
        NONE,
        undefined,
      );
      return { ok: true, reservation, statuses: [], now: 0 };
    }
    if (b.gaugeCount > 0) {
      b.leaseId = this.createId();
      b.leaseTtlMs = this.leaseTtlMs;
    }
    if (this.flat === undefined) return this.admitObject(planOf(b, ws, gs), tokens, leaseOf(b));

    const r = this.answer;
    this.flat.admitFlat(b, r);
    if (!r.admitted) return this.denied(planOf(b, ws, gs), toAdmitResult(b, r));
    return this.keepFlat(b, r, ds, tokens, enforced, ws, slots, gslots);
  }

  /**
   * The reservation (and admission) of an admitted flat answer: the numbers the statuses and the settle need,
   * and the store's handles, which the key slots also keep as hints for the next admission of each key.
   */
  private keepFlat(
    b: FlatBatch,
    r: FlatResult,
    ds: readonly Descriptor[],
    tokens: number,
    enforced: boolean[] | undefined,
    ws: Descriptor[],
    slots: KeySlot[],
    gslots: KeySlot[],
  ): Held {
    const n = b.windowCount;
    const nums: number[] = new Array(n * STRIDE + 2 * b.gaugeCount);
    for (let i = 0, c = 0, o = 0; i < n; i++, o += STRIDE) {
      const end = b.counterEnd[i]!;
      const two = end - c > 1; // a window has one or two counters (requests, tokens)
      nums[o + START] = r.starts[i]!;
      nums[o + WINDOW_MS] = b.windowMs[i]!;
      nums[o + FLAGS] = windowFlags(b.sliding[i]!, ws[i]!);
      nums[o + COUNTERS] = r.values[c]! + r.held[c]!;
      nums[o + COUNTERS + 1] = r.previous[c]!;
      nums[o + COUNTERS + 2] = two ? r.values[c + 1]! + r.held[c + 1]! : 0;
      nums[o + COUNTERS + 3] = two ? r.previous[c + 1]! : 0;
      c = end;
    }
    for (let g = 0, o = n * STRIDE; g < b.gaugeCount; g++, o += 2) {
      nums[o] = r.inFlight[g]!;
      nums[o + 1] = r.earliest[g] ?? -1;
    }
    const handles: unknown[] = new Array(n + b.gaugeCount); // windows, then gauges
    for (let i = 0; i < n; i++) {
      handles[i] = r.handles[i];
      slots[i]!.handle = r.handles[i];
    }
    for (let g = 0; g < b.gaugeCount; g++) {
      handles[n + g] = r.gaugeHandles[g];
      gslots[g]!.gaugeHandle = r.gaugeHandles[g];
    }
    return new Held(this, b.leaseId, tokens, n, undefined, handles, nums, leaseOf(b), r.now, this, ds, enforced);
  }

  /** The object-form admission, for stores without the flat capability. */
  private async admitObject(plan: Plan, tokens: number, lease: LeaseRef | undefined): Promise<Admission> {
    const result = await this.store.admit(plan.batch);
    if (!result.admitted) return this.denied(plan, result);
    const ops = plan.batch.windows;
    // statuses come from `result` on this path: only the window part of each STRIDE is written
    const nums: number[] = new Array(ops.length * STRIDE);
    const keys: string[] = new Array(ops.length);
    for (let i = 0, o = 0; i < ops.length; i++, o += STRIDE) {
      const w = ops[i]!;
      keys[i] = w.key;
      nums[o + START] = result.windows[i]!.start;
      nums[o + WINDOW_MS] = w.windowMs;
      nums[o + FLAGS] = windowFlags(w.algorithm === "sliding", plan.windowSources[i]!);
    }
    const held = new Held(
      this,
      lease?.id ?? "",
      tokens,
      ops.length,
      keys,
      undefined,
      nums,
      lease,
      result.now,
      undefined,
      undefined,
      undefined,
    );
    return new Admitted(held, result, plan, this);
  }

  private denied(plan: Plan, result: AdmitResult): Admission {
    const statuses = this.statuses(plan, result);
    const denial = this.denial(plan, result, statuses);
    const out: Admission = { ok: false, denial, statuses, now: result.now };
    if (result.degraded) out.degraded = result.degraded;
    return out;
  }

  /**
   * Reconciles tokens after the call: actual minus reserved on the reserved scopes (only while their window is
   * the one charged), full actual on `usage.unreserved`, and releases the in-flight lease. Idempotent: returns
   * false and changes nothing when the reservation was already settled or released.
   */
  settle(reservation: Reservation, usage: SettleUsage): Promise<boolean> {
    try {
      return promised(this.settleNow(reservation, usage));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private settleNow(reservation: Reservation, usage: SettleUsage): Promise<boolean> | boolean {
    const r = Held.of(reservation, this);
    if (typeof usage !== "object" || usage === null) {
      throw new TollgateError(
        "INVALID_ARGUMENT",
        `settle needs the usage, { tokens } (see tokensFromUsage), got ${String(usage)}; use release() for a request that did not run`,
      );
    }
    if (!isNonNegativeInteger(usage.tokens)) {
      throw new TollgateError("INVALID_AMOUNT", `usage.tokens must be a non-negative integer, got ${usage.tokens}`);
    }
    if (usage.unreserved !== undefined && !Array.isArray(usage.unreserved)) {
      throw notAList("usage.unreserved", usage.unreserved);
    }
    const extra = usage.unreserved ? dedupe(usage.unreserved) : NONE;
    for (const d of extra) {
      validateDescriptor(d);
      if (r.hasWindow(this.keyOf(d).key, d)) {
        throw new TollgateError(
          "INVALID_ARGUMENT",
          `unreserved names ${d.scope}:${d.value}, which the admission already counts; list only scopes outside it`,
        );
      }
    }
    if (r.state !== "open") return false;
    const b = this.filling ? new FlatBatch() : this.scratch.reset();
    const delta = usage.tokens - r.tokens;
    const nums = r.nums;
    for (let i = 0, o = 0; delta !== 0 && i < r.count; i++, o += STRIDE) {
      const flags = nums[o + FLAGS]!;
      if ((flags & HAS_TOKENS) === 0) continue;
      b.window(r.windowKey(i), nums[o + WINDOW_MS]!, (flags & SLIDING) !== 0, r.handles?.[i], nums[o + START]!);
      b.counter("tokens", 0, delta, 0, true);
    }
    if (usage.tokens > 0) {
      for (const d of extra) {
        if (d.tokens === undefined) continue;
        b.window(this.keyOf(d).key, d.windowMs ?? DEFAULT_WINDOW_MS, d.algorithm === "sliding");
        if (d.requests !== undefined) b.counter("requests", 0, 0, 0, true);
        b.counter("tokens", 0, usage.tokens, 0, true);
      }
    }
    return this.finish(r, "settled", b);
  }

  /**
   * Refunds everything the admission charged (the request and its reserved tokens, while their window is still
   * the one charged) and releases the in-flight lease: for requests that failed. Idempotent.
   */
  release(reservation: Reservation): Promise<boolean> {
    try {
      return promised(this.releaseNow(reservation));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private releaseNow(reservation: Reservation): Promise<boolean> | boolean {
    const r = Held.of(reservation, this);
    if (r.state !== "open") return false;
    const b = this.filling ? new FlatBatch() : this.scratch.reset();
    const nums = r.nums;
    for (let i = 0, o = 0; i < r.count; i++, o += STRIDE) {
      const flags = nums[o + FLAGS]!;
      const requests = (flags & HAS_REQUESTS) !== 0;
      const tokens = (flags & HAS_TOKENS) !== 0 && r.tokens > 0;
      if (!requests && !tokens) continue;
      b.window(r.windowKey(i), nums[o + WINDOW_MS]!, (flags & SLIDING) !== 0, r.handles?.[i], nums[o + START]!);
      if (requests) b.counter("requests", 0, -1, 0, true);
      if (tokens) b.counter("tokens", 0, -r.tokens, 0, true);
    }
    return this.finish(r, "released", b);
  }

  /** Extends the in-flight lease of a running request. Returns false when the lease has already expired. */
  async renew(reservation: Reservation): Promise<boolean> {
    const r = Held.of(reservation, this);
    if (r.lease === undefined || r.state !== "open") return false;
    return (await this.store.renew(r.lease, this.leaseTtlMs)) > 0;
  }

  /** Current statuses of the descriptors' limits, without consuming anything. */
  async status(descriptors: readonly Descriptor[]): Promise<LimitStatus[]> {
    if (!Array.isArray(descriptors)) throw notAList("status", descriptors);
    const plan = this.planOf(dedupe(descriptors), 0, undefined);
    const result = await this.store.read({
      windows: plan.batch.windows.map((w) => ({
        key: w.key,
        windowMs: w.windowMs,
        algorithm: w.algorithm,
        counters: w.counters.map((c) => c.name),
      })),
      gauges: plan.batch.gauges.map((g) => ({ key: g.key, name: g.name })),
    });
    return this.statuses(plan, { admitted: true, now: result.now, windows: result.windows, gauges: result.gauges });
  }

  /** Applies a settle or release batch and the lease release; claims the reservation first (idempotence). */
  private finish(r: Held, state: "settled" | "released", b: FlatBatch): Promise<boolean> | boolean {
    b.releaseLease(r.lease, r.handles, r.count);
    b.readBack = false;
    r.state = state; // claimed before any await: a concurrent second call is a no-op
    if (b.windowCount === 0 && r.lease === undefined) return true;
    if (this.flat === undefined) return this.finishObject(r, toAdjustBatch(b));
    try {
      this.flat.adjustFlat(b, this.answer);
    } catch (err) {
      r.state = "open"; // nothing was applied (adjust is atomic): the caller may retry
      throw err;
    }
    return true;
  }

  private async finishObject(r: Held, batch: AdjustBatch): Promise<boolean> {
    try {
      await this.store.adjust(batch);
    } catch (err) {
      r.state = "open";
      throw err;
    }
    return true;
  }

  /**
   * Writes the admission of validated-on-the-way descriptors into `b`, and the descriptor behind each window and
   * gauge into `ws` / `gs`. Returns the enforcement flag of each descriptor, or undefined when all are enforced;
   * with `enforced` given, those flags are used instead of evaluating the descriptors' conditions again.
   */
  private fill(
    b: FlatBatch,
    ds: readonly Descriptor[],
    tokens: number,
    ws: Descriptor[],
    gs: Descriptor[],
    slots: KeySlot[],
    gslots: KeySlot[],
    enforced: boolean[] | undefined,
  ): boolean[] | undefined {
    const given = enforced !== undefined;
    for (let i = 0; i < ds.length; i++) {
      const d = ds[i]!;
      const slot = this.keyOf(d); // validates the scope and value when they are new
      validateLimits(d);
      const hasWindow = d.requests !== undefined || d.tokens !== undefined;
      if (!hasWindow && d.maxParallel === undefined) continue;
      let enforce = true;
      if (given) enforce = enforced![i]!;
      else if (!isEnforced(d)) {
        enforce = false;
        enforced ??= new Array<boolean>(ds.length).fill(true);
        enforced[i] = false;
      }
      if (hasWindow) {
        ws[b.windowCount] = d;
        slots[b.windowCount] = slot;
        b.window(slot.key, d.windowMs ?? DEFAULT_WINDOW_MS, d.algorithm === "sliding", slot.handle);
        if (d.requests !== undefined) b.counter("requests", d.requests, 1, 0, enforce);
        if (d.tokens !== undefined) b.counter("tokens", d.tokens, tokens, 0, enforce);
      }
      if (d.maxParallel !== undefined) {
        gs[b.gaugeCount] = d;
        gslots[b.gaugeCount] = slot;
        b.gauge(slot.key, GAUGE, d.maxParallel, enforce, slot.gaugeHandle);
      }
    }
    return enforced;
  }

  /**
   * @internal The object form of an admission of `ds` (no lease id). With `enforced` undefined, each descriptor's
   * shadow flag and condition are evaluated now.
   */
  planOf(ds: readonly Descriptor[], tokens: number, enforced: boolean[] | undefined): Plan {
    const b = new FlatBatch();
    const ws: Descriptor[] = [];
    const gs: Descriptor[] = [];
    this.fill(b, ds, tokens, ws, gs, [], [], enforced);
    return planOf(b, ws, gs);
  }

  /**
   * The interned `{scope:value}` key of a descriptor, with the in-process store's handle of its window. A pair is
   * checked ({@link validateIdentity}) before it is interned, so a hit needs no check.
   */
  private keyOf(d: Descriptor): KeySlot {
    if (typeof d !== "object" || d === null) return this.intern(d);
    // scopes are few and usually literals: a short scan by identity beats hashing
    const names = this.scopeNames;
    let byValue: Map<string, KeySlot> | undefined;
    for (let i = 0; i < names.length; i++) {
      if (names[i] === d.scope) {
        byValue = this.scopeKeys[i];
        break;
      }
    }
    if (byValue === undefined && names.length === 16) byValue = this.keys.get(d.scope);
    return byValue?.get(d.value) ?? this.intern(d);
  }

  private intern(d: Descriptor): KeySlot {
    validateIdentity(d);
    if (this.keyCount >= KEY_CACHE) {
      this.keys.clear();
      this.scopeNames.length = 0;
      this.scopeKeys.length = 0;
      this.keyCount = 0;
    }
    let byValue = this.keys.get(d.scope);
    if (byValue === undefined) {
      byValue = new Map();
      this.keys.set(d.scope, byValue);
      if (this.scopeNames.length < 16) {
        this.scopeNames.push(d.scope);
        this.scopeKeys.push(byValue);
      }
    }
    const slot: KeySlot = { key: descriptorKey(d), handle: undefined, gaugeHandle: undefined };
    byValue.set(d.value, slot);
    this.keyCount++;
    return slot;
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
        const st = status(d, c.name as LimitType, c.limit, used, state.start + w.windowMs, c.enforce, result.admitted);
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
    if (at === undefined || at.type === "ticket") {
      // this engine records no tickets yet: a store answering a ticket denial is broken
      throw new TollgateError("STORE_DATA_CORRUPT", `[${this.store.name}] denial without a counter or gauge cause`);
    }
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

function notAList(what: string, value: unknown): TollgateError {
  return new TollgateError(
    "INVALID_ARGUMENT",
    `${what} takes an array of descriptors, got ${value === null ? "null" : typeof value}${typeof value === "object" && value !== null ? " (wrap a single descriptor in [ ])" : ""}`,
  );
}

const TRUE = Promise.resolve(true);
const FALSE = Promise.resolve(false);

/** A settled answer as a promise: the two possible booleans share one resolved promise each. */
function promised(x: Promise<boolean> | boolean): Promise<boolean> {
  if (x === true) return TRUE;
  if (x === false) return FALSE;
  return x;
}

function planOf(b: FlatBatch, ws: Descriptor[], gs: Descriptor[]): Plan {
  return { batch: toAdmitBatch(b), windowSources: ws.slice(0, b.windowCount), gaugeSources: gs.slice(0, b.gaugeCount) };
}

function leaseOf(b: FlatBatch): LeaseRef | undefined {
  if (b.gaugeCount === 0) return undefined;
  const gauges: LeaseRef["gauges"] = new Array(b.gaugeCount);
  for (let g = 0; g < b.gaugeCount; g++) gauges[g] = { key: b.gaugeKeys[g]!, name: b.gaugeNames[g]! };
  return { id: b.leaseId, gauges, holds: [] };
}

/** The object form of an admitted flat answer, from the numbers the reservation kept of it. */
function fromHeld(plan: Plan, now: number, r: Held): AdmitResult {
  const nums = r.nums;
  const windows: WindowState[] = plan.batch.windows.map((w, i) => {
    const o = i * STRIDE;
    const counters: CounterState[] = w.counters.map((_, k) => {
      const at = o + COUNTERS + 2 * k;
      return { value: nums[at]!, previous: nums[at + 1]!, held: 0 }; // value includes held
    });
    return { start: nums[o + START]!, counters };
  });
  const gauges: GaugeState[] = plan.batch.gauges.map((_, g) => {
    const o = r.count * STRIDE + 2 * g;
    const earliest = nums[o + 1]!;
    return { inFlight: nums[o]!, earliestExpiry: earliest < 0 ? null : earliest };
  });
  return { admitted: true, now, windows, gauges };
}

function statusIndex(plan: Plan, at: Exclude<NonNullable<AdmitResult["denied"]>, { type: "ticket" }>): number {
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
