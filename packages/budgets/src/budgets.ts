import { randomUUID } from "node:crypto";
import {
  type AdjustWindowOp,
  type AdmitResult,
  type CounterStore,
  isNonNegativeInteger,
  type LeaseRef,
  TollgateError,
  type WindowOp,
} from "@tollgate/core";
import { type CompiledBudget, compileBudget, fingerprint, modelMatches } from "./compile.js";
import { formatBudgetExceeded } from "./messages.js";
import { formatUsd, type Nano, parseUsd, type Usd } from "./money.js";
import { DEFAULT_PRICES } from "./prices.js";
import {
  costOf,
  createPriceBook,
  type ModelPrice,
  type ModelPriceInput,
  type PriceTable,
  type Usage,
  worstCaseCost,
} from "./pricing.js";
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

export interface SettleResult {
  /** Exact cost in nano-USD. */
  cost: Nano;
  record: SpendRecord;
  /** Spend of each budget in its current period after the charge (same order as `record.scopes`). */
  spend: Nano[];
}

/** An admitted request's hold on its budgets. */
export interface Reservation {
  readonly requestId: string;
  readonly model: string;
  /** Lease id of the holds (absent in check mode or when nothing is held). */
  readonly leaseId: string | undefined;
  /** Held worst-case cost per budget, nano-USD. */
  readonly reserved: Nano;
  readonly budgets: BudgetRef[];
  /** `open` until settled or released. */
  readonly state: "open" | "settled" | "released";
  /**
   * Charges the actual cost to every budget's current period and releases the holds, in one atomic store call.
   * Idempotent: a second call returns the first result and changes nothing.
   * @throws TollgateError `RESERVATION_FINISHED` after `release()`.
   */
  settle(usage: Usage): Promise<SettleResult>;
  /** Releases the holds without charging (the call failed). Idempotent; a no-op after `settle`. */
  release(): Promise<void>;
  /** Extends the holds (long streams). Returns false when the lease has already expired. */
  renew(ttlMs?: number): Promise<boolean>;
}

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

