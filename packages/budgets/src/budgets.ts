import {
  type AdjustWindowOp,
  type CounterStore,
  checkStore,
  createIdGenerator,
  type LeaseRef,
  type Outcome,
  TollgateError,
} from "@tollgate/core";
import {
  FLAT_DENIED_COUNTER,
  FLAT_DENIED_TICKET,
  FlatBatch,
  FlatResult,
  isNonNegativeInteger,
  outcomeOf,
  StoreAccess,
} from "@tollgate/core/internal";
import {
  baseKeyOf,
  type CompileDefaults,
  type CompiledBudget,
  compileBudget,
  fingerprint,
  modelMatches,
  periodId,
  periodKey,
  sameSpec,
  windowOf,
} from "./compile.js";
import { formatDuration } from "./duration.js";
import { formatBudgetExceeded } from "./messages.js";
import { formatUsd, type Nano, nonNegativeInt, parseUsd, type Usd } from "./money.js";
import { DEFAULT_PRICES } from "./prices.js";
import {
  createPriceBook,
  type ModelPrice,
  type ModelPriceInput,
  type PriceBook,
  type PriceTable,
  type Usage,
  worstCaseCost,
} from "./pricing.js";
import { BudgetReservation, type Reservation, type ReservationHost, type SettleResult } from "./reservation.js";
import type { Period, ResetMode } from "./schedule.js";
import type { BudgetDenial, BudgetEvent, BudgetRef, BudgetSpec, SpendRecord, SpendSink } from "./types.js";
import { checkTimeZone } from "./tz.js";

/** Options of {@link createBudgets}. */
export interface BudgetsOptions {
  /** Where spend counters live (memory, Redis, Upstash, ...). */
  store: CounterStore;
  /**
   * `reserve`: hold the worst-case cost before the call, atomically across every budget, then settle to the
   * actual cost. `check`: LiteLLM's behaviour, deny once spend has reached the maximum and charge after the call.
   * @default "reserve"
   */
  mode?: "reserve" | "check";
  /** The price table. @default DEFAULT_PRICES */
  prices?: PriceTable;
  /** Per-deployment price overrides, merged field by field over `prices`. @default {} */
  priceOverrides?: Record<string, Partial<ModelPriceInput>>;
  /**
   * A model missing from the price table: `deny` throws `TollgateError("UNKNOWN_MODEL")`; `allow` admits it
   * (budgets that are already exhausted still deny), charges nothing and emits an `unknown_model` event.
   * @default "deny"
   */
  unknownModel?: "deny" | "allow";
  /** Output tokens assumed when a request has no max_tokens and the model has no max_output_tokens. @default 16384 */
  defaultMaxTokens?: number;
  /**
   * When a reservation does not fit, reserve what remains instead and report the largest `maxTokens` that
   * fits in every budget (the proxy caps the request). @default false
   */
  shrink?: boolean;
  /** Smallest `maxTokens` worth shrinking to; below it the request is denied. @default 1 */
  minShrinkTokens?: number;
  /** IANA zone of calendar reset boundaries. @default "UTC" */
  timeZone?: string;
  /** Default reset mode of budgets. @default "calendar" */
  reset?: ResetMode;
  /** Reservation lease: an unsettled reservation stops counting after this long. @default 600000 (10 min) */
  reservationTtlMs?: number;
  /**
   * How long the store remembers a settled or released reservation (ms), so that a retried settle (after a timeout,
   * from any process) is recognised and charges nothing. @default 60000
   */
  ticketKeepMs?: number;
  /** Fractions of the maximum that fire a `threshold` event once per period. @default [0.5, 0.8, 1] */
  thresholds?: number[];
  /** Receives a record of every settled charge. @default none */
  sink?: SpendSink;
  /** Receives alerts and warnings. Exceptions thrown by the listener are ignored. @default none */
  onEvent?: (event: BudgetEvent) => void;
  /**
   * Clock used to pick the budget period (ms). With `syncToStore` it is corrected by the offset to the store's
   * clock seen in the last answer. Inject the store's clock in tests. @default Date.now
   */
  now?: () => number;
  /** Correct `now` by the store's clock (Redis TIME) so every instance switches periods together. @default true */
  syncToStore?: boolean;
  /** First part of every budget key, `{<keyPrefix>:<scope>:<id>}`. @default "budget" */
  keyPrefix?: string;
}

/** A request to reserve (or, in check mode, to check) budget. */
export interface ReserveRequest {
  /** The proxy's request id, copied into the spend record. */
  requestId: string;
  /** Requested model; selects prices and per-model budgets. */
  model: string;
  /** Every budget that may apply; per-model budgets for other models are ignored. */
  budgets: BudgetSpec[];
  /** Estimated prompt tokens. @default 0 */
  inputTokens?: number;
  /** The request's max_tokens, if any. @default the model's max_output_tokens, else `defaultMaxTokens` */
  maxTokens?: number | null;
}

