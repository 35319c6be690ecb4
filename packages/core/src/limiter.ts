/**
 * The limiter: admits a request's rate-limit descriptors in one atomic store call (all or nothing), reserves tokens
 * and in-flight slots under one lease and one ticket, and answers a reservation whose `settle`, `fail`, `release`
 * and `renew` are one store call each, exactly once per ticket in the store.
 *
 * Read with plan.ts (descriptors → batch, what a reservation keeps, the deltas that finish it), status.ts
 * (statuses and denials) and call.ts (the store call: the flat fast path or the contract's object form).
 */
import { StoreAccess } from "./call.js";
import { TollgateError } from "./errors.js";
import { FLAT_DENIED_COUNTER, FLAT_DENIED_GAUGE, FLAT_DENIED_TICKET, FlatBatch, FlatResult } from "./flat.js";
import { createIdGenerator } from "./ids.js";
import {
  amountOf,
  dedupe,
  FAIL,
  type FinishKind,
  fillFinish,
  gaugeRefs,
  LimitPlanner,
  type LimitRecord,
  Planned,
  RELEASE,
  SETTLE,
  tokenAmounts,
  tokenFlag,
  tokenTotal,
  windowKeys,
} from "./plan.js";
import { DEFAULT_WINDOW_MS, validateDescriptor } from "./scopes.js";
import { denialOf, statusesOf, statusesOfRecord } from "./status.js";
import type { CounterStore, LeaseRef, ReadQuery, TicketState } from "./store.js";
import type { Denial, Descriptor, LimitStatus, Outcome, TokenAmounts } from "./types.js";
import { checkStore } from "./validate.js";

/** Options of {@link createLimiter}. */
export interface LimiterOptions {
  /** Where counters live: `@tollgate/store-memory`, `@tollgate/store-redis`, `@tollgate/store-upstash` or your own. */
  store: CounterStore;
  /**
   * TTL of in-flight leases and of the reservation's ticket, in ms. A crashed process frees its slots after this
   * long; a running request keeps its slot with `reservation.renew()` (a long stream should renew every TTL/3).
   * @default 30000
   */
  leaseTtlMs?: number;
  /** Lease and ticket ids; they must be unique across every process sharing the store. @default createIdGenerator() */
  createId?: () => string;
  /**
   * Suggested retry delay for a denial by `max_parallel_requests`, in ms: a slot frees when any running
   * request finishes, which no store can foresee; the delay is capped by the earliest lease expiry. @default 1000
   */
  parallelRetryAfterMs?: number;
  /**
   * How long the store remembers a finished reservation (ms), so that a retried settle or release (after a timeout,
   * from any process) is recognised and applies nothing. @default 60000
   */
  ticketKeepMs?: number;
}

/** Per-request options of {@link Limiter.admit}. */
export interface AdmitOptions {
  /**
   * Tokens to reserve (see `estimateRequestTokens`, whose answer can be passed as is). A number is a total, counted
   * as output tokens (input 0); `{ input, output }` reserves each descriptor's own amount (see
   * `Descriptor.tokenType`). Without it the request reserves no tokens and the actual usage is charged at settle
   * (LiteLLM's pre-reservation behaviour).
   */
  tokens?: number | TokenAmounts;
}

/** What a settle (or a fail) charges. */
export interface SettleUsage {
  /**
   * Actual tokens of the request (see `tokensFromUsage`): a number is a total counted as output tokens, or
   * `{ input, output }` for descriptors that count them apart.
   */
  tokens: number | TokenAmounts;
  /**
   * Further descriptors charged the full actual tokens in their current window: scopes that were not part of the
   * admission. Every one is counted, with or without a tokens limit (LiteLLM tracks usage on every scope).
   */
  unreserved?: Descriptor[];
}

/** The state of a reservation: open until the first settle, fail or release. */
export type ReservationState = "open" | "settled" | "failed" | "released";

/**
 * An admitted request's reservation. Each method is one store call, applied exactly once per reservation in the
 * store (its ticket), whatever the retries and from whichever process: a second call answers `duplicate`.
 */