/** Creates a budget engine on a CounterStore. */
export function createBudgets(options: BudgetsOptions): Budgets {
  const store = options.store;
  const mode = options.mode ?? "reserve";
  if (mode !== "reserve" && mode !== "check") {
    throw new TollgateError("INVALID_ARGUMENT", `mode must be "reserve" or "check", got ${JSON.stringify(mode)}`);
  }
  const unknownModel = options.unknownModel ?? "deny";
  const book = createPriceBook(options.prices ?? DEFAULT_PRICES, options.priceOverrides);
  const defaultMaxTokens = positiveInt(options.defaultMaxTokens ?? 16_384, "defaultMaxTokens");
  const minShrinkTokens = positiveInt(options.minShrinkTokens ?? 1, "minShrinkTokens");
  const ttlMs = positiveInt(options.reservationTtlMs ?? 600_000, "reservationTtlMs");
  const thresholds = [...(options.thresholds ?? [0.5, 0.8, 1])];
  for (const t of thresholds) {
    if (!(typeof t === "number" && t > 0 && t <= 1)) {
      throw new TollgateError("INVALID_ARGUMENT", `thresholds must be fractions in (0, 1], got ${t}`);
    }
  }
  const defaults = {
    timeZone: checkTimeZone(options.timeZone ?? "UTC"),
    reset: options.reset ?? "calendar",
    keyPrefix: options.keyPrefix ?? "budget",
  };
  const localNow = options.now ?? Date.now;
  const sync = options.syncToStore ?? true;
  let skew = 0;
  const clock = () => localNow() + skew;
  const observe = (storeNow: number) => {
    if (sync) skew = storeNow - localNow();
  };

  const compiled = new Map<string, CompiledBudget>();
  function compile(spec: BudgetSpec): CompiledBudget {
    const fp = fingerprint(spec);
    let c = compiled.get(fp);
    if (c === undefined) {
      c = compileBudget(spec, defaults);
      if (compiled.size >= MAX_CACHE) compiled.clear();
      compiled.set(fp, c);
    }
    return c;
  }

  function emit(event: BudgetEvent): void {
    try {
      options.onEvent?.(event);
    } catch {
      // A failing listener must not break accounting.
    }
  }

  function windowsFor(list: CompiledBudget[], t: number, hold: number): { windows: WindowOp[]; periods: Period[] } {
    const windows: WindowOp[] = new Array(list.length);
    const periods: Period[] = new Array(list.length);
    for (let i = 0; i < list.length; i++) {
      const b = list[i] as CompiledBudget;
      const p = b.schedule.periodAt(t);
      periods[i] = p;
      windows[i] = {
        key: `${b.base}:${p.id}`,
        windowMs: b.schedule.windowMs,
        algorithm: "fixed",
        counters: [{ name: SPEND, limit: b.limit, amount: 0, hold, enforce: b.enforce }],
      };
    }
    return { windows, periods };
  }

  function denialOf(res: AdmitResult, list: CompiledBudget[], periods: Period[], hold: number): BudgetDenial {
    // Name the tightest budget that denies (the store reports the first one in request order).
    let i = res.denied?.type === "counter" ? res.denied.window : 0;
    let tightest = Number.POSITIVE_INFINITY;
    for (let j = 0; j < list.length; j++) {
      const c = list[j] as CompiledBudget;
      const s = res.windows[j]?.counters[0];
      const left = c.limit - (s?.value ?? 0) - (s?.held ?? 0);
      const denies = hold > 0 ? left < hold : left <= 0;
      if (c.enforce && denies && left < tightest) {
        tightest = left;
        i = j;
      }
    }
    const b = list[i] as CompiledBudget;
    const state = res.windows[i]?.counters[0];
    const spend = state?.value ?? 0;
    const max = b.max ?? b.limit;
    const end = (periods[i] as Period).end;
    return {
      budget: b.ref,
      spend,
      reserved: state?.held ?? 0,
      requested: hold,
      max,
      resetAt: Number.isFinite(end) ? end : null,
      message: formatBudgetExceeded({ budget: { ...b.ref, alias: b.alias }, spend, max }),
      now: res.now,
    };
  }

  /** Room left in the tightest enforced budget, from a denied answer (states before applying). */
  function room(res: AdmitResult, list: CompiledBudget[]): number {
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i < list.length; i++) {
      const b = list[i] as CompiledBudget;
      if (!b.enforce) continue;
      const s = res.windows[i]?.counters[0];
      const left = b.limit - (s?.value ?? 0) - (s?.held ?? 0);
      if (left < min) min = left;
    }
    return min;
  }

  function checkThresholds(b: CompiledBudget, before: Nano, after: Nano, period: Period, requestId: string): void {
    const resetAt = Number.isFinite(period.end) ? period.end : null;
    if (b.soft !== null && before < b.soft && after >= b.soft) {
      emit({ type: "soft_budget", budget: b.ref, spend: after, softBudget: b.soft, resetAt, requestId });
    }
    if (b.max === null) return;
    for (const t of thresholds) {
      const mark = Math.ceil(b.max * t);
      if (before < mark && after >= mark) {
        emit({ type: "threshold", budget: b.ref, threshold: t, spend: after, max: b.max, resetAt, requestId });
      }
    }
  }

  function makeReservation(
    req: ReserveRequest,
    price: ModelPrice | undefined,
    list: CompiledBudget[],
    lease: LeaseRef | undefined,
    reserved: Nano,
  ): Reservation {
    let state: "open" | "settled" | "released" = "open";
    let settling: Promise<SettleResult> | undefined;
    let releasing: Promise<void> | undefined;
    const refs = list.map((b) => b.ref);

    async function doSettle(usage: Usage): Promise<SettleResult> {
      const cost = price === undefined ? 0 : costOf(price, usage);
      const t = clock();
      let spend: Nano[] = [];
      let time = t;
      if (list.length > 0 && (cost > 0 || lease !== undefined)) {
        const windows: AdjustWindowOp[] = new Array(list.length);
        const periods: Period[] = new Array(list.length);
        for (let i = 0; i < list.length; i++) {
          const b = list[i] as CompiledBudget;
          const p = b.schedule.periodAt(t);
          periods[i] = p;
          windows[i] = {
            key: `${b.base}:${p.id}`,
            windowMs: b.schedule.windowMs,
            algorithm: "fixed",
            counters: [{ name: SPEND, delta: cost }],
          };
        }
        const res = await store.adjust(lease === undefined ? { windows } : { windows, release: lease });
        observe(res.now);
        time = res.now;
        spend = res.windows.map((w) => w.counters[0]?.value ?? 0);
        if (cost > 0) {
          for (let i = 0; i < list.length; i++) {
            const after = spend[i] as number;
            checkThresholds(list[i] as CompiledBudget, after - cost, after, periods[i] as Period, req.requestId);
          }
        }
      }
      state = "settled";
      const record: SpendRecord = {
        requestId: req.requestId,
        model: req.model,
        scopes: refs,
        usage,
        cost,
        costUsd: formatUsd(cost),
        time,
      };
      if (options.sink !== undefined) {
        try {
          await options.sink.write(record);
        } catch (error) {
          emit({ type: "sink_error", error, record });
        }
      }
      return { cost, record, spend };
    }

    return {
      requestId: req.requestId,
      model: req.model,
      leaseId: lease?.id,
      reserved,
      budgets: refs,
      get state() {
        return state;
      },
      settle(usage) {
        if (settling !== undefined) return settling;
        if (state === "released" || releasing !== undefined) {
          return Promise.reject(
            new TollgateError("RESERVATION_FINISHED", `reservation of request ${req.requestId} was already released`),
          );
        }
        settling = doSettle(usage);
        settling.catch(() => {
          // Let a failed settle be retried (the store call is atomic: nothing was applied).
          settling = undefined;
        });
        return settling;
      },
      release() {
        if (settling !== undefined || state !== "open") return releasing ?? Promise.resolve();
        if (releasing !== undefined) return releasing;
        releasing = (async () => {
          if (lease !== undefined) {
            const res = await store.adjust({ windows: [], release: lease });
            observe(res.now);
          }
          state = "released";
        })();
        releasing.catch(() => {
          releasing = undefined;
        });
        return releasing;
      },
      async renew(ms = ttlMs) {
        if (lease === undefined) return state === "open";
        if (state !== "open") return false;
        return (await store.renew(lease, positiveInt(ms, "ttlMs"))) > 0;
      },
    };
  }

  function applicable(req: ReserveRequest): CompiledBudget[] {
    const list: CompiledBudget[] = [];
    for (const spec of req.budgets) {
      if (spec.model !== undefined && !modelMatches(spec.model, req.model)) continue;
      list.push(compile(spec));
    }
    return list;
  }

  async function reserve(req: ReserveRequest): Promise<ReserveResult> {
    if (typeof req.requestId !== "string" || req.requestId.length === 0) {
      throw new TollgateError("INVALID_ARGUMENT", "requestId must be a non-empty string");
    }
    if (typeof req.model !== "string" || req.model.length === 0) {
      throw new TollgateError("INVALID_ARGUMENT", "model must be a non-empty string");
    }
    const price = book.get(req.model);
    if (price === undefined) {
      if (unknownModel === "deny") {
        throw new TollgateError("UNKNOWN_MODEL", `no price for model ${JSON.stringify(req.model)}; add it to prices`);
      }
      emit({ type: "unknown_model", model: req.model, requestId: req.requestId });
    }
    const list = applicable(req);
    let maxTokens: number | null = null;
    let hold = 0;
    if (mode === "reserve" && price !== undefined) {
      const requested = req.maxTokens ?? null;
      if (requested !== null && !isNonNegativeInteger(requested)) {
        throw new TollgateError("INVALID_AMOUNT", `maxTokens must be a non-negative integer, got ${requested}`);
      }
      maxTokens = price.mode === "embedding" ? 0 : (requested ?? price.maxOutputTokens ?? defaultMaxTokens);
      hold = worstCaseCost(price, req.inputTokens ?? 0, maxTokens);
    }
    if (list.length === 0) {
      return { ok: true, reservation: makeReservation(req, price, list, undefined, 0), maxTokens, shrunk: false };
    }
    let shrunk = false;
    for (let attempt = 0; ; attempt++) {
      const { windows, periods } = windowsFor(list, clock(), hold);
      const leaseId = hold > 0 ? randomUUID() : undefined;
      const res = await store.admit(
        leaseId === undefined ? { windows, gauges: [] } : { windows, gauges: [], lease: { id: leaseId, ttlMs } },
      );
      observe(res.now);
      if (res.admitted) {
        const lease: LeaseRef | undefined =
          leaseId === undefined
            ? undefined
            : { id: leaseId, gauges: [], holds: windows.map((w) => ({ key: w.key, name: SPEND })) };
        return { ok: true, reservation: makeReservation(req, price, list, lease, hold), maxTokens, shrunk };
      }
      // Shrink: reserve the input cost plus as many output tokens as the tightest budget still has room for.
      if (
        !options.shrink ||
        price === undefined ||
        price.worstOutput === 0 ||
        attempt >= SHRINK_ATTEMPTS ||
        maxTokens === null
      ) {
        return { ok: false, denial: denialOf(res, list, periods, hold) };
      }
      const inputCost = worstCaseCost(price, req.inputTokens ?? 0, 0);
      const fit = Math.floor((room(res, list) - inputCost) / price.worstOutput);
      const tokens = Math.min(fit, maxTokens);
      if (!(tokens >= minShrinkTokens) || tokens >= maxTokens) {
        return { ok: false, denial: denialOf(res, list, periods, hold) };
      }
      maxTokens = tokens;
      hold = worstCaseCost(price, req.inputTokens ?? 0, tokens);
      shrunk = true;
    }
  }

  async function status(specs: BudgetSpec[]): Promise<BudgetStatus[]> {
    const list = specs.map(compile);
    if (list.length === 0) return [];
    const t = clock();
    const periods = list.map((b) => b.schedule.periodAt(t));
    const res = await store.read({
      windows: list.map((b, i) => ({
        key: `${b.base}:${(periods[i] as Period).id}`,
        windowMs: b.schedule.windowMs,
        algorithm: "fixed" as const,
        counters: [SPEND],
      })),
      gauges: [],
    });
    observe(res.now);
    return list.map((b, i) => {
      const s = res.windows[i]?.counters[0];
      const p = periods[i] as Period;
      return {
        budget: b.ref,
        spend: s?.value ?? 0,
        reserved: s?.held ?? 0,
        max: b.max,
        softBudget: b.soft,
        periodStart: Number.isFinite(p.start) ? p.start : null,
        resetAt: Number.isFinite(p.end) ? p.end : null,
      };
    });
  }

  async function hydrate(input: {
    budgets?: BudgetSpec[];
    records?: Iterable<SpendRecord>;
    totals?: HydrateTotal[];
  }): Promise<BudgetStatus[]> {
    const specs = [...(input.budgets ?? []), ...(input.totals ?? []).map((x) => x.budget)];
    const list = specs.map(compile);
    const t = clock();
    const sums = new Map<string, { b: CompiledBudget; spec: BudgetSpec; sum: Nano }>();
    list.forEach((b, i) => {
      if (!sums.has(b.base)) sums.set(b.base, { b, spec: specs[i] as BudgetSpec, sum: 0 });
    });
    const bases = new Map<string, string>(); // identity of a record scope -> base
    for (const record of input.records ?? []) {
      for (const ref of record.scopes) {
        const key = `${ref.scope}\u0001${ref.teamId}\u0001${ref.id}\u0001${ref.model}`;
        let base = bases.get(key);
        if (base === undefined) {
          base = [...sums.values()].find(
            (x) =>
              x.b.ref.scope === ref.scope &&
              x.b.ref.id === ref.id &&
              x.b.ref.teamId === ref.teamId &&
              x.b.ref.model === ref.model,
          )?.b.base;
          bases.set(key, base ?? "");
        }
        const entry = base ? sums.get(base) : undefined;
        if (entry === undefined) continue;
        const p = entry.b.schedule.periodAt(t);
        if (record.time >= p.start && record.time < p.end) entry.sum += record.cost;
      }
    }
    for (const total of input.totals ?? []) {
      const entry = sums.get(compile(total.budget).base);
      if (entry === undefined) continue;
      if (total.spendNano !== undefined) {
        if (!isNonNegativeInteger(total.spendNano)) {
          throw new TollgateError("INVALID_AMOUNT", `spendNano must be a non-negative integer, got ${total.spendNano}`);
        }
        entry.sum += total.spendNano;
      } else if (total.spend !== undefined) {
        entry.sum += parseUsd(total.spend, `spend of ${entry.b.base}`, { subNano: "ceil" });
      }
    }
    const windows: AdjustWindowOp[] = [];
    for (const { b, sum } of sums.values()) {
      if (sum === 0) continue;
      if (!Number.isSafeInteger(sum)) {
        throw new TollgateError("INVALID_AMOUNT", `restored spend of ${b.base} exceeds the exact range of one counter`);
      }
      windows.push({
        key: `${b.base}:${b.schedule.periodAt(t).id}`,
        windowMs: b.schedule.windowMs,
        algorithm: "fixed",
        counters: [{ name: SPEND, delta: sum }],
      });
    }
    if (windows.length > 0) observe((await store.adjust({ windows })).now);
    return status([...sums.values()].map((x) => x.spec));
  }

  return { reserve, status, hydrate, priceOf: (model) => book.get(model) };
}