export type ReserveResult =
  | {
      ok: true;
      reservation: Reservation;
      /** Output tokens covered by the reservation (capped when shrunk); null in check mode. */
      maxTokens: number | null;
      /** True when the reservation was shrunk: cap the request's max_tokens to `maxTokens`. */
      shrunk: boolean;
    }
  | { ok: false; denial: BudgetDenial };

/** Current state of one budget. */
export interface BudgetStatus {
  budget: BudgetRef;
  spend: Nano;
  reserved: Nano;
  max: Nano | null;
  softBudget: Nano | null;
  /** Period start (ms since epoch), null when the budget never resets. */
  periodStart: number | null;
  resetAt: number | null;
}

/** Totals to restore: a budget and its spend in the current period. */
export interface HydrateTotal {
  budget: BudgetSpec;
  /** Nano-USD (integer). */
  spendNano?: Nano;
  /** USD; floats are rounded up to the next nano-USD. */
  spend?: Usd;
}

export interface Budgets {
  /** Reserves (or checks) every applicable budget in one atomic store call. */
  reserve(request: ReserveRequest): Promise<ReserveResult>;
  /** Reads spend, holds and reset time of budgets without changing anything. */
  status(budgets: BudgetSpec[]): Promise<BudgetStatus[]>;
  /**
   * Rebuilds the current period's counters after a restart, from ledger records (those inside each budget's
   * current period are summed) and/or totals. Adds to the counters: call it once, before traffic, on an empty store.
   */
  hydrate(input: {
    budgets?: BudgetSpec[];
    records?: Iterable<SpendRecord>;
    totals?: HydrateTotal[];
  }): Promise<BudgetStatus[]>;
  /** Prices used for a model, or undefined when unknown. */
  priceOf(model: string): ModelPrice | undefined;
}

const SPEND = "spend";
const MAX_CACHE = 10_000;
const SHRINK_ATTEMPTS = 3;

function positiveInt(n: unknown, what: string): number {
  if (!isNonNegativeInteger(n) || n === 0) {
    throw new TollgateError("INVALID_ARGUMENT", `${what} must be a positive integer, got ${n}`);
  }
  return n;
}

/** @internal One reservation request being decided (mutated when shrinking), and where it sits in a batch. */
export interface BudgetPlan {
  req: ReserveRequest;
  price: ModelPrice | undefined;
  list: CompiledBudget[];
  inputTokens: number;
  maxTokens: number | null;
  /** The worst-case cost held on every budget (0 in check mode). */
  hold: Nano;
  shrunk: boolean;
  attempts: number;
  /** The period clock of the last fill (and the local clock's reading behind it), its first window and counter in
   * the batch, and its window keys. */
  t: number;
  local: number;
  w0: number;
  c0: number;
  keys: string[];
}

/** @internal Decisions of {@link BudgetEngine.decide} besides a denial. */
export const ADMITTED = 0;
export const RETRY = 1;

const APPLIED: Outcome = Object.freeze({ status: "applied" });
const DUPLICATE: { status: "duplicate" } = Object.freeze({ status: "duplicate" });

function appliedWith(x: SettleResult | Promise<SettleResult>): Outcome<SettleResult> | Promise<Outcome<SettleResult>> {
  if (x instanceof Promise) return x.then((result) => ({ status: "applied", ...result }));
  return { status: "applied", ...x };
}

const resetAtOf = (p: Period): number | null => (Number.isFinite(p.end) ? p.end : null);

function bad(message: string): TollgateError {
  return new TollgateError("INVALID_ARGUMENT", message);
}