export interface Reservation {
  /** The ticket (and lease) id; "" for an admission that counted nothing. */
  readonly id: string;
  /** Tokens reserved (input + output). */
  readonly tokens: number;
  /** Tokens reserved, by kind. */
  readonly reserved: TokenAmounts;
  readonly state: ReservationState;
  /**
   * The request ran: charges actual minus reserved tokens on each tokens limit (in the window the reservation
   * charged), the full actual on `usage.unreserved`, and frees the in-flight slots.
   */
  settle(usage: SettleUsage): Promise<Outcome>;
  /**
   * The provider failed (LiteLLM v3's failed-call rule): the request keeps counting, the tokens are given back
   * except what `usage` says was used (a streamed part), and the slots are freed.
   */
  fail(usage?: SettleUsage): Promise<Outcome>;
  /**
   * The request never happened (refused after admission, never reached the provider): the request and its tokens
   * are given back and the slots freed. `expired` when the store no longer knows the reservation (nothing undone).
   */
  release(): Promise<Outcome>;
  /** Extends the slots and the ticket by the lease TTL (long streams). False when they already expired. */
  renew(): Promise<boolean>;
}

export type Admission =
  | {
      ok: true;
      reservation: Reservation;
      /** One status per limit, in descriptor order (windows' counters, then in-flight gauges). */
      statuses: LimitStatus[];
      /** Set when the store's failure policy decided (`open` or `fallback`). */
      degraded?: "open" | "fallback";
      /** The store's time of the decision. */
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

const NONE: readonly Descriptor[] = [];
const NO_NUMS: number[] = [];
const NO_KEYS: string[] = [];

const APPLIED: Outcome = Object.freeze({ status: "applied" });
const DUPLICATE: Outcome = Object.freeze({ status: "duplicate" });
const EXPIRED: Outcome = Object.freeze({ status: "expired" });
const APPLIED_P = Promise.resolve(APPLIED);
const DUPLICATE_P = Promise.resolve(DUPLICATE);
const EXPIRED_P = Promise.resolve(EXPIRED);

/** The outcome of a finishing adjustment, from the ticket state the store found. */
export function outcomeOf(ticket: TicketState | undefined, release: boolean): Outcome {
  if (ticket === "finished") return DUPLICATE;
  if (ticket === "unknown" && release) return EXPIRED;
  return APPLIED; // open; unknown for a settle; undefined from a store that answers no ticket state
}

function promised(x: Outcome | Promise<Outcome>): Promise<Outcome> {
  if (x === APPLIED) return APPLIED_P;
  if (x === DUPLICATE) return DUPLICATE_P;
  if (x === EXPIRED) return EXPIRED_P;
  return x as Promise<Outcome>;
}

const STATE_OF: Record<FinishKind, ReservationState> = { 0: "settled", 1: "failed", 2: "released" };

/**
 * A reservation (and, being one object per request, also its admission: `ok`, `now`, `statuses`). It keeps what
 * its settle and its statuses need ({@link LimitRecord}); the methods go through the limiter that admitted it.
 */
class Held implements Reservation, LimitRecord {
  state: ReservationState = "open";
  readonly ok = true as const;
  private cached: LimitStatus[] | undefined = undefined;
  /** The limiter that admitted it: a private brand, so a forged object or another limiter's reservation is refused. */
  readonly #owner: Limiter;

  constructor(
    owner: Limiter,
    readonly id: string,
    public count: number,
    public gaugeCount: number,
    public nums: number[],
    public keys: string[],
    public handles: unknown[] | undefined,
    public input: number,
    public output: number,
    public descriptors: readonly Descriptor[],
    public enforced: boolean[] | undefined,
    public now: number,
    public ticketHandle: unknown,
    public degraded: "open" | "fallback" | undefined,
    /** A ticket the limiter keeps itself (in-process stores): its expiry in the store's time; else NaN. */
    public expiry: number,
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

  get tokens(): number {
    return this.input + this.output;
  }

  get reserved(): TokenAmounts {
    return { input: this.input, output: this.output };
  }

  get reservation(): Reservation {
    return this;
  }

  /** Statuses at admission, built on first access from the numbers kept. */
  get statuses(): LimitStatus[] {
    this.cached ??= this.#owner.statusesOfHeld(this);
    return this.cached;
  }

  settle(usage: SettleUsage): Promise<Outcome> {
    return this.#owner.finish(this, SETTLE, usage);
  }

  fail(usage?: SettleUsage): Promise<Outcome> {
    return this.#owner.finish(this, FAIL, usage);
  }

  release(): Promise<Outcome> {
    return this.#owner.finish(this, RELEASE, undefined);
  }

  renew(): Promise<boolean> {
    return this.#owner.renewHeld(this);
  }
}

const isApplied = (o: Outcome): boolean => o.status === "applied";

/**
 * The admission and reservation engine for rate limits (see the module comment). A denied request consumes nothing.
 */
export class Limiter {
  readonly store: CounterStore;
  private readonly access: StoreAccess;
  private readonly planner = new LimitPlanner();
  private readonly leaseTtlMs: number;
  private readonly createId: () => string;
  private readonly parallelRetryAfterMs: number;
  private readonly keepMs: number;
  /**
   * Scratch reused by calls on the flat path (synchronous from filling to reading, so calls never interleave; a
   * re-entrant call from an `enforceWhen` condition gets fresh ones). Calls to other stores await: fresh ones.
   */
  private readonly scratch = new FlatBatch();
  private readonly answer = new FlatResult();
  private readonly planned = new Planned();

  constructor(options: LimiterOptions) {
    if (typeof options !== "object" || options === null) {
      throw new TollgateError("INVALID_ARGUMENT", "createLimiter needs options with a store: createLimiter({ store })");
    }
    checkStore(options.store, "store");
    this.store = options.store;
    this.access = new StoreAccess(options.store);
    this.leaseTtlMs = positive(options.leaseTtlMs, 30_000, "leaseTtlMs");
    this.keepMs = positive(options.ticketKeepMs, 60_000, "ticketKeepMs");
    if (options.createId !== undefined && typeof options.createId !== "function") {
      throw new TollgateError("INVALID_ARGUMENT", "createId must be a function returning unique ids");
    }
    this.createId = options.createId ?? createIdGenerator();
    this.parallelRetryAfterMs = options.parallelRetryAfterMs ?? 1000;
    if (!Number.isSafeInteger(this.parallelRetryAfterMs) || this.parallelRetryAfterMs < 0) {
      throw new TollgateError(
        "INVALID_ARGUMENT",
        `parallelRetryAfterMs must be a non-negative integer (ms), got ${String(options.parallelRetryAfterMs)}`,
      );
    }
  }

  /**
   * Admits a request: checks and applies every limit of every descriptor in one atomic store call. Descriptors
   * without limits are ignored and write nothing; an admission with nothing to count answers the store's time
   * (see {@link StoreAccess.now}).
   */
  async admit(descriptors: readonly Descriptor[], options: AdmitOptions = {}): Promise<Admission> {
    if (!Array.isArray(descriptors)) throw notAList("admit", descriptors);
    if (typeof options !== "object" || options === null) {
      throw new TollgateError("INVALID_ARGUMENT", `admit options must be an object, got ${String(options)}`);
    }
    let input = 0;
    let output = tokenTotal(options.tokens, "tokens"); // a number is a total, counted as output
    if (output < 0) ({ input, output } = tokenAmounts(options.tokens, "tokens"));
    const ds = dedupe(descriptors);
    const flat = this.access.flat !== undefined;
    const own = flat && !this.planner.filling;
    const b = own ? this.scratch.reset() : new FlatBatch();
    const p = own ? this.planned : new Planned();
    this.planner.fill(b, ds, input, output, p);
    if (b.windowCount === 0 && b.gaugeCount === 0) {
      const now = await this.access.now();
      return new Held(
        this,
        "",
        0,
        0,
        NO_NUMS,
        NO_KEYS,
        undefined,
        input,
        output,
        NONE,
        undefined,
        now,
        undefined,
        undefined,
        Number.NaN,
      );
    }
    b.leaseId = this.createId();
    b.leaseTtlMs = this.leaseTtlMs;
    b.ticket = true;
    // on an in-process store the reservation keeps its ticket itself: it is finished only through this object
    b.ticketPrivate = flat;
    const out = own ? this.answer : new FlatResult();
    const r = flat ? (this.access.admit(b, out) as FlatResult) : await this.access.admit(b, out);
    if (!r.admitted) return this.denied(b, r, p);
    const k = this.planner;
    k.collect(b, r, p, flat);
    return new Held(
      this,
      b.leaseId,
      p.wn,
      p.gn,
      k.keptNums,
      k.keptKeys,
      k.keptHandles,
      input,
      output,
      ds,
      p.enforced,
      r.now,
      r.ticketHandle,
      r.degraded,
      flat ? r.now + this.leaseTtlMs : Number.NaN,
    );
  }

  private denied(b: FlatBatch, r: FlatResult, p: Planned): Admission {
    if (r.denied !== FLAT_DENIED_COUNTER && r.denied !== FLAT_DENIED_GAUGE) {
      const why = r.denied === FLAT_DENIED_TICKET ? "a ticket denial for a fresh id" : "a denial without a cause";
      throw new TollgateError("STORE_DATA_CORRUPT", `[${this.store.name}] the store answered ${why}`);
    }
    const statuses = statusesOf(b, r, p, r.now, false);
    const c = r.denied === FLAT_DENIED_COUNTER ? r.deniedIndex : -1;
    const denial = denialOf(b, r, p, statuses, r.now, c, r.deniedIndex, this.parallelRetryAfterMs);
    const out: Admission = { ok: false, denial, statuses, now: r.now };
    if (r.degraded !== undefined) out.degraded = r.degraded;
    return out;
  }

  /** @internal Statuses of an admitted reservation, from the numbers it kept. */
  statusesOfHeld(h: Held): LimitStatus[] {
    return statusesOfRecord(this.planner, h);
  }

  /** @internal The reservation methods: one adjustment that finishes the ticket. */
  finish(h: Held, kind: FinishKind, usage: SettleUsage | undefined): Promise<Outcome> {
    try {
      return promised(this.finishNow(h, kind, usage));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private finishNow(h: Held, kind: FinishKind, usage: SettleUsage | undefined): Outcome | Promise<Outcome> {
    let input = 0;
    let output = 0;
    let extra: readonly Descriptor[] = NONE;
    if (kind === SETTLE || (kind === FAIL && usage !== undefined)) {
      if (typeof usage !== "object" || usage === null) {
        throw new TollgateError(
          "INVALID_ARGUMENT",
          `${kind === SETTLE ? "settle" : "fail"} needs the usage, { tokens } (see tokensFromUsage), got ${String(usage)}; use release() for a request that did not run`,
        );
      }
      if (usage.tokens === undefined) {
        throw new TollgateError("INVALID_AMOUNT", "usage.tokens is required (0 when the request used none)");
      }
      output = tokenTotal(usage.tokens, "usage.tokens");
      if (output < 0) ({ input, output } = tokenAmounts(usage.tokens, "usage.tokens"));
      if (usage.unreserved !== undefined) {
        if (!Array.isArray(usage.unreserved)) throw notAList("usage.unreserved", usage.unreserved);
        extra = dedupe(usage.unreserved);
        for (const d of extra) {
          validateDescriptor(d);
          const key = this.planner.keys.slotOf(d).key;
          const at = h.keys.indexOf(key); // windows come before gauges
          if (at >= 0 && at < h.count) {
            throw new TollgateError(
              "INVALID_ARGUMENT",
              `unreserved names ${d.scope}:${d.value}, which the admission already counts; list only scopes outside it`,
            );
          }
        }
      }
    }
    if (h.state !== "open") return DUPLICATE;
    if (h.id === "") {
      h.state = STATE_OF[kind]; // the admission counted nothing: nothing to finish
      return APPLIED;
    }
    const flat = this.access.flat !== undefined;
    const own = flat && !this.planner.filling;
    const b = own ? this.scratch.reset() : new FlatBatch();
    fillFinish(b, h, kind, input, output);
    if (input + output > 0) {
      for (const d of extra) {
        const amount = amountOf(tokenFlag(d), input, output);
        if (amount === 0) continue;
        const key = this.planner.keys.slotOf(d).key;
        b.window(key, d.windowMs ?? DEFAULT_WINDOW_MS, d.algorithm === "sliding", undefined, Number.NaN, true);
        if (d.requests !== undefined) b.counter("requests", 0, 0, 0, true);
        b.counter("tokens", 0, amount, 0, true);
      }
    }
    b.releaseLease(this.leaseOf(h, !flat), h.handles, h.count);
    b.finishTicket(h.id, kind === RELEASE ? "release" : "settle", this.keepMs, h.ticketHandle, h.expiry);
    b.readBack = false;
    h.state = STATE_OF[kind]; // claimed before any await: a concurrent second call answers `duplicate`
    const release = kind === RELEASE;
    if (flat) {
      let r: FlatResult;
      try {
        r = this.access.adjust(b, own ? this.answer : new FlatResult()) as FlatResult;
      } catch (err) {
        h.state = "open"; // nothing was applied (adjust is atomic): the caller may retry
        throw err;
      }
      return outcomeOf(r.ticket, release);
    }
    return (this.access.adjust(b, new FlatResult()) as Promise<FlatResult>).then(
      (r) => outcomeOf(r.ticket, release),
      (err: unknown) => {
        // the call may still be applied by the store: a retry is recognised by the ticket and applies once
        h.state = "open";
        throw err;
      },
    );
  }

  /**
   * The lease of a reservation. In-process stores need only the gauges (the ticket is found by its handle); a
   * remote one also gets the windows, so a store that splits batches finds every part of the ticket.
   */
  private leaseOf(h: Held, full: boolean): LeaseRef | undefined {
    if (!full && h.gaugeCount === 0) return undefined;
    const ref: LeaseRef = { id: h.id, gauges: gaugeRefs(h), holds: [] };
    if (full) ref.windows = windowKeys(h);
    return ref;
  }

  /** @internal */
  async renewHeld(h: Held): Promise<boolean> {
    if (h.state !== "open" || h.id === "") return false;
    const lease = this.leaseOf(h, true)!;
    return (await this.access.renew(lease, this.leaseTtlMs, h.ticketHandle, h)) > 0;
  }

  /**
   * @deprecated Use `reservation.settle(usage)`, which answers an {@link Outcome}. This alias answers true when the
   * settle was applied.
   */
  settle(reservation: Reservation, usage: SettleUsage): Promise<boolean> {
    try {
      return Held.of(reservation, this).settle(usage).then(isApplied);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** @deprecated Use `reservation.release()`, which answers an {@link Outcome}. True when it was applied. */
  release(reservation: Reservation): Promise<boolean> {
    try {
      return Held.of(reservation, this).release().then(isApplied);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** @deprecated Use `reservation.renew()`. */
  renew(reservation: Reservation): Promise<boolean> {
    try {
      return Held.of(reservation, this).renew();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Current statuses of the descriptors' limits, without consuming anything. */
  async status(descriptors: readonly Descriptor[]): Promise<LimitStatus[]> {
    if (!Array.isArray(descriptors)) throw notAList("status", descriptors);
    const b = new FlatBatch();
    const p = new Planned();
    this.planner.fill(b, dedupe(descriptors), 0, 0, p);
    const windows: ReadQuery["windows"] = [];
    for (let i = 0, c = 0; i < b.windowCount; i++) {
      const counters: string[] = [];
      for (const end = b.counterEnd[i]!; c < end; c++) counters.push(b.names[c]!);
      windows.push({
        key: b.keys[i]!,
        windowMs: b.windowMs[i]!,
        algorithm: b.sliding[i] ? "sliding" : "fixed",
        counters,
      });
    }
    const gauges: ReadQuery["gauges"] = [];
    for (let g = 0; g < b.gaugeCount; g++) gauges.push({ key: b.gaugeKeys[g]!, name: b.gaugeNames[g]! });
    const res = await this.store.read({ windows, gauges });
    const s = new FlatResult();
    s.now = res.now;
    for (let i = 0, c = 0; i < b.windowCount; i++) {
      const w = res.windows[i]!;
      s.starts[i] = w.start;
      for (let j = 0; c < b.counterEnd[i]!; j++, c++) {
        s.values[c] = w.counters[j]!.value;
        s.previous[c] = w.counters[j]!.previous;
        s.held[c] = w.counters[j]!.held;
      }
    }
    for (let g = 0; g < b.gaugeCount; g++) {
      s.inFlight[g] = res.gauges[g]!.inFlight;
      s.earliest[g] = res.gauges[g]!.earliestExpiry;
    }
    return statusesOf(b, s, p, res.now, true);
  }
}

function positive(value: unknown, fallback: number, what: string): number {
  const n = value ?? fallback;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n <= 0) {
    throw new TollgateError("INVALID_ARGUMENT", `${what} must be a positive integer, got ${String(value)}`);
  }
  return n;
}

function notAList(what: string, value: unknown): TollgateError {
  return new TollgateError(
    "INVALID_ARGUMENT",
    `${what} takes an array of descriptors, got ${value === null ? "null" : typeof value}${typeof value === "object" && value !== null ? " (wrap a single descriptor in [ ])" : ""}`,
  );
}

/** Creates a {@link Limiter}. */
export function createLimiter(options: LimiterOptions): Limiter {
  return new Limiter(options);
}