function what(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalOf(options: BudgetsOptions, name: keyof BudgetsOptions, type: "boolean" | "function"): void {
  const v = options[name];
  if (v !== undefined && typeof v !== type) throw bad(`${name} must be a ${type}, got ${what(v)}`);
}

/** Every option of {@link createBudgets} is checked at construction, so a typo fails at start-up. */
function checkOptions(options: BudgetsOptions): void {
  if (!isObject(options)) throw bad(`createBudgets needs options with a store, got ${what(options)}`);
  checkStore(options.store, "store");
  optionalOf(options, "shrink", "boolean");
  optionalOf(options, "syncToStore", "boolean");
  optionalOf(options, "onEvent", "function");
  optionalOf(options, "now", "function");
  if (options.prices !== undefined && !isObject(options.prices)) {
    throw bad(`prices must be a price table (an object), got ${what(options.prices)}`);
  }
  if (options.priceOverrides !== undefined && !isObject(options.priceOverrides)) {
    throw bad(`priceOverrides must be an object, got ${what(options.priceOverrides)}`);
  }
  if (options.thresholds !== undefined && !Array.isArray(options.thresholds)) {
    throw bad(`thresholds must be an array of fractions, got ${what(options.thresholds)}`);
  }
  if (options.sink !== undefined && !(isObject(options.sink) && typeof options.sink.write === "function")) {
    throw bad("sink must be an object with a write(record) method");
  }
  const reset = options.reset;
  if (reset !== undefined && reset !== "calendar" && reset !== "rolling") {
    throw bad(`reset must be "calendar" or "rolling", got ${JSON.stringify(reset)}`);
  }
  const prefix = options.keyPrefix;
  if (prefix !== undefined && (typeof prefix !== "string" || !/^[A-Za-z0-9_:.-]+$/.test(prefix))) {
    throw bad(`keyPrefix must be a non-empty string of [A-Za-z0-9_:.-], got ${JSON.stringify(prefix)}`);
  }
}

/** Whether two budgets count in the same store window (same identity and schedule, hence the same period keys). */
function sameWindow(a: CompiledBudget, b: CompiledBudget): boolean {
  return a === b || (a.windowHash === b.windowHash && a.base === b.base && a.schedule.tag === b.schedule.tag);
}

/**
 * A budget given twice in one request, as one: the strictest maximum (an enforced one before a count-only one, then
 * the smallest), with the first occurrence's other properties (alias, soft budget). Requests carry a handful of
 * budgets, so callers find duplicates with a pairwise scan; this allocates only when the later one is stricter.
 */
function mergeBudget(first: CompiledBudget, b: CompiledBudget): CompiledBudget {
  const stricter = b.enforce === first.enforce ? b.limit < first.limit : b.enforce;
  return stricter ? { ...first, max: b.max, limit: b.limit, enforce: b.enforce } : first;
}

/**
 * The budget engine. Besides the {@link Budgets} API it exposes, for `@tollgate/gate` (through
 * `@tollgate/budgets/internal`), the parts that let another engine put budgets into a batch of its own: `plan`,
 * `fillAdmit`, `decide`, `leaseOf`, `statusesOf`, `fillCharge`, `recordCharge`, `clock` and `observe`.
 */
export class BudgetEngine implements Budgets, ReservationHost {
  private readonly store: CounterStore;
  private readonly access: StoreAccess;
  /** Scratch of the flat path (synchronous from filling to reading). */
  private readonly scratch = new FlatBatch();
  private readonly answer = new FlatResult();
  readonly keepMs: number;
  private readonly mode: "reserve" | "check";
  private readonly unknownModel: "deny" | "allow";
  private readonly book: PriceBook;
  private readonly defaultMaxTokens: number;
  private readonly minShrinkTokens: number;
  private readonly shrink: boolean;
  readonly ttlMs: number;
  private readonly thresholds: number[];
  private readonly sink: SpendSink | undefined;
  private readonly onEvent: ((event: BudgetEvent) => void) | undefined;
  private readonly defaults: CompileDefaults;
  private readonly localNow: () => number;
  private readonly syncClock: boolean;
  /** Lease ids of reservations: unique across processes, cheap (see createIdGenerator). */
  private readonly createId = createIdGenerator();
  private skew = 0;
  private readonly bySpec = new WeakMap<BudgetSpec, CompiledBudget>();
  /** This engine's mark on the spec objects it compiled (see {@link compile}). */
  private readonly mark = Symbol("tollgate.compiled");
  private readonly byFingerprint = new Map<string, CompiledBudget>();

  constructor(options: BudgetsOptions) {
    checkOptions(options);
    this.store = options.store;
    this.access = new StoreAccess(options.store);
    const mode = options.mode ?? "reserve";
    if (mode !== "reserve" && mode !== "check") {
      throw new TollgateError("INVALID_ARGUMENT", `mode must be "reserve" or "check", got ${JSON.stringify(mode)}`);
    }
    this.mode = mode;
    const unknownModel = options.unknownModel ?? "deny";
    if (unknownModel !== "deny" && unknownModel !== "allow") {
      throw new TollgateError(
        "INVALID_ARGUMENT",
        `unknownModel must be "deny" or "allow", got ${JSON.stringify(unknownModel)}`,
      );
    }
    this.unknownModel = unknownModel;
    this.book = createPriceBook(options.prices ?? DEFAULT_PRICES, options.priceOverrides);
    this.defaultMaxTokens = positiveInt(options.defaultMaxTokens ?? 16_384, "defaultMaxTokens");
    this.minShrinkTokens = positiveInt(options.minShrinkTokens ?? 1, "minShrinkTokens");
    this.shrink = options.shrink ?? false;
    this.ttlMs = positiveInt(options.reservationTtlMs ?? 600_000, "reservationTtlMs");
    this.keepMs = positiveInt(options.ticketKeepMs ?? 60_000, "ticketKeepMs");
    this.thresholds = [...(options.thresholds ?? [0.5, 0.8, 1])];
    for (const t of this.thresholds) {
      if (!(typeof t === "number" && t > 0 && t <= 1)) {
        throw new TollgateError("INVALID_ARGUMENT", `thresholds must be fractions in (0, 1], got ${t}`);
      }
    }
    this.sink = options.sink;
    this.onEvent = options.onEvent;
    this.defaults = {
      timeZone: checkTimeZone(options.timeZone ?? "UTC"),
      reset: options.reset ?? "calendar",
      keyPrefix: options.keyPrefix ?? "budget",
      onDurationWarning: (budget, duration, readAs, message) =>
        this.emit({ type: "duration_warning", budget, duration, readAs: formatDuration(readAs), message }),
    };
    this.localNow = options.now ?? Date.now;
    this.syncClock = options.syncToStore ?? true;
  }

  /** @internal The local clock's reading behind the last {@link clock} answer. */
  lastLocal = 0;

  /** @internal The period clock: local time corrected by the offset to the store's clock seen in the last answer. */
  clock(): number {
    const local = this.localNow();
    this.lastLocal = local;
    return local + this.skew;
  }

  /**
   * @internal Records the store's time of an answer (see {@link clock}). `local` is the local clock's reading taken
   * for the call ({@link lastLocal} of the clock that filled it), else the clock is read now: either way the offset
   * is off by at most the call's duration (a local clock read costs about 0.1 µs on some virtual machines, and a
   * request reads it once per call instead of twice).
   */
  observe(storeNow: number, local?: number): void {
    if (this.syncClock) this.skew = storeNow - (local ?? this.localNow());
  }

  priceOf(model: string): ModelPrice | undefined {
    if (typeof model !== "string") throw bad(`model must be a string, got ${what(model)}`);
    return this.book.get(model);
  }

  /**
   * The store limit of a budget in this engine's mode. Reserve mode: `max` (a hold must fit: `spend + held + hold <=
   * max`). Check mode (nothing held, denied once `spend >= limit`): LiteLLM's rule per scope (`compileBudget`).
   */
  private limitOf(b: CompiledBudget): Nano {
    return this.mode === "check" ? b.checkLimit : b.limit;
  }

  private compile(spec: BudgetSpec): CompiledBudget {
    if (!isObject(spec)) throw bad(`a budget must be an object { scope, id, maxBudget, ... }, got ${what(spec)}`);
    // the compiled budget rides on the spec object itself (a hidden symbol property: no table to look it up in),
    // checked against the spec's current fields (a spec changed in place compiles again)
    const hit = (spec as unknown as Record<symbol, CompiledBudget | undefined>)[this.mark] ?? this.bySpec.get(spec);
    if (hit !== undefined && sameSpec(hit, spec)) return hit;
    const fp = fingerprint(spec);
    let c = this.byFingerprint.get(fp);
    if (c === undefined) {
      c = compileBudget(spec, this.defaults);
      if (this.byFingerprint.size >= MAX_CACHE) this.byFingerprint.clear();
      this.byFingerprint.set(fp, c);
    }
    if (Object.isExtensible(spec)) {
      Object.defineProperty(spec, this.mark, { value: c, writable: true, configurable: true, enumerable: false });
    } else this.bySpec.set(spec, c); // a frozen spec
    return c;
  }

  /** @internal */
  emit(event: BudgetEvent): void {
    try {
      this.onEvent?.(event);
    } catch {
      // A failing listener must not break accounting.
    }
  }

  reserve(req: ReserveRequest): Promise<ReserveResult> {
    try {
      const plan = this.plan(req);
      if (plan.list.length === 0) return Promise.resolve(this.admitted(plan, undefined, undefined, Number.NaN));
      if (this.access.flat === undefined) return this.reserveAsync(plan);
      for (;;) {
        const b = this.fillReservation(this.scratch.reset(), plan);
        const out = this.decideReservation(plan, b, this.access.admit(b, this.answer) as FlatResult);
        if (out !== undefined) return Promise.resolve(out);
      }
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async reserveAsync(plan: BudgetPlan): Promise<ReserveResult> {
    for (;;) {
      const b = this.fillReservation(new FlatBatch(), plan);
      const out = this.decideReservation(plan, b, await this.access.admit(b, new FlatResult()));
      if (out !== undefined) return out;
    }
  }

  /** A reservation's batch: the budget windows, under a lease and a ticket of its own. */
  private fillReservation(b: FlatBatch, plan: BudgetPlan): FlatBatch {
    this.fillAdmit(b, plan);
    b.leaseId = this.createId();
    b.leaseTtlMs = this.ttlMs;
    b.ticket = true;
    // a reservation is finished only through its own object: on an in-process store it keeps its ticket itself
    b.ticketPrivate = this.access.flat !== undefined;
    return b;
  }

  private decideReservation(plan: BudgetPlan, b: FlatBatch, r: FlatResult): ReserveResult | undefined {
    if (r.denied === FLAT_DENIED_TICKET) {
      throw new TollgateError(
        "STORE_DATA_CORRUPT",
        `[${this.store.name}] the store answered a ticket denial for a fresh id`,
      );
    }
    const d = this.decide(plan, r);
    if (d === RETRY) return undefined;
    if (d !== ADMITTED) return { ok: false, denial: d };
    const expiry = b.ticketPrivate ? r.now + this.ttlMs : Number.NaN;
    return this.admitted(plan, this.leaseOf(plan, b.leaseId), r.ticketHandle, expiry);
  }

  /**
   * @internal Checks a request and computes its worst-case cost and applicable budgets (budgets given twice are
   * merged). The plan is what {@link fillAdmit} and {@link decide} work on.
   */
  plan(req: ReserveRequest): BudgetPlan {
    if (!isObject(req)) throw bad(`reserve needs a request { requestId, model, budgets }, got ${what(req)}`);
    if (!Array.isArray(req.budgets)) {
      throw bad(`budgets must be an array of budget specs (possibly empty), got ${what(req.budgets)}`);
    }
    if (typeof req.requestId !== "string" || req.requestId.length === 0) {
      throw new TollgateError("INVALID_ARGUMENT", "requestId must be a non-empty string");
    }
    if (typeof req.model !== "string" || req.model.length === 0) {
      throw new TollgateError("INVALID_ARGUMENT", "model must be a non-empty string");
    }
    const price = this.book.get(req.model);
    if (price === undefined) {
      if (this.unknownModel === "deny") {
        throw new TollgateError("UNKNOWN_MODEL", `no price for model ${JSON.stringify(req.model)}; add it to prices`);
      }
      this.emit({ type: "unknown_model", model: req.model, requestId: req.requestId });
    }
    const inputTokens = nonNegativeInt(req.inputTokens ?? 0, "inputTokens");
    const requested = req.maxTokens ?? null;
    if (requested !== null) nonNegativeInt(requested, "maxTokens");
    const list: CompiledBudget[] = [];
    for (const spec of req.budgets) {
      const b = this.compile(spec); // checks every spec, including per-model budgets of other models
      if (b.model !== undefined && !modelMatches(b.model, req.model)) continue;
      // A budget given twice would put its window twice in one batch: merge it into its first occurrence.
      let j = 0;
      while (j < list.length && !sameWindow(list[j] as CompiledBudget, b)) j++;
      if (j === list.length) list.push(b);
      else list[j] = mergeBudget(list[j] as CompiledBudget, b);
    }
    let maxTokens: number | null = null;
    let hold = 0;
    if (this.mode === "reserve" && price !== undefined) {
      maxTokens = price.mode === "embedding" ? 0 : (requested ?? price.maxOutputTokens ?? this.defaultMaxTokens);
      hold = worstCaseCost(price, inputTokens, maxTokens);
    }
    return {
      req,
      price,
      list,
      inputTokens,
      maxTokens,
      hold,
      shrunk: false,
      attempts: 0,
      t: 0,
      local: 0,
      w0: 0,
      c0: 0,
      keys: [],
    };
  }

  /**
   * @internal Appends the plan's budget windows to `b`, at the period of the store's clock as last seen: a `spend`
   * counter holding the worst case (reserve mode) or only checked (check mode) on every budget.
   */
  fillAdmit(b: FlatBatch, plan: BudgetPlan): void {
    const { list, hold } = plan;
    const t = this.clock();
    plan.t = t;
    plan.local = this.lastLocal;
    plan.w0 = b.windowCount;
    plan.c0 = b.counterCount;
    const keys: string[] = new Array(list.length);
    for (let i = 0; i < list.length; i++) {
      const c = list[i] as CompiledBudget;
      const key = periodKey(c, t);
      keys[i] = key;
      b.window(key, c.windowMs, false, c.handle);
      b.counter(SPEND, this.limitOf(c), 0, hold, c.enforce);
    }
    plan.keys = keys;
  }

  /**
   * @internal The decision on the plan's part of an answer: {@link ADMITTED}, {@link RETRY} (shrunk: fill and
   * admit again), or the denial naming the tightest budget. Records the store's clock.
   */
  decide(plan: BudgetPlan, r: FlatResult): typeof ADMITTED | typeof RETRY | BudgetDenial {
    this.observe(r.now, plan.local);
    const { list, price, maxTokens, w0, c0 } = plan;
    if (r.admitted) {
      for (let i = 0; i < list.length; i++) (list[i] as CompiledBudget).handle = r.handles[w0 + i];
      return ADMITTED;
    }
    if (
      !this.shrink ||
      price === undefined ||
      price.worstOutput === 0 ||
      maxTokens === null ||
      plan.attempts >= SHRINK_ATTEMPTS
    ) {
      return this.denialOf(r, plan);
    }
    // Shrink: the input cost plus as many output tokens as the tightest budget still has room for.
    let room = Number.POSITIVE_INFINITY;
    for (let i = 0; i < list.length; i++) {
      const b = list[i] as CompiledBudget;
      if (b.enforce) room = Math.min(room, b.limit - r.values[c0 + i]! - r.held[c0 + i]!);
    }
    const inputCost = worstCaseCost(price, plan.inputTokens, 0);
    const tokens = Math.min(Math.floor((room - inputCost) / price.worstOutput), maxTokens);
    if (!(tokens >= this.minShrinkTokens) || tokens >= maxTokens) return this.denialOf(r, plan);
    plan.maxTokens = tokens;
    plan.hold = worstCaseCost(price, plan.inputTokens, tokens);
    plan.shrunk = true;
    plan.attempts++;
    return RETRY;
  }

  /** @internal The window handles of a plan's holds (hints for the release), in the order of {@link leaseOf}. */
  holdHints(b: FlatBatch, list: readonly CompiledBudget[], held: boolean): void {
    if (!held) return;
    for (let i = 0; i < list.length; i++) b.holdHandles[i] = (list[i] as CompiledBudget).handle;
  }

  /** @internal The lease entries of an admitted plan: its holds (when it holds anything) and its windows. */
  leaseOf(plan: BudgetPlan, id: string): LeaseRef {
    const holds: LeaseRef["holds"] = [];
    if (plan.hold > 0) for (const key of plan.keys) holds.push({ key, name: SPEND });
    return { id, gauges: [], holds, windows: plan.keys };
  }

  private admitted(
    plan: BudgetPlan,
    lease: LeaseRef | undefined,
    ticketHandle: unknown,
    expiry: number,
  ): ReserveResult {
    const reservation = new BudgetReservation(
      this,
      plan.req,
      plan.price,
      plan.list,
      lease,
      lease === undefined ? 0 : plan.hold,
      ticketHandle,
      expiry,
    );
    return { ok: true, reservation, maxTokens: plan.maxTokens, shrunk: plan.shrunk };
  }

  /** The denial naming the tightest budget that denies (the store reports the first one in request order). */
  private denialOf(r: FlatResult, plan: BudgetPlan): BudgetDenial {
    const { list, hold, w0, c0, t } = plan;
    let i = r.denied === FLAT_DENIED_COUNTER && r.deniedWindow >= w0 ? r.deniedWindow - w0 : 0;
    let tightest = Number.POSITIVE_INFINITY;
    for (let j = 0; j < list.length; j++) {
      const c = list[j] as CompiledBudget;
      const left = this.limitOf(c) - r.values[c0 + j]! - r.held[c0 + j]!;
      if (c.enforce && (hold > 0 ? left < hold : left <= 0) && left < tightest) {
        tightest = left;
        i = j;
      }
    }
    const b = list[i] as CompiledBudget;
    const spend = r.values[c0 + i] ?? 0;
    const max = b.max ?? b.limit; // an enforced budget always has a max
    return {
      budget: b.ref,
      spend,
      reserved: r.held[c0 + i] ?? 0,
      requested: hold,
      max,
      resetAt: resetAtOf(b.schedule.periodAt(t)),
      message: formatBudgetExceeded({ budget: { ...b.ref, alias: b.alias }, spend, max }),
      now: r.now,
    };
  }

  /** @internal Statuses of an admitted plan's budgets, from its part of the answer (spend and held per budget). */
  statusesOf(plan: BudgetPlan, nums: readonly number[]): BudgetStatus[] {
    return plan.list.map((b, i) => {
      const p = b.schedule.periodAt(plan.t);
      return {
        budget: b.ref,
        spend: nums[2 * i] ?? 0,
        reserved: nums[2 * i + 1] ?? 0,
        max: b.max,
        softBudget: b.soft,
        periodStart: Number.isFinite(p.start) ? p.start : null,
        resetAt: resetAtOf(p),
      };
    });
  }

  /**
   * @internal Appends a charge of `cost` to every budget's period current at `t` (unguarded: a request crossing a
   * boundary is charged to the new period). Answers where the part starts (its first counter).
   */
  fillCharge(b: FlatBatch, list: readonly CompiledBudget[], t: number, cost: Nano): number {
    const c0 = b.counterCount;
    for (let i = 0; i < list.length; i++) {
      const c = list[i] as CompiledBudget;
      b.window(periodKey(c, t), c.windowMs, false, c.handle); // a hint: used while it is the key's live window
      b.counter(SPEND, 0, cost, 0, true);
    }
    return c0;
  }

  /**
   * @internal After a charge: the spend after it per budget (from its part of the answer, first counter `c0`), the
   * alerts it crossed, the spend record and the sink. `r` is undefined when nothing was written (no budgets).
   */
  recordCharge(
    who: {
      readonly requestId: string;
      readonly model: string | undefined;
      readonly budgetRefs: BudgetRef[];
      readonly list: readonly CompiledBudget[];
    },
    r: FlatResult | undefined,
    c0: number,
    usage: Usage,
    cost: Nano,
    t: number,
  ): SettleResult | Promise<SettleResult> {
    const list = who.list;
    const spend: Nano[] = new Array(r === undefined ? 0 : list.length);
    const periods: string[] = new Array(list.length);
    for (let i = 0; i < list.length; i++) periods[i] = periodId(list[i] as CompiledBudget, t);
    if (r !== undefined) {
      // read everything first: a listener may call the engine again and reuse the answer
      for (let i = 0; i < list.length; i++) spend[i] = r.values[c0 + i] ?? 0;
      if (cost > 0) {
        for (let i = 0; i < list.length; i++) {
          this.alerts(list[i] as CompiledBudget, spend[i]! - cost, spend[i]!, t, who.requestId);
        }
      }
    }
    const record: SpendRecord = {
      requestId: who.requestId,
      model: who.model as string,
      scopes: who.budgetRefs,
      periods,
      usage,
      cost,
      costUsd: formatUsd(cost),
      time: r === undefined ? t : r.now,
    };
    const result: SettleResult = { cost, record, spend };
    if (this.sink === undefined) return result;
    let written: void | Promise<void>;
    try {
      written = this.sink.write(record);
    } catch (error) {
      this.emit({ type: "sink_error", error, record });
      return result;
    }
    if (written === undefined || typeof (written as Promise<void>).then !== "function") return result;
    return (written as Promise<void>).then(
      () => result,
      (error: unknown) => {
        this.emit({ type: "sink_error", error, record });
        return result;
      },
    );
  }

  /** A reservation's settle: one adjust adding `cost` to every current period, releasing the holds, finishing the ticket. */
  charge(r: BudgetReservation, usage: Usage, cost: Nano): Outcome<SettleResult> | Promise<Outcome<SettleResult>> {
    const t = this.clock();
    const local = this.lastLocal;
    const lease = r.lease;
    if (lease === undefined) return appliedWith(this.recordCharge(r, undefined, 0, usage, cost, t));
    const flat = this.access.flat !== undefined;
    const b = flat ? this.scratch.reset() : new FlatBatch();
    this.fillCharge(b, r.list, t, cost);
    b.releaseLease(lease);
    this.holdHints(b, r.list, lease.holds.length > 0);
    b.finishTicket(lease.id, "settle", this.keepMs, r.ticketHandle, r.expiry);
    if (flat) return this.charged(r, usage, cost, t, local, this.access.adjust(b, this.answer) as FlatResult);
    return (this.access.adjust(b, new FlatResult()) as Promise<FlatResult>).then((res) =>
      this.charged(r, usage, cost, t, local, res),
    );
  }

  private charged(
    r: BudgetReservation,
    usage: Usage,
    cost: Nano,
    t: number,
    local: number,
    res: FlatResult,
  ): Outcome<SettleResult> | Promise<Outcome<SettleResult>> {
    this.observe(res.now, local);
    if (res.ticket === "finished") return DUPLICATE;
    return appliedWith(this.recordCharge(r, res, 0, usage, cost, t));
  }

  /** A reservation's release: the holds, and the ticket finished, in one adjust. */
  release(r: BudgetReservation): Outcome | Promise<Outcome> {
    const lease = r.lease;
    if (lease === undefined) return APPLIED;
    const flat = this.access.flat !== undefined;
    const b = flat ? this.scratch.reset() : new FlatBatch();
    b.releaseLease(lease);
    this.holdHints(b, r.list, lease.holds.length > 0);
    b.finishTicket(lease.id, "release", this.keepMs, r.ticketHandle, r.expiry);
    b.readBack = false;
    const done = (res: FlatResult): Outcome => {
      this.observe(res.now);
      return outcomeOf(res.ticket, true);
    };
    if (flat) return done(this.access.adjust(b, this.answer) as FlatResult);
    return (this.access.adjust(b, new FlatResult()) as Promise<FlatResult>).then(done);
  }

  async renew(r: BudgetReservation, ttlMs: number): Promise<boolean> {
    const ttl = positiveInt(ttlMs, "ttlMs");
    return (await this.access.renew(r.lease!, ttl, r.ticketHandle, r)) > 0;
  }

  /** Fires soft-budget and threshold events crossed by this charge: exactly one charge crosses each mark. */
  private alerts(b: CompiledBudget, before: Nano, after: Nano, t: number, requestId: string): void {
    if (b.soft !== null && before < b.soft && after >= b.soft) {
      const resetAt = resetAtOf(b.schedule.periodAt(t));
      this.emit({ type: "soft_budget", budget: b.ref, spend: after, softBudget: b.soft, resetAt, requestId });
    }
    if (b.max === null) return;
    for (const fraction of this.thresholds) {
      const mark = Math.ceil(b.max * fraction);
      if (before < mark && after >= mark) {
        const resetAt = resetAtOf(b.schedule.periodAt(t));
        this.emit({
          type: "threshold",
          budget: b.ref,
          threshold: fraction,
          spend: after,
          max: b.max,
          resetAt,
          requestId,
        });
      }
    }
  }

  async status(specs: BudgetSpec[]): Promise<BudgetStatus[]> {
    if (!Array.isArray(specs)) throw bad(`status takes an array of budget specs, got ${what(specs)}`);
    const list = specs.map((s) => this.compile(s));
    if (list.length === 0) return [];
    const t = this.clock();
    const res = await this.store.read({
      windows: list.map((b) => windowOf(b, t, [SPEND])),
      gauges: [],
    });
    this.observe(res.now);
    return list.map((b, i) => {
      const s = res.windows[i]?.counters[0];
      const p = b.schedule.periodAt(t);
      return {
        budget: b.ref,
        spend: s?.value ?? 0,
        reserved: s?.held ?? 0,
        max: b.max,
        softBudget: b.soft,
        periodStart: Number.isFinite(p.start) ? p.start : null,
        resetAt: resetAtOf(p),
      };
    });
  }

  async hydrate(input: {
    budgets?: BudgetSpec[];
    records?: Iterable<SpendRecord>;
    totals?: HydrateTotal[];
  }): Promise<BudgetStatus[]> {
    if (!isObject(input)) throw bad(`hydrate takes { budgets?, records?, totals? }, got ${what(input)}`);
    for (const name of ["budgets", "totals"] as const) {
      if (input[name] !== undefined && !Array.isArray(input[name])) {
        throw bad(`hydrate: ${name} must be an array, got ${what(input[name])}`);
      }
    }
    const records = input.records ?? [];
    if (typeof (records as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== "function") {
      throw bad(`hydrate: records must be iterable (an array of spend records), got ${what(records)}`);
    }
    const t = this.clock();
    type Entry = { b: CompiledBudget; spec: BudgetSpec; sum: Nano; period: string; mark: number };
    // One entry per budget window (identity and schedule, as in `plan`), found by identity (`byIdentity`: e.g. the
    // daily and the monthly budget of one key) and then by the period a record names.
    const sums: Entry[] = [];
    const byIdentity = new Map<string, Entry[]>();
    const add = (spec: BudgetSpec): Entry => {
      const b = this.compile(spec);
      let same = byIdentity.get(b.base);
      if (same === undefined) {
        same = [];
        byIdentity.set(b.base, same);
      }
      let entry = same.find((e) => sameWindow(e.b, b));
      if (entry === undefined) {
        entry = { b, spec, sum: 0, period: b.schedule.periodAt(t).id, mark: -1 };
        same.push(entry);
        sums.push(entry);
      }
      return entry;
    };
    for (const spec of input.budgets ?? []) add(spec);
    for (const total of input.totals ?? []) {
      if (!isObject(total)) throw bad(`hydrate: a total must be { budget, spend | spendNano }, got ${what(total)}`);
      const entry = add(total.budget);
      if (total.spendNano !== undefined) {
        entry.sum += nonNegativeInt(total.spendNano, "spendNano");
      } else if (total.spend !== undefined) {
        entry.sum += parseUsd(total.spend, `spend of ${entry.b.base}`, { subNano: "ceil" });
      }
    }
    let n = 0;
    for (const record of records) {
      n++;
      checkRecord(record, n);
      const { scopes, periods } = record;
      // Each entry counts a record at most once (`mark`), however many of its refs point at the entry's identity.
      for (let i = 0; i < scopes.length; i++) {
        const same = byIdentity.get(baseKeyOf(scopes[i] as BudgetRef, this.defaults.keyPrefix));
        if (same === undefined) continue;
        for (const entry of same) {
          if (entry.mark === n) continue;
          // A record names the period each budget was charged to; an old record only its identities, so it counts
          // toward every budget of the identity whose current period contains its time.
          const charged = periods === undefined ? inPeriod(entry.b, t, record.time) : periods[i] === entry.period;
          if (!charged) continue;
          entry.sum += record.cost;
          entry.mark = n;
        }
      }
    }
    const windows: AdjustWindowOp[] = [];
    for (const { b, sum } of sums) {
      if (sum === 0) continue;
      if (!Number.isSafeInteger(sum)) {
        throw new TollgateError("INVALID_AMOUNT", `restored spend of ${b.base} exceeds the exact range of one counter`);
      }
      windows.push(windowOf(b, t, [{ name: SPEND, delta: sum }]));
    }
    if (windows.length > 0) this.observe((await this.store.adjust({ windows })).now);
    return this.status(sums.map((x) => x.spec));
  }
}

function inPeriod(b: CompiledBudget, t: number, time: number): boolean {
  const p = b.schedule.periodAt(t);
  return time >= p.start && time < p.end;
}

/** A ledger record as `hydrate` reads it (records come from a database: checked, never trusted). */
function checkRecord(record: SpendRecord, n: number): void {
  const where = `hydrate: record ${n}`;
  if (!isObject(record)) throw bad(`${where} must be a spend record, got ${what(record)}`);
  if (!Array.isArray(record.scopes)) throw bad(`${where}: scopes must be an array of budget refs`);
  for (const ref of record.scopes) {
    if (!isObject(ref) || typeof ref.scope !== "string" || typeof ref.id !== "string") {
      throw bad(`${where}: each scope must be a budget ref { scope, id, teamId?, model? }`);
    }
  }
  if (record.periods !== undefined) {
    if (!Array.isArray(record.periods) || record.periods.length !== record.scopes.length) {
      throw bad(`${where}: periods must be an array with one period id per scope`);
    }
  }
  nonNegativeInt(record.cost, `${where} cost`);
  if (typeof record.time !== "number" || !Number.isFinite(record.time)) {
    throw bad(`${where}: time must be a finite time in ms, got ${String(record.time)}`);
  }
}

/** Creates a budget engine on a CounterStore. */
export function createBudgets(options: BudgetsOptions): Budgets {
  return new BudgetEngine(options);
}
